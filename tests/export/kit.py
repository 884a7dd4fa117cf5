"""Running an exported file in onnxruntime; the tolerance every export test uses.

``|onnx - gradwell| <= ATOL + RTOL * |gradwell|`` elementwise, float32 inputs.
"""

RTOL = ATOL = 1e-5


def run_onnx(path, feeds):
    """The outputs of the file at ``path`` for ``feeds``, by output name."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))
