"""The 16-bit codecs of the compressed all-reduce, against independent conversions:
numpy's float16 cast, and bfloat16 as the upper half of a float32 rounded to even."""

import numpy as np
import pytest

from gradwell.distributed import compression


def _bf16_by_numpy(x):
    u = x.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    rounded[nan] = (u[nan] >> 16).astype(np.uint16) | 0x40
    return rounded


def _values():
    """Random bit patterns (every exponent, NaN and inf), gradient-like magnitudes from
    1e-9 to 1e5, and the edges: zeros, fp16's subnormals, largest value and overflow."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    scaled = rng.normal(size=200_000) * np.exp(rng.uniform(-20, 12, size=200_000))
    edges = [0.0, -0.0, 2**-24, 2**-25, 3 * 2**-26, 2**-14, 65504, 65519.99, 65520, 1 + 2**-11,
             1 + 3 * 2**-11, 1 + 2**-8, np.inf, -np.inf, np.nan]  # fmt: skip
    return np.concatenate([bits.view(np.float32), scaled.astype(np.float32), np.float32(edges)])


@pytest.mark.parametrize("fmt", compression.FORMATS)
def test_encode_rounds_to_nearest_even_and_decode_is_exact(fmt):
    x = _values()
    out = np.empty(x.size, np.uint16)
    compression.encode(fmt, x, 1.0, out)
    with np.errstate(over="ignore", invalid="ignore"):
        want = _bf16_by_numpy(x) if fmt == "bf16" else x.astype(np.float16).view(np.uint16)
    finite = ~np.isnan(x)
    np.testing.assert_array_equal(out[finite], want[finite])
    every = np.arange(2**16, dtype=np.uint16)  # every 16-bit value, decoded
    decoded = np.empty(every.size, np.float32)
    compression.decode(fmt, every, decoded)
    if fmt == "bf16":
        want = (every.astype(np.uint32) << 16).view(np.float32)
    else:
        want = every.view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(decoded, want)  # NaN where NaN, bit for bit elsewhere
    compression.decode(fmt, out[~finite], decoded[: (~finite).sum()])
    assert np.isnan(decoded[: (~finite).sum()]).all()  # NaN stays NaN
    scaled = np.empty(x.size, np.uint16)
    compression.encode(fmt, x, 0.5, scaled)  # the scale is applied before rounding
    with np.errstate(invalid="ignore"):  # the random bits hold signalling NaNs
        compression.encode(fmt, x * np.float32(0.5), 1.0, out)
    np.testing.assert_array_equal(scaled, out)
