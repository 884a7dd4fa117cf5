"""The doctor's thresholds, each with the reason for its value.

They are ratios and fractions, never absolute numbers tied to one model or seed:
the same rule must hold for a 2-8-8-2 net and a 784-512-256-10 one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """Decision rules of the detectors (override any with ``Doctor(thresholds=...)``).

    >>> Thresholds().vanishing_ratio
    0.01
    >>> Thresholds(dead_warning=0.5).dead_warning
    0.5
    """

    # --- windows --------------------------------------------------------------------
    #: Fewest sampled steps a window-based rule needs before it may fire.
    min_samples: int = 5
    #: Fraction of a window's sampled steps in which a condition must hold ("persistent").
    persistence: float = 0.8
    #: Fewest examples seen by the activation monitor before a unit may be called dead or
    #: pinned. A unit that is active for 2% of examples goes unseen in 256 examples with
    #: probability 0.98**256 < 0.6%.
    min_window_examples: int = 256

    # --- vanishing gradients --------------------------------------------------------
    #: A hidden layer is starved when the gradient reaching its output is below this
    #: fraction of the strongest gradient reaching any later hidden layer. A sigmoid
    #: passes on at most 1/4 of the gradient (sigma' <= 0.25), so two decades is what
    #: three or four sigmoid layers do; ReLU with He initialisation keeps the ratio near 1.
    vanishing_ratio: float = 1e-2
    #: Starved by five decades: the layer learns nothing at all.
    vanishing_critical_ratio: float = 1e-5

    # --- exploding gradients --------------------------------------------------------
    #: Growth of the total gradient norm over its value at the start of training.
    #: Healthy runs shrink it or grow it a few times; a hundredfold is a runaway.
    explode_growth: float = 100.0
    explode_critical_growth: float = 1e4

    # --- activations ----------------------------------------------------------------
    #: A ReLU layer with this fraction of its units silent for every example of a window.
    dead_info: float = 0.1
    dead_warning: float = 0.3
    dead_critical: float = 0.9
    #: Warning level for units that were never active since initialisation (deep, narrow
    #: ReLU stacks on low-dimensional inputs leave 10-40% of some layers silent from the start).
    dead_from_start_warning: float = 0.5
    #: sigmoid outputs within this distance of 0 or 1 are saturated: sigma' < 0.0099, under
    #: 4% of its peak 0.25.
    sigmoid_margin: float = 0.01
    #: |tanh| above this is saturated: tanh' < 0.02, 2% of its peak 1.
    tanh_limit: float = 0.99
    #: A unit is pinned when saturated for at least this fraction of a window's examples.
    pinned_unit: float = 0.95
    #: Fractions of pinned units in a layer for info / warning / critical.
    saturated_info: float = 0.1
    saturated_warning: float = 0.3
    saturated_critical: float = 0.9
    #: Fractions of a layer's outputs (example x unit) saturated, for info / warning. Healthy
    #: sigmoid and tanh layers stay well under half; a layer fed unscaled inputs goes over 0.9.
    saturated_output_info: float = 0.4
    saturated_output_warning: float = 0.7

    # --- learning rate --------------------------------------------------------------
    #: Loss diverged: the latest smoothed loss is this many times the starting loss.
    diverge_factor: float = 2.0
    diverge_critical_factor: float = 10.0
    #: Loss spikes: steps whose loss is this many times both the starting and the median
    #: loss. Mini-batch noise gives a few times; an overshooting step gives orders of magnitude.
    loss_spike_factor: float = 100.0
    #: Loss gave back at least this share of the progress it had made...
    giveback_share: float = 0.5
    #: ...and rose at least this many times above its best.
    giveback_factor: float = 1.5
    #: Weights change by more than this fraction per step while the loss goes nowhere.
    #: A well-tuned run changes them by about 1e-3 per step.
    update_ratio_high: float = 0.1
    #: Weights change by less than this fraction per step...
    update_ratio_low: float = 1e-4
    #: ...and the loss improved by less than this share of its starting value.
    stalled_progress: float = 0.05
    #: Fewest optimizer steps before "barely moving" may be judged.
    min_steps_for_stall: int = 30
    #: Stalled: the epoch losses of the last third of the run never got this share below the
    #: best before it (blocks of steps, when there are fewer than 4 epochs: 4 times this)...
    stall_improvement: float = 0.005
    #: ...while at this share of the starting loss, or of the best constant prediction's
    #: (cross-entropy at the class entropy: chance).
    stall_level: float = 0.9

    # --- oscillation ----------------------------------------------------------------
    #: Oscillating (judged on 6 epochs or more): the epoch loss changes direction at least
    #: this often (a steady descent: rarely)...
    oscillation_flips: float = 0.4
    #: ...by a median step of at least this share of the starting loss (the batch noise of
    #: a healthy run, averaged over an epoch, is well under one per cent).
    oscillation_swing: float = 0.1
    #: ...or the step loss jumps to ``loss_spike_factor`` times its typical level and comes
    #: back down at least this many separate times (one blow-up and recovery is an
    #: overshoot; again and again, the steps swing past the minimum and back).
    oscillation_spikes: int = 3

    # --- features -------------------------------------------------------------------
    #: A column whose 1st or 99th percentile lies beyond +-this is far from [-1, 1].
    feature_magnitude: float = 10.0
    #: Ranges of two columns differing more than this many times (the audit's rule).
    feature_range_ratio: float = 100.0

    # --- targets and initialisation -----------------------------------------------
    #: Regression targets whose median magnitude or spread is above this are off unit scale.
    target_magnitude: float = 100.0
    #: A fresh model's loss above this many times its expected value (log(classes) for
    #: cross-entropy, the target's second moment plus 1 for MSE; He or Glorot init start
    #: within about twice it) is badly initialised...
    init_loss_factor: float = 5.0
    #: ...when its layers multiply the signal's scale by more than this (He init with ReLU
    #: gives sqrt(2), Glorot about 1, PyTorch's default 0.58)...
    init_gain_high: float = 2.5
    #: ...or when the activations' scale grows or shrinks by this much from the first layer
    #: to the last.
    init_depth_ratio: float = 100.0

    # --- dropout --------------------------------------------------------------------
    #: A dropout rate at or above this drops nearly everything (1.0 drops everything). The
    #: usual rates are 0.1-0.5 (the original paper keeps half a hidden layer); at 0.8 the
    #: layer after sees a fifth of its inputs, scaled by 5, and the training loss is mostly
    #: noise (a 64-unit digits MLP at 0.85, in PyTorch: epoch loss still 1.34 after 6 epochs).
    dropout_high: float = 0.8

    # --- overfitting ----------------------------------------------------------------
    #: Validation loss this far above its best (relative)...
    overfit_rise: float = 0.1
    overfit_info_rise: float = 0.03
    #: ...for at least this many epochs after the best one, while training loss fell.
    overfit_patience: int = 3
    #: ...and the epochs after the best rise as a trend (Kendall's tau at least this), not a
    #: plateau whose noise happens to sit above the best value.
    overfit_trend: float = 0.2
    #: ...or they sit above the best by this many times their median change from one epoch
    #: to the next (a plateau of noise around the best level: about 1)...
    overfit_noise_multiple: float = 5.0
    #: ...while the training loss is under this share of the best validation loss (the
    #: training set memorised, not a model near chance growing confident).
    overfit_memorised: float = 0.5
    #: ...while the training loss fell by at least this share since the best epoch (the
    #: model kept fitting the training set).
    overfit_train_fall: float = 0.1

    # --- batch-norm statistics --------------------------------------------------------
    #: Evaluation (running statistics) gives back this share of what training gained (the
    #: initial loss minus the loss with batch statistics, on the same rows of the training
    #: data). Healthy BatchNorm1d MLPs and BatchNorm2d CNNs give back 0-4%; momentum 0.01
    #: over 100 batches about 10-20%, momentum 0.001 up to 150%.
    bn_gap: float = 0.1
    bn_gap_critical: float = 0.5
    #: A layer's running statistics miss its evaluation-mode input when the running mean is
    #: this many of the input's standard deviations off (RMS over channels; on 128 rows of
    #: healthy runs mostly under 0.15, once 0.26: the loss gap must agree)...
    bn_mean_shift: float = 0.3
    #: ...or the running variance is off by this factor (geometric mean over channels;
    #: healthy runs: 0.85-1.25, dropout 0.5 feeding the layer: 2-6).
    bn_var_ratio: float = 1.5
    #: The running statistics still hold this share of their initial values (mean 0,
    #: variance 1) after (1 - momentum) ** batches: too few batches for the momentum.
    bn_stale: float = 0.01
    #: A momentum above this keeps about the last 1 / momentum batches only.
    bn_momentum_high: float = 0.5
