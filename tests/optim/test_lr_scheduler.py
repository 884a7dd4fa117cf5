"""Learning-rate schedules against their closed forms, written here independently."""

import json
import math

import numpy as np
import pytest

import gradwell as gw
from gradwell.optim import SGD, Adagrad, Adam
from gradwell.optim import lr_scheduler as S

BASE = (0.5, 0.02)  # two parameter groups with different base learning rates


def make_opt(cls=SGD, **kwargs):
    a = gw.tensor([1.0, 2.0], requires_grad=True)
    b = gw.tensor([3.0], requires_grad=True)
    kwargs.setdefault("lr", BASE[0])
    return cls([{"params": [a]}, {"params": [b], "lr": BASE[1]}], **kwargs)


def lr_sequence(sched, opt, epochs):
    """Learning rates in use at epochs 0..epochs-1 (read before each step), per group."""
    seen = []
    for _ in range(epochs):
        assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return np.array(seen)


def expected(fn, epochs):
    return np.array([[fn(base, e) for base in BASE] for e in range(epochs)])


# --- epoch schedules against closed forms ------------------------------------------------
def test_step_lr():
    opt = make_opt()
    got = lr_sequence(S.StepLR(opt, step_size=3, gamma=0.5), opt, 12)
    np.testing.assert_allclose(got, expected(lambda b, e: b * 0.5 ** (e // 3), 12), rtol=1e-14)


def test_exponential_lr():
    opt = make_opt()
    got = lr_sequence(S.ExponentialLR(opt, gamma=0.9), opt, 15)
    np.testing.assert_allclose(got, expected(lambda b, e: b * 0.9**e, 15), rtol=1e-13)


@pytest.mark.parametrize("eta_min", [0.0, 0.001])
def test_cosine_annealing_lr_including_the_periodic_part_past_t_max(eta_min):
    opt = make_opt()
    got = lr_sequence(S.CosineAnnealingLR(opt, T_max=6, eta_min=eta_min), opt, 20)

    def cosine(b, e):
        return eta_min + (b - eta_min) * (1 + math.cos(math.pi * e / 6)) / 2

    np.testing.assert_allclose(got, expected(cosine, 20), rtol=1e-12, atol=1e-15)
    assert got[6, 0] == pytest.approx(eta_min, abs=1e-15)  # the minimum at T_max
    assert got[12, 0] == pytest.approx(BASE[0])  # back at the top after 2 * T_max


def test_linear_lr_warmup():
    opt = make_opt()
    got = lr_sequence(S.LinearLR(opt, start_factor=0.1, end_factor=0.9, total_iters=4), opt, 8)
    np.testing.assert_allclose(
        got, expected(lambda b, e: b * (0.1 + 0.8 * min(e, 4) / 4), 8), rtol=1e-13
    )


def test_linear_lr_defaults_are_pytorchs():
    opt = make_opt()
    got = lr_sequence(S.LinearLR(opt), opt, 7)
    np.testing.assert_allclose(
        got, expected(lambda b, e: b * (1 / 3 + (2 / 3) * min(e, 5) / 5), 7), rtol=1e-13
    )


def test_schedules_chain_with_other_changes_to_the_lr():
    # Recursive forms: an lr halved by someone else (the doctor) stays halved.
    opt = make_opt()
    sched = S.ExponentialLR(opt, gamma=0.5)
    sched.step()
    opt.param_groups[0]["lr"] /= 2
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(BASE[0] * 0.5 * 0.5 * 0.5)


# --- OneCycleLR ----------------------------------------------------------------------------
def one_cycle(t, max_lr, total, pct=0.3, div=25.0, final_div=1e4, cos=True, lo=0.85, hi=0.95):
    """(lr, momentum) of the two-phase 1cycle policy at step t."""
    start = max_lr / div
    low = start / final_div
    peak = pct * total - 1  # the step at which the lr reaches max_lr
    if t <= peak:
        frac, lrs, moms = t / peak, (start, max_lr), (hi, lo)
    else:
        frac, lrs, moms = (t - peak) / (total - 1 - peak), (max_lr, low), (lo, hi)

    def interp(a, b):
        return b + (a - b) * (1 + math.cos(math.pi * frac)) / 2 if cos else a + (b - a) * frac

    return interp(*lrs), interp(*moms)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_one_cycle_lr_and_momentum(strategy):
    opt = make_opt(momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=[1.0, 0.1], total_steps=20, anneal_strategy=strategy)
    for t in range(20):
        for group, max_lr in zip(opt.param_groups, [1.0, 0.1]):
            lr, momentum = one_cycle(t, max_lr, 20, cos=strategy == "cos")
            assert group["lr"] == pytest.approx(lr, rel=1e-12)
            assert group["momentum"] == pytest.approx(momentum, rel=1e-12)
        opt.step()
        if t < 19:
            sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0 / 25 / 1e4)  # ends at min_lr


def test_one_cycle_cycles_adams_beta1_and_keeps_beta2():
    opt = make_opt(Adam, betas=(0.9, 0.99))
    sched = S.OneCycleLR(opt, max_lr=0.01, epochs=2, steps_per_epoch=5, pct_start=0.5)
    for t in range(10):
        lr, beta1 = one_cycle(t, 0.01, 10, pct=0.5)
        assert opt.param_groups[1]["lr"] == pytest.approx(lr, rel=1e-12)
        assert opt.param_groups[1]["betas"] == pytest.approx((beta1, 0.99), rel=1e-12)
        opt.step()
        if t < 9:
            sched.step()


def test_one_cycle_three_phase_returns_to_the_start_before_annealing():
    opt = make_opt(momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=21, pct_start=0.25, three_phase=True)
    got = lr_sequence(sched, opt, 21)[:, 0]
    p = 0.25 * 21 - 1  # up over [0, p], down to the start over [p, 2p], then to min_lr
    knots = [(0.0, 0.04), (p, 1.0), (2 * p, 0.04), (20.0, 0.04 / 1e4)]

    def lr(t):
        for (t0, a), (t1, b) in zip(knots, knots[1:]):
            if t <= t1 or t1 == 20.0:
                return b + (a - b) * (1 + math.cos(math.pi * (t - t0) / (t1 - t0))) / 2

    np.testing.assert_allclose(got, [lr(t) for t in range(21)], rtol=1e-12)


def test_one_cycle_refuses_to_step_past_total_steps():
    opt = make_opt(momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=5)
    for _ in range(5):
        sched.step()
    with pytest.raises(ValueError, match="stepped 6 times but total_steps is 5"):
        sched.step()


def test_one_cycle_needs_momentum_to_cycle():
    with pytest.raises(ValueError, match="Adagrad has neither"):
        S.OneCycleLR(make_opt(Adagrad), max_lr=1.0, total_steps=10)
    S.OneCycleLR(make_opt(Adagrad), max_lr=1.0, total_steps=10, cycle_momentum=False)


# --- ReduceLROnPlateau -----------------------------------------------------------------------
def test_reduce_on_plateau_patience_cooldown_and_min_lr():
    opt = make_opt(lr=1.0)
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=[0.2, 0.0])
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    # Traced by hand: improvements at epochs 1, 2, 10; the third bad epoch in a row after
    # patience=2 reduces (epochs 5, 9, 13, 17); the epoch after a reduction is cooldown,
    # where bad epochs do not count; the first group cannot go below min_lr = 0.2.
    want = [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2, 0.2]
    got = []
    for loss in losses:
        sched.step(loss)
        got.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(got, want)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.02 * 0.5**4)
    assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]


def test_reduce_on_plateau_max_mode_with_absolute_threshold():
    opt = make_opt()
    sched = S.ReduceLROnPlateau(opt, mode="max", threshold=0.1, threshold_mode="abs", patience=0)
    sched.step(0.5)  # first value is the best so far
    sched.step(0.55)  # not better by more than 0.1: reduce (patience 0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    sched.step(gw.tensor(0.7))  # better by 0.15 (a one-element tensor is accepted)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_reduce_on_plateau_relative_threshold():
    opt = make_opt()
    sched = S.ReduceLROnPlateau(opt, threshold=0.1, patience=0)
    sched.step(1.0)
    sched.step(0.95)  # needs < 1.0 * (1 - 0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    sched.step(0.8)  # < 1.0 * 0.9: the best is still 1.0
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


# --- chaining -----------------------------------------------------------------------------
def test_sequential_lr_warmup_then_cosine():
    opt = make_opt()
    warm = S.LinearLR(opt, start_factor=0.1, total_iters=4)
    cosine = S.CosineAnnealingLR(opt, T_max=10)
    got = lr_sequence(S.SequentialLR(opt, [warm, cosine], milestones=[4]), opt, 16)

    def schedule(b, e):
        if e < 4:
            return b * (0.1 + 0.9 * e / 4)
        return b * (1 + math.cos(math.pi * (e - 4) / 10)) / 2

    np.testing.assert_allclose(got, expected(schedule, 16), rtol=1e-12, atol=1e-15)


def test_sequential_lr_three_schedules():
    opt = make_opt()
    scheds = [S.ExponentialLR(opt, 0.5), S.StepLR(opt, 2, 0.1), S.ExponentialLR(opt, 0.9)]
    got = lr_sequence(S.SequentialLR(opt, scheds, milestones=[3, 7]), opt, 10)

    def schedule(b, e):
        if e < 3:
            return b * 0.5**e
        if e < 7:
            return b * 0.1 ** ((e - 3) // 2)
        return b * 0.9 ** (e - 7)

    np.testing.assert_allclose(got, expected(schedule, 10), rtol=1e-13)


def test_warmup_helper():
    opt = make_opt()
    sched = S.warmup(opt, 3, after=S.StepLR(opt, step_size=2, gamma=0.5), start_factor=0.25)
    got = lr_sequence(sched, opt, 8)

    def schedule(b, e):
        return b * (0.25 + 0.75 * e / 3) if e < 3 else b * 0.5 ** ((e - 3) // 2)

    np.testing.assert_allclose(got, expected(schedule, 8), rtol=1e-13)
    plain = S.warmup(make_opt(), 3)
    assert isinstance(plain, S.LinearLR) and plain.total_iters == 3


# --- resuming --------------------------------------------------------------------------------
SCHEDULES = {
    "cosine": lambda opt: S.CosineAnnealingLR(opt, T_max=7, eta_min=0.001),
    "step": lambda opt: S.StepLR(opt, 2, 0.5),
    "one_cycle": lambda opt: S.OneCycleLR(opt, max_lr=1.0, total_steps=12),
    "sequential": lambda opt: S.warmup(opt, 3, after=S.CosineAnnealingLR(opt, T_max=8)),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_resumed_schedule_continues_exactly(name):
    opt = make_opt(momentum=0.9)
    sched = SCHEDULES[name](opt)
    for _ in range(4):
        opt.step()
        sched.step()
    opt_state = opt.state_dict()
    sched_state = json.loads(json.dumps(sched.state_dict()))  # plain numbers and lists
    straight = lr_sequence(sched, opt, 6)

    opt2 = make_opt(momentum=0.9)
    sched2 = SCHEDULES[name](opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    np.testing.assert_array_equal(lr_sequence(sched2, opt2, 6), straight)


def test_resumed_plateau_schedule_keeps_its_counters():
    opt = make_opt()
    sched = S.ReduceLROnPlateau(opt, patience=2)
    for loss in [1.0, 2.0, 2.0]:
        sched.step(loss)
    state = json.loads(json.dumps(sched.state_dict()))
    sched2 = S.ReduceLROnPlateau(make_opt(), patience=2)
    sched2.load_state_dict(state)
    sched2.step(2.0)  # the third bad epoch: reduces only if the count was restored
    assert sched2.get_last_lr()[0] == pytest.approx(0.05)


def test_state_dict_of_another_schedule_is_refused():
    opt = make_opt()
    with pytest.raises(ValueError, match="does not belong to this schedule"):
        S.StepLR(opt, 2).load_state_dict(S.CosineAnnealingLR(opt, 3).state_dict())


def test_resuming_at_an_epoch_needs_initial_lr():
    with pytest.raises(ValueError, match="needs 'initial_lr' in param group 0"):
        S.StepLR(make_opt(), 2, last_epoch=5)


# --- argument validation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda o: S.StepLR(o, 0), ValueError, "StepLR: step_size must be an integer >= 1; got 0"),
        (lambda o: S.StepLR(o, 2.5), ValueError, "step_size must be an integer >= 1; got 2.5"),
        (lambda o: S.StepLR(o, 2, gamma=0), ValueError, r"gamma must be a finite number in \(0.0"),
        (lambda o: S.ExponentialLR(o, -0.5), ValueError, "ExponentialLR: gamma .* got -0.5"),
        (lambda o: S.CosineAnnealingLR(o, 0), ValueError, "T_max must be an integer >= 1"),
        (lambda o: S.CosineAnnealingLR(o, 5, eta_min=-1), ValueError, "eta_min must be"),
        (lambda o: S.LinearLR(o, start_factor=0), ValueError, r"start_factor .* \(0.0, 1.0\]"),
        (lambda o: S.LinearLR(o, end_factor=1.5), ValueError, "end_factor .* got 1.5"),
        (lambda o: S.LinearLR(o, total_iters=0), ValueError, "total_iters must be an integer"),
        (lambda o: S.OneCycleLR(o, 1.0), ValueError, "give total_steps, or both epochs"),
        (lambda o: S.OneCycleLR(o, 1.0, 10, pct_start=1.5), ValueError, "pct_start .* got 1.5"),
        (lambda o: S.OneCycleLR(o, 1.0, 10, pct_start=0.05), ValueError, "leaves a phase"),
        (
            lambda o: S.OneCycleLR(o, 1.0, 10, anneal_strategy="exp"),
            ValueError,
            "'cos' or 'linear'",
        ),
        (
            lambda o: S.OneCycleLR(o, [1.0], 10),
            ValueError,
            r"max_lr has 1 values but .* 2 parameter",
        ),
        (lambda o: S.OneCycleLR(o, -1.0, 10), ValueError, "max_lr must be"),
        (lambda o: S.ReduceLROnPlateau(o, mode="low"), ValueError, "mode must be 'min' or 'max'"),
        (lambda o: S.ReduceLROnPlateau(o, factor=1.0), ValueError, r"factor .* \(0.0, 1.0\)"),
        (lambda o: S.ReduceLROnPlateau(o, patience=-1), ValueError, "patience must be an integer"),
        (lambda o: S.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "'rel' or 'abs'"),
        (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "min_lr has 1 values"),
        (lambda o: S.SequentialLR(o, [S.StepLR(o, 2)], [3]), ValueError, "need 0 milestone"),
        (lambda o: S.SequentialLR(o, [S.StepLR(o, 2)] * 3, [4, 2]), ValueError, "increasing"),
        (lambda o: S.SequentialLR(o, [S.ReduceLROnPlateau(o)], []), TypeError, "epoch-driven"),
        (lambda o: S.SequentialLR(o, [S.StepLR(make_opt(), 2)], []), ValueError, "different opt"),
        (lambda o: S.StepLR(object(), 2), TypeError, "expected a gradwell Optimizer; got object"),
    ],
)
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make(make_opt(momentum=0.9))


def test_plateau_step_needs_a_number():
    sched = S.ReduceLROnPlateau(make_opt())
    with pytest.raises(TypeError, match="needs the monitored metric as a number; got 'low'"):
        sched.step("low")
