"""Each optimizer against its update rule, written here independently in float64 numpy.

The gradients are known functions of the parameter (those of a quadratic), so
weight decay, momentum and the moment estimates all interact across steps.
"""

import numpy as np
import pytest

import gradwell as gw
from gradwell.optim import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RAdam, RMSprop

P0 = np.array([[0.5, -1.5, 2.0], [-0.25, 1.0, 3.0]])
A = np.array([[1.0, 2.0, 0.5], [3.0, 0.1, 1.0]])
C = np.array([[0.3, -0.2, 0.1], [0.0, 0.5, -1.0]])
STEPS = 6


def grad_of(p):
    """Gradient of sum(A * p**2 / 2 + C * p) at p."""
    return A * p + C


def run_gradwell(cls, steps=STEPS, dtype=np.float64, **kwargs):
    p = gw.tensor(P0, dtype=dtype, requires_grad=True)
    opt = cls([p], **kwargs)
    for _ in range(steps):
        p.grad = gw.tensor(grad_of(p.data.astype(np.float64)), dtype=dtype)
        opt.step()
    return p.data, opt


def ref_sgd(lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, maximize=False):
    p, buf = P0.copy(), None
    for _ in range(STEPS):
        g = grad_of(p)
        if maximize:
            g = -g
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def ref_adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    b1, b2 = betas
    p = P0.copy()
    m, v, v_max = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t in range(1, STEPS + 1):
        g = grad_of(p)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if amsgrad:
            v_max = np.maximum(v_max, v)
        m_hat = m / (1 - b1**t)
        v_hat = (v_max if amsgrad else v) / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def ref_rmsprop(lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    p = P0.copy()
    v, g_avg, buf = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for _ in range(STEPS):
        g = grad_of(p) + weight_decay * p
        v = alpha * v + (1 - alpha) * g**2
        v_tilde = v
        if centered:
            g_avg = alpha * g_avg + (1 - alpha) * g
            v_tilde = v - g_avg**2
        step = g / (np.sqrt(v_tilde) + eps)
        if momentum > 0:
            buf = momentum * buf + step
            step = buf
        p = p - lr * step
    return p


def ref_adagrad(lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    p = P0.copy()
    s = np.full_like(p, initial_accumulator_value)
    for t in range(1, STEPS + 1):
        g = grad_of(p) + weight_decay * p
        s = s + g**2
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)
    return p


def ref_adamax(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    p = P0.copy()
    m, u = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, STEPS + 1):
        g = grad_of(p) + weight_decay * p
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        p = p - lr / (1 - b1**t) * m / u
    return p


def ref_nadam(
    lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3, decoupled=False
):
    b1, b2 = betas
    p = P0.copy()
    m, v, product = np.zeros_like(p), np.zeros_like(p), 1.0
    mus = [b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay)) for t in range(STEPS + 2)]
    for t in range(1, STEPS + 1):
        g = grad_of(p)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        product *= mus[t]
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        d = np.sqrt(v / (1 - b2**t)) + eps
        p = p - lr * (1 - mus[t]) / (1 - product) * g / d
        p = p - lr * mus[t + 1] / (1 - product * mus[t + 1]) * m / d
    return p


def ref_radam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False, steps=STEPS):
    b1, b2 = betas
    p = P0.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    rho_inf = 2 / (1 - b2) - 1
    for t in range(1, steps + 1):
        g = grad_of(p)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho > 5:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            p = p - lr * m_hat * np.sqrt(1 - b2**t) / (np.sqrt(v) + eps) * r
        else:
            p = p - lr * m_hat
    return p


def ref_adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    p = P0.copy()
    s, a = np.zeros_like(p), np.zeros_like(p)
    for _ in range(STEPS):
        g = grad_of(p) + weight_decay * p
        s = rho * s + (1 - rho) * g * g
        delta = np.sqrt(a + eps) / np.sqrt(s + eps) * g
        a = rho * a + (1 - rho) * delta * delta
        p = p - lr * delta
    return p


CASES = [
    (SGD, ref_sgd, dict(lr=0.1)),
    (SGD, ref_sgd, dict(lr=0.1, weight_decay=0.2)),
    (SGD, ref_sgd, dict(lr=0.05, momentum=0.9)),
    (SGD, ref_sgd, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1)),
    (SGD, ref_sgd, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (SGD, ref_sgd, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    (SGD, ref_sgd, dict(lr=0.05, maximize=True)),
    (SGD, ref_sgd, dict(lr=0.05, momentum=0.5, maximize=True, weight_decay=0.1)),
    (Adam, ref_adam, dict(lr=0.1)),
    (Adam, ref_adam, dict(lr=0.1, betas=(0.8, 0.9), eps=1e-3)),
    (Adam, ref_adam, dict(lr=0.1, weight_decay=0.3)),
    (Adam, ref_adam, dict(lr=0.1, amsgrad=True, betas=(0.5, 0.6))),
    (Adam, ref_adam, dict(lr=0.1, amsgrad=True, weight_decay=0.1)),
    (AdamW, ref_adam, dict(lr=0.1, decoupled=True, weight_decay=0.01)),
    (AdamW, ref_adam, dict(lr=0.1, weight_decay=0.5, decoupled=True)),
    (
        AdamW,
        ref_adam,
        dict(lr=0.1, weight_decay=0.5, amsgrad=True, betas=(0.5, 0.6), decoupled=True),
    ),
    (RMSprop, ref_rmsprop, dict(lr=0.01)),
    (RMSprop, ref_rmsprop, dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    (RMSprop, ref_rmsprop, dict(lr=0.01, momentum=0.9)),
    (RMSprop, ref_rmsprop, dict(lr=0.01, centered=True, alpha=0.5)),
    (RMSprop, ref_rmsprop, dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.2)),
    (Adagrad, ref_adagrad, dict(lr=0.1)),
    (Adagrad, ref_adagrad, dict(lr=0.1, lr_decay=0.5, weight_decay=0.1)),
    (Adagrad, ref_adagrad, dict(lr=0.1, initial_accumulator_value=0.7, eps=1e-3)),
    (Adamax, ref_adamax, dict(lr=0.1)),
    (Adamax, ref_adamax, dict(lr=0.1, betas=(0.5, 0.8), eps=1e-3, weight_decay=0.2)),
    (NAdam, ref_nadam, dict(lr=0.1)),
    (NAdam, ref_nadam, dict(lr=0.1, betas=(0.5, 0.8), weight_decay=0.2, momentum_decay=0.3)),
    (NAdam, ref_nadam, dict(lr=0.1, weight_decay=0.3, decoupled=True)),
    # beta2 = 0.9: rho_t passes 5 at step 6, so both branches run
    (RAdam, ref_radam, dict(lr=0.1, betas=(0.8, 0.9))),
    (RAdam, ref_radam, dict(lr=0.1, betas=(0.8, 0.9), weight_decay=0.2)),
    (RAdam, ref_radam, dict(lr=0.1, betas=(0.8, 0.9), weight_decay=0.3, decoupled=True)),
    (Adadelta, ref_adadelta, dict()),
    (Adadelta, ref_adadelta, dict(lr=0.5, rho=0.5, eps=1e-3, weight_decay=0.2)),
]


def _options(cls, kwargs):
    """The optimizer's arguments: the reference's ``decoupled`` is AdamW itself, or NAdam's
    and RAdam's ``decoupled_weight_decay``."""
    options = {k: v for k, v in kwargs.items() if k != "decoupled"}
    if kwargs.get("decoupled") and cls in (NAdam, RAdam):
        options["decoupled_weight_decay"] = True
    return options


def test_radam_takes_both_branches_in_the_cases():
    b2 = 0.9
    rho_inf = 2 / (1 - b2) - 1
    rho = [rho_inf - 2 * t * b2**t / (1 - b2**t) for t in range(1, STEPS + 1)]
    assert rho[0] <= 5 < rho[-1]


@pytest.mark.parametrize(("cls", "ref", "kwargs"), CASES, ids=lambda x: getattr(x, "__name__", ""))
def test_matches_formula_float64(cls, ref, kwargs):
    opt_kwargs = _options(cls, kwargs)
    got, _ = run_gradwell(cls, **opt_kwargs)
    np.testing.assert_allclose(got, ref(**kwargs), rtol=1e-12, atol=1e-13)
    assert not np.allclose(got, P0)  # the parameter did move


@pytest.mark.parametrize(
    ("cls", "ref", "kwargs"), CASES[::3], ids=lambda x: getattr(x, "__name__", "")
)
def test_float32_stays_float32(cls, ref, kwargs):
    opt_kwargs = _options(cls, kwargs)
    got, opt = run_gradwell(cls, dtype=np.float32, **opt_kwargs)
    assert got.dtype == np.float32
    for state in opt.state.values():
        for name, value in state.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32, name
    np.testing.assert_allclose(got, ref(**kwargs), rtol=2e-5, atol=2e-5)


def test_first_adam_step_moves_by_lr_against_the_gradient_sign():
    # m_hat = g and v_hat = g^2 after one step, so the move is lr * g / (|g| + eps).
    p = gw.tensor([1.0, -2.0, 3.0], dtype="float64", requires_grad=True)
    opt = Adam([p], lr=0.01)
    p.grad = gw.tensor([4.0, -0.5, 0.0], dtype="float64")
    opt.step()
    np.testing.assert_allclose(
        p.data, [1.0 - 0.01 * 4 / (4 + 1e-8), -2.0 + 0.01 * 0.5 / (0.5 + 1e-8), 3.0]
    )


def test_param_groups_use_their_own_hyperparameters():
    w = gw.tensor(P0, dtype="float64", requires_grad=True)
    b = gw.tensor(P0, dtype="float64", requires_grad=True)
    opt = SGD([{"params": [w]}, {"params": [b], "lr": 0.01, "momentum": 0.9}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert [g["momentum"] for g in opt.param_groups] == [0.0, 0.9]
    for _ in range(STEPS):
        w.grad = gw.tensor(grad_of(w.data), dtype="float64")
        b.grad = gw.tensor(grad_of(b.data), dtype="float64")
        opt.step()
    np.testing.assert_allclose(w.data, ref_sgd(lr=0.1), rtol=1e-12)
    np.testing.assert_allclose(b.data, ref_sgd(lr=0.01, momentum=0.9), rtol=1e-12)


def test_lr_written_into_the_group_takes_effect_at_the_next_step():
    p = gw.tensor([1.0], dtype="float64", requires_grad=True)
    opt = SGD([p], lr=0.1)
    p.grad = gw.tensor([1.0], dtype="float64")
    opt.step()
    opt.param_groups[0]["lr"] = np.float64(0.5)  # schedulers and the doctor write here
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 - 0.5])


def test_non_contiguous_parameter_is_updated_in_place():
    # A parameter whose array is not C-ordered cannot take the flat fused path.
    p = gw.tensor(P0, dtype="float64", requires_grad=True)
    p.data = np.asfortranarray(P0)
    array = p.data
    opt = Adam([p], lr=0.1, amsgrad=True)
    for _ in range(STEPS):
        p.grad = gw.tensor(grad_of(p.data), dtype="float64")
        opt.step()
    assert p.data is array
    np.testing.assert_allclose(p.data, ref_adam(lr=0.1, amsgrad=True), rtol=1e-12)


def test_transposed_gradient_is_read_correctly():
    p = gw.tensor(P0, dtype="float64", requires_grad=True)
    opt = RMSprop([p], lr=0.01, centered=True)
    for _ in range(STEPS):
        p.grad = gw.Tensor(np.ascontiguousarray(grad_of(p.data).T).T)  # F-ordered values
        opt.step()
    np.testing.assert_allclose(p.data, ref_rmsprop(lr=0.01, centered=True), rtol=1e-12)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (SGD, dict(lr=0.1, momentum=0.9)),
        (Adam, dict(lr=0.01)),
        (AdamW, dict(lr=0.01)),
        (RMSprop, dict(lr=0.01, centered=True)),
        (Adagrad, dict(lr=0.1)),
        (Adamax, dict(lr=0.1)),
        (NAdam, dict(lr=0.1)),
        (RAdam, dict(lr=0.1)),
        (Adadelta, dict()),
    ],
)
def test_parameters_without_gradient_are_skipped(cls, kwargs):
    used = gw.tensor([1.0, 2.0], requires_grad=True)
    unused = gw.tensor([3.0, 4.0], requires_grad=True)
    opt = cls([used, unused], **kwargs)
    used.grad = gw.tensor([0.5, -0.5])
    opt.step()
    np.testing.assert_array_equal(unused.data, [3.0, 4.0])
    assert unused not in opt.state
    assert not np.array_equal(used.data, [1.0, 2.0])


def test_gradient_of_the_wrong_shape_is_refused():
    p = gw.tensor([1.0, 2.0, 3.0], requires_grad=True)
    opt = Adam([p])
    p.grad = gw.tensor([1.0, 2.0])
    with pytest.raises(
        ValueError,
        match=r"parameter 0 of its group has shape \(3,\) but its gradient has shape \(2,\)",
    ):
        opt.step()


def test_step_evaluates_the_closure_with_gradients_on():
    p = gw.tensor([2.0], dtype="float64", requires_grad=True)
    opt = SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with gw.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 4.0
    np.testing.assert_allclose(p.data, [2.0 - 0.25 * 4.0])
