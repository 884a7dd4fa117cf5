"""The doctor as a medical test: sick recipes must be caught, located and repaired; healthy
recipes must stay quiet.

Each recipe is a config of the built-in recipe (gradwell.doctor.recipes: an MLP on
built-in or generated data) with one thing wrong, the failures that published
debugging tools are evaluated on. Its comment gives the symptom measured in PyTorch
with the same data, architecture, init scheme, optimizer and schedule
(``python benchmarks/doctor_cases.py --torch`` measures them again: torch 2.13 on the CPU,
seed 0; the weights are drawn by torch, so the numbers differ from gradwell's run, the
symptom does not).

For each sick recipe the table says whether the kind it was built to show is among
the findings (detected), whether the finding names the broken place where one exists
(located), and whether ``gw.doctor.repair`` (at most 3 rounds, the top remedy first)
made a detected run healthy, the doctor silent, with the metric no worse (repaired); the
metric before and after is beside it. For each
healthy recipe it says whether the doctor stayed quiet, and the doctor's cost: the
training time with the doctor over the time without it (thread CPU time, median of 5
alternating runs; these runs are 20-200 ms, so the doctor's fixed cost per run and per
epoch, the feature audit and the diagnosis, weighs more than in long runs: see
``doctor_overhead.py`` for the cost per step).

    python benchmarks/doctor_cases.py            # the whole table, about two minutes
    python benchmarks/doctor_cases.py --only dead,nan   # recipes whose name contains these
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import gradwell as gw
from gradwell.doctor import recipes
from gradwell.doctor.edits import init_for
from gradwell.doctor.repair import judge


@dataclass
class Recipe:
    name: str
    kind: str | None  # None: a healthy recipe
    config: dict[str, Any]
    places: list[str] = field(default_factory=list)  # any of these in the finding's `where`


SCALED = {"scale_features": True}
R = Recipe
SICK = [
    # ---------------------------------------------------------------- vanishing gradients
    # PyTorch: loss 0.698 (step 0), peak 0.735, last 0.693; epoch losses 0.697, 0.695, 0.694,
    #   0.695, 0.694, 0.695 ...; val loss 0.693, best 0.693 (epoch 5), last 0.693; val acc 0.49
    R("sigmoid_x8_circle", "vanishing_gradients",
      {"data": "circle", "widths": [16] * 8, "activation": "Sigmoid", "lr": 0.05, "epochs": 8},
      ["0"]),
    # PyTorch: loss 1.38 (step 0), peak 1.42, last 1.22; epoch losses 1.32, 1.11, 1.1, 1.11, 1.1,
    #   1.1 ...; val loss 1.12, best 1.04 (epoch 7), last 1.11; val acc 0.17
    R("sigmoid_x6_wine", "vanishing_gradients",
      {"data": "wine", **SCALED, "widths": [32] * 6, "activation": "Sigmoid", "lr": 0.1,
       "epochs": 15}, ["0"]),
    # PyTorch: loss 0.701 (step 0), peak 0.817, last 0.401; epoch losses 0.66, 0.658, 0.658,
    #   0.661, 0.66, 0.657 ...; val loss 0.702, best 0.678 (epoch 5), last 0.736; val acc 0.59
    R("sigmoid_x10_cancer", "vanishing_gradients",
      {"data": "breast_cancer", **SCALED, "widths": [16] * 10, "activation": "Sigmoid",
       "lr": 0.1, "epochs": 8}, ["0"]),
    # ---------------------------------------------------------------- NaN and explosions
    # PyTorch: loss 0.236 (step 0), peak 2.39e+29, last nan, non-finite from step 4; epoch losses
    #   nan, nan, nan, nan, nan, nan; val loss nan, best nan (epoch 1), last nan; val r2 nan
    R("lr3_plane_nan", "nan_trap", {"data": "plane", "widths": [16, 16], "lr": 3.0, "epochs": 6},
      ["MSELoss"]),
    # PyTorch: loss nan (step 0), peak nan, last nan, non-finite from step 0; epoch losses nan,
    #   nan, nan, nan, nan, nan; val loss nan, best nan (epoch 1), last nan; val acc 0.49
    R("exp_activation_circle", "nan_trap",
      {"data": "circle", "widths": [16, 16], "activation": "Exp", "init": "kaiming",
       "init_gain": 3.0, "lr": 0.5, "epochs": 6}, ["1", "3", "CrossEntropyLoss"]),
    # PyTorch: loss nan (step 0), peak nan, last nan, non-finite from step 0; epoch losses nan,
    #   nan, nan, nan, nan, nan; val loss nan, best nan (epoch 1), last nan; val r2 nan
    R("log_of_negative_msle", "nan_trap",
      {"data": "plane", "target_offset": 3.0, "widths": [16, 16], "loss": "msle", "lr": 0.5,
       "epochs": 6}, ["4", "msle", "log"]),
    # PyTorch: loss 0.491 (step 0), peak 1.48e+04, last 0.726; epoch losses 1.57e+03, 110, 0.697,
    #   0.975, 0.983, 0.858; val loss 1.29, best 0.678 (epoch 2), last 0.687; val acc 0.59
    R("momentum_lr2_cancer", "exploding_gradients",
      {"data": "breast_cancer", **SCALED, "widths": [32, 32], "lr": 2.0, "momentum": 0.9,
       "epochs": 6}),
    # ---------------------------------------------------------------- learning rate
    # PyTorch: loss 1.25 (step 0), peak 618, last 155; epoch losses 199, 99.7, 10.7, 3.91, 5.94,
    #   5.65 ...; val loss 343, best 112 (epoch 5), last 1.11e+03; val acc 0.92
    R("adam_lr1_wine", "learning_rate_too_high",
      {"data": "wine", **SCALED, "widths": [32, 32], "optimizer": "Adam", "lr": 1.0,
       "epochs": 15}),
    # PyTorch: loss 0.743 (step 0), peak 2.4, last 0.459; epoch losses 0.672, 0.884, 0.655, 0.618,
    #   0.603, 0.544; val loss 2.56, best 0.431 (epoch 3), last 0.663; val acc 0.68
    R("lr3_circle_overshoot", "learning_rate_too_high",
      {"data": "circle", "widths": [32, 32], "lr": 3.0, "epochs": 6}),
    # PyTorch: loss 0.812 (step 0), peak 0.871, last 0.835; epoch losses 0.765, 0.765, 0.765,
    #   0.765, 0.765, 0.765 ...; val loss 0.789, best 0.788 (epoch 10), last 0.788; val acc 0.49
    R("lr1e-5_circle", "learning_rate_too_low",
      {"data": "circle", "widths": [16, 16], "lr": 1e-5, "epochs": 10}),
    # PyTorch: loss 2.95 (step 0), peak 3.21, last 2.32; epoch losses 2.55, 2.54, 2.53, 2.52,
    #   2.51, 2.5; val loss 2.54, best 2.49 (epoch 6), last 2.49; val acc 0.14
    R("lr1e-4_digits", "learning_rate_too_low",
      {"data": "digits", **SCALED, "widths": [64], "lr": 1e-4, "epochs": 6}),
    # ---------------------------------------------------------------- dead units, stalls
    # PyTorch: loss 0.743 (step 0), peak 40.1, last 1.94; epoch losses 4.31, 2.06, 1.9, 1.89, 1.9,
    #   2.16; val loss 2.01, best 1.39 (epoch 2), last 1.9; val acc 0.51
    R("lr8_circle_dead", "dead_relu",
      {"data": "circle", "widths": [32, 32], "lr": 8.0, "epochs": 6}, ["1", "3"]),
    # PyTorch: loss 0.743 (step 0), peak 3.2e+04, last 4.88; epoch losses 2.14e+03, 5.63, 5.23,
    #   5.11, 5.12, 5.54 ...; val loss 4.82, best 3.02 (epoch 5), last 4.1; val acc 0.51
    R("lr20_circle_stalled", "stalled_training",
      {"data": "circle", "widths": [32, 32], "lr": 20.0, "epochs": 8}),
    # PyTorch: loss 0.813 (step 0), peak 6.1e+03, last 4.74; epoch losses 500, 1.94, 2.38, 1.96,
    #   2.35, 2.11 ...; val loss 3.73, best 0.826 (epoch 5), last 3.75; val acc 0.52
    R("lr10_xor_stalled", "stalled_training",
      {"data": "xor", "widths": [32, 32], "lr": 10.0, "epochs": 8}),
    # PyTorch: loss 2.95 (step 0), peak 3.26, last 2.67; epoch losses 2.55, 2.55, 2.55, 2.55,
    #   2.55, 2.55 ...; val loss 2.55, best 2.55 (epoch 8), last 2.55; val acc 0.13
    R("lr1e-6_digits_stalled", "stalled_training",
      {"data": "digits", **SCALED, "widths": [64], "lr": 1e-6, "epochs": 8}),
    # ---------------------------------------------------------------- oscillation
    # PyTorch: loss 1.76 (step 0), peak 3.71e+03, last 1.38; epoch losses 5.6, 43.5, 44.3, 7.34,
    #   1.99, 2.65 ...; val loss 1.1, best 1.1 (epoch 1), last 2.14; val acc 0.43
    R("batch1_momentum_iris", "oscillating_loss",
      {"data": "iris", **SCALED, "widths": [16], "lr": 0.1, "momentum": 0.99, "batch_size": 1,
       "epochs": 10}),
    # PyTorch: loss 0.784 (step 0), peak 130, last 0.00653; epoch losses 2.25, 1.94, 1.24, 1.49,
    #   1.14, 1.23 ...; val loss 0.751, best 0.685 (epoch 7), last 3.34; val acc 0.43
    R("batch1_momentum_gaussians", "oscillating_loss",
      {"data": "gaussians", "widths": [16], "lr": 0.2, "momentum": 0.95, "batch_size": 1,
       "epochs": 8}),
    # ---------------------------------------------------------------- dropout
    # PyTorch: loss 0.693 (step 0), peak 0.699, last 0.693; epoch losses 0.694, 0.694, 0.694,
    #   0.694, 0.693, 0.694; val loss 0.758, best 0.758 (epoch 4), last 0.758; val acc 0.50
    R("dropout1_circle", "dropout_misconfigured",
      {"data": "circle", "widths": [32, 32], "dropout": 1.0, "epochs": 6}, ["2", "5"]),
    # PyTorch: loss 8.28 (step 0), peak 9.92, last 3.79; epoch losses 5.57, 6.96, 3.69, 4.42,
    #   3.76, 3.22 ...; val loss 0.772, best 0.577 (epoch 2), last 0.899; val acc 0.78
    R("dropout0.9_wine", "dropout_misconfigured",
      {"data": "wine", **SCALED, "widths": [64, 64], "dropout": 0.9, "lr": 0.05, "epochs": 10},
      ["2", "5"]),
    # PyTorch: loss 4.52 (step 0), peak 4.66, last 1.14; epoch losses 2.82, 1.87, 1.63, 1.55,
    #   1.39, 1.34; val loss 1.3, best 0.657 (epoch 6), last 0.657; val acc 0.90
    R("dropout0.85_digits", "dropout_misconfigured",
      {"data": "digits", **SCALED, "widths": [64], "dropout": 0.85, "lr": 0.05, "epochs": 6},
      ["2"]),
    # ---------------------------------------------------------------- feature scale
    # PyTorch: loss 434 (step 0), peak 1.29e+05, last 1.12; epoch losses 3.76e+04, 1.1, 1.09,
    #   1.09, 1.09, 1.09 ...; val loss 1.08, best 1.07 (epoch 7), last 1.08; val acc 0.47
    R("raw_wine", "unscaled_features",
      {"data": "wine", "widths": [32], "lr": 0.05, "epochs": 15}, ["proline"]),
    # PyTorch: loss 52.9 (step 0), peak 3.05e+03, last 0.637; epoch losses 226, 1.66, 0.674, 0.67,
    #   0.667, 0.665 ...; val loss 0.678, best 0.678 (epoch 10), last 0.678; val acc 0.59
    R("raw_breast_cancer", "unscaled_features",
      {"data": "breast_cancer", "widths": [32], "lr": 0.01, "epochs": 10},
      ["worst area", "mean area", "area error"]),
    # PyTorch: loss 234 (step 0), peak 3.67e+05, last 2.3; epoch losses 1.58e+04, 2.3, 2.3, 2.3,
    #   2.3, 2.3; val loss 2.99, best 2.99 (epoch 1), last 3; val acc 0.08
    R("raw_pixels_digits", "unscaled_features",
      {"data": "digits", "feature_multiplier": 255 / 16, "widths": [64], "lr": 0.1, "epochs": 6},
      [f"pixel_{i}_{j}" for i in range(8) for j in range(8)]),
    # PyTorch: loss 6.49e+04 (step 0), peak 2.26e+12, last 3.41e+06; epoch losses 2.05e+11,
    #   8.29e+06, 7.9e+06, 7.53e+06, 7.18e+06, 6.84e+06 ...; val loss 8.46e+06, best 3.39e+06 (epoch
    #   20), last 3.39e+06; val r2 -4.22e+06
    R("raw_diabetes_features", "unscaled_features",
      {"data": "diabetes", "target_scaler": "standardize", "widths": [32], "lr": 0.001,
       "epochs": 20}, ["s1", "s2", "bp", "age", "s3", "s4", "s5", "s6", "bmi", "sex"]),
    # ---------------------------------------------------------------- target scale
    # PyTorch: loss 2.17e+04 (step 0), peak 6.59e+04, last 3.03e+03; epoch losses 2.88e+04,
    #   2.76e+04, 2.61e+04, 2.39e+04, 2.1e+04, 1.75e+04 ...; val loss 2.67e+04, best 4.05e+03 (epoch
    #   20), last 4.05e+03; val r2 0.184
    R("diabetes_raw_targets", "unscaled_targets",
      {"data": "diabetes", **SCALED, "widths": [32], "optimizer": "Adam", "lr": 0.01,
       "epochs": 20}),
    # PyTorch: loss 3.4e+10 (step 0), peak 1.76e+20, last 5.94e+14; epoch losses 1.18e+19,
    #   3.04e+16, 1.66e+16, 9.04e+15, 4.93e+15, 2.69e+15 ...; val loss 3.97e+16, best 5.7e+14 (epoch
    #   8), last 5.7e+14; val r2 -2.29e+06
    R("plane_dollars_targets", "unscaled_targets",
      {"data": "plane", "target_multiplier": 4e4, "target_offset": 1.8e5, "widths": [16, 16],
       "lr": 0.01, "epochs": 8}),
    # PyTorch: loss 2.18e+10 (step 0), peak 9.17e+10, last 1.48e+09; epoch losses 2.94e+10,
    #   2.94e+10, 2.94e+10, 2.94e+10, 2.94e+10, 2.93e+10 ...; val loss 2.79e+10, best 2.78e+10
    #   (epoch 15), last 2.78e+10; val r2 -4.59
    R("diabetes_thousands_targets", "unscaled_targets",
      {"data": "diabetes", **SCALED, "target_multiplier": 1000.0, "widths": [32],
       "optimizer": "Adam", "lr": 0.01, "epochs": 15}),
    # ---------------------------------------------------------------- output and loss
    # PyTorch: loss 0.71 (step 0), peak 0.71, last 0.341; epoch losses 0.607, 0.477, 0.405, 0.373,
    #   0.356, 0.346 ...; val loss 0.514, best 0.328 (epoch 8), last 0.328; val acc 1.00
    R("softmax_before_ce_circle", "output_loss_mismatch",
      {"data": "circle", "widths": [32, 32], "output": "Softmax", "lr": 0.5, "epochs": 8},
      ["5"]),
    # PyTorch: loss 1.24 (step 0), peak 1.24, last 0.764; epoch losses 1.19, 1.05, 1, 0.966,
    #   0.935, 0.899 ...; val loss 1.04, best 0.682 (epoch 20), last 0.682; val acc 0.87
    R("relu_output_ce_iris", "output_loss_mismatch",
      {"data": "iris", **SCALED, "widths": [16], "output": "ReLU", "lr": 0.1, "epochs": 20},
      ["3"]),
    # PyTorch: loss 4.39 (step 0), peak 4.39, last 0.14; epoch losses 3.04, 1.12, 0.533, 0.327,
    #   0.234, 0.182 ...; val loss 1.29, best 0.07 (epoch 10), last 0.07; val acc 1.00
    R("outputs_vs_classes_wine", "output_loss_mismatch",
      {"data": "wine", **SCALED, "widths": [32], "out_features": 7, "lr": 0.1, "epochs": 10},
      ["2"]),
    # PyTorch: loss 2.33 (step 0), peak 2.33, last 1.62; epoch losses 2.16, 1.97, 1.85, 1.77,
    #   1.72, 1.68; val loss 2.04, best 1.68 (epoch 6), last 1.68; val acc 0.89
    R("sigmoid_before_ce_digits", "output_loss_mismatch",
      {"data": "digits", **SCALED, "widths": [64], "output": "Sigmoid", "lr": 0.1,
       "epochs": 6}, ["3"]),
    # ---------------------------------------------------------------- non-linearity
    # PyTorch: loss 0.813 (step 0), peak 0.979, last 0.689; epoch losses 0.733, 0.719, 0.727,
    #   0.716, 0.721, 0.734 ...; val loss 0.704, best 0.684 (epoch 5), last 0.688; val acc 0.39
    R("linear_stack_circle", "missing_nonlinearity",
      {"data": "circle", "widths": [16, 16], "activations": [None, None], "lr": 0.1,
       "epochs": 8}, ["0", "1", "2"]),
    # PyTorch: loss 0.766 (step 0), peak 0.766, last 0.0796; epoch losses 0.414, 0.226, 0.171,
    #   0.141, 0.122, 0.108 ...; val loss 0.275, best 0.0813 (epoch 10), last 0.0813; val acc 0.99
    R("half_linear_xor", "missing_nonlinearity",
      {"data": "xor", "widths": [16, 16], "activations": [None, "ReLU"], "lr": 0.1,
       "epochs": 10}, ["0", "1"]),
    # ---------------------------------------------------------------- initialisation
    # PyTorch: loss 336 (step 0), peak 3.72e+16, last nan, non-finite from step 4; epoch losses
    #   nan, nan, nan, nan, nan, nan; val loss nan, best nan (epoch 1), last nan; val acc 0.41
    R("he_x2.8_cancer", "bad_initialization",
      {"data": "breast_cancer", **SCALED, "widths": [64] * 6, "init_gain": 2.8, "lr": 0.01,
       "epochs": 6}, ["0", "2", "4", "6", "8", "10", "12"]),
    # PyTorch: loss 797 (step 0), peak 797, last 0; epoch losses 238, 10, 1.6, 7.93e-07, 7.9e-07,
    #   7.87e-07 ...; val loss 83.4, best 48.3 (epoch 2), last 53.3; val acc 0.89
    R("he_x5_wine", "bad_initialization",
      {"data": "wine", **SCALED, "widths": [32, 32, 32], "init_gain": 5.0, "lr": 0.01,
       "epochs": 10}, ["0", "2", "4", "6"]),
    # PyTorch: loss 0.693 (step 0), peak 0.702, last 0.693; epoch losses 0.694, 0.694, 0.694,
    #   0.694, 0.693, 0.694 ...; val loss 0.693, best 0.693 (epoch 1), last 0.693; val acc 0.49
    R("he_x0.2_circle", "bad_initialization",
      {"data": "circle", "widths": [32] * 8, "init_gain": 0.2, "lr": 0.1, "epochs": 8},
      ["0", "2", "4", "6", "8", "10", "12", "14", "16"]),
    # ---------------------------------------------------------------- saturation
    # PyTorch: loss 11.8 (step 0), peak 13.9, last 2.14; epoch losses 9.23, 5.86, 4.68, 3, 2.28,
    #   2.14; val loss 7, best 2.06 (epoch 5), last 2.07; val acc 0.34
    R("tanh_x6_normal_digits", "saturated_activations",
      {"data": "digits", **SCALED, "widths": [32] * 6, "activation": "Tanh",
       "init": "xavier_normal", "init_gain": 6.0, "lr": 0.05, "epochs": 6},
      ["1", "3", "5", "7", "9", "11"]),
    # ---------------------------------------------------------------- batch-norm statistics
    # PyTorch: loss 0.795 (step 0), peak 0.795, last 0.12; epoch losses 0.29, 0.12, 0.116,
    #   0.0789, 0.103, 0.177 ...; val loss 0.703, best 0.663 (epoch 8), last 0.663; val acc 0.70
    #   (with momentum 0.1: val loss 0.0206, val acc 1.00)
    R("bn_momentum0.001_circle", "batchnorm_statistics_mismatch",
      {"data": "circle", "widths": [32, 32], "batchnorm": True, "batchnorm_momentum": 0.001,
       "optimizer": "Adam", "lr": 0.01, "epochs": 8}, ["1", "4"]),
    # ---------------------------------------------------------------- tiny data
    # PyTorch: loss 1.27 (step 0), peak 1.27, last 1.51e-06; epoch losses 0.959, 0.341, 0.0837,
    #   0.00289, 0.000399, 6.45e-05 ...; val loss 0.301, best 0.0361 (epoch 6), last 0.0785; val acc
    #   0.92
    R("tiny_cancer_overfit", "overfitting",
      {"data": "breast_cancer", **SCALED, "n": 60, "widths": [256, 256], "optimizer": "Adam",
       "lr": 0.01, "epochs": 100}),
    # PyTorch: loss 0.743 (step 0), peak 1.86, last 0.102; epoch losses 1.12, 1.29, 1.12, 0.73,
    #   0.753, 0.721 ...; val loss 2.76, best 0.774 (epoch 5), last 6.03; val acc 0.42
    R("tiny_spiral_overfit", "overfitting",
      {"data": "spiral", "n": 60, "noise": 0.2, "widths": [256, 256], "optimizer": "Adam",
       "lr": 0.01, "epochs": 150}),
]  # fmt: skip

HEALTHY = [
    # PyTorch: loss 0.812 (step 0), peak 0.812, last 0.122; epoch losses 0.656, 0.53, 0.446,
    #   0.376, 0.315, 0.264 ...; val loss 0.567, best 0.0956 (epoch 10), last 0.0956; val acc 1.00
    R("circle_relu_sgd", None, {"data": "circle", "widths": [16, 16], "lr": 0.1, "epochs": 10}),
    # PyTorch: loss 1.86 (step 0), peak 1.86, last 0.0537; epoch losses 1.35, 0.6, 0.321, 0.196,
    #   0.133, 0.0993 ...; val loss 0.678, best 0.144 (epoch 5), last 0.149; val acc 0.94
    R("wine_adam", None, {"data": "wine", **SCALED, "widths": [32], "optimizer": "Adam",
                          "lr": 0.01, "epochs": 8}),
    # PyTorch: loss 1.03 (step 0), peak 1.03, last 0.0235; epoch losses 0.357, 0.0939, 0.0677,
    #   0.0539, 0.05, 0.046 ...; val loss 0.159, best 0.0743 (epoch 6), last 0.103; val acc 0.96
    R("cancer_momentum", None, {"data": "breast_cancer", **SCALED, "widths": [32], "lr": 0.05,
                                "momentum": 0.9, "epochs": 10}),
    # PyTorch: loss 2.95 (step 0), peak 2.95, last 0.0952; epoch losses 1.8, 0.904, 0.546, 0.378,
    #   0.286, 0.23 ...; val loss 1.22, best 0.168 (epoch 10), last 0.168; val acc 0.96
    R("digits_adam", None, {"data": "digits", **SCALED, "widths": [64], "optimizer": "Adam",
                            "lr": 0.001, "epochs": 10}),
    # PyTorch: loss 1.37 (step 0), peak 1.4, last 0.0818; epoch losses 1.31, 1, 0.769, 0.604,
    #   0.489, 0.411 ...; val loss 1.1, best 0.123 (epoch 30), last 0.123; val acc 0.97
    R("iris_adam", None, {"data": "iris", **SCALED, "widths": [16], "optimizer": "Adam",
                          "lr": 0.01, "epochs": 30}),
    # PyTorch: loss 0.236 (step 0), peak 0.236, last 0.00954; epoch losses 0.0489, 0.0165, 0.0147,
    #   0.0135, 0.013, 0.0125 ...; val loss 0.0197, best 0.0129 (epoch 10), last 0.0129; val r2
    #   0.918
    R("plane_sgd", None, {"data": "plane", "widths": [16, 16], "lr": 0.05, "epochs": 10}),
    # PyTorch: loss 1.87 (step 0), peak 1.87, last 1.29; epoch losses 1.14, 0.719, 0.598, 0.542,
    #   0.505, 0.476 ...; val loss 0.684, best 0.492 (epoch 6), last 0.555; val r2 0.31
    R("diabetes_scaled_targets", None, {"data": "diabetes", **SCALED, "widths": [32],
                                        "target_scaler": "standardize", "optimizer": "Adam",
                                        "lr": 0.01, "epochs": 20}),
    # PyTorch: loss 0.732 (step 0), peak 0.733, last 0.0134; epoch losses 0.697, 0.658, 0.597,
    #   0.495, 0.367, 0.244 ...; val loss 0.688, best 0.0551 (epoch 20), last 0.0551; val acc 0.99
    R("xor_tanh_adam", None, {"data": "xor", "widths": [16, 16], "activation": "Tanh",
                              "optimizer": "Adam", "lr": 0.01, "epochs": 20}),
    # PyTorch: loss 0.829 (step 0), peak 0.958, last 0.532; epoch losses 0.729, 0.674, 0.671,
    #   0.667, 0.648, 0.651 ...; val loss 0.701, best 0.266 (epoch 30), last 0.266; val acc 0.93
    R("spiral_batchnorm", None, {"data": "spiral", "widths": [32, 32], "batchnorm": True,
                                 "optimizer": "Adam", "lr": 0.01, "epochs": 30}),
    # PyTorch: loss 0.532 (step 0), peak 0.532, last 0.0245; epoch losses 0.296, 0.154, 0.102,
    #   0.0746, 0.0643, 0.053 ...; val loss 0.178, best 0.0169 (epoch 10), last 0.0169; val acc 1.00
    R("gaussians_dropout", None, {"data": "gaussians", "widths": [16], "dropout": 0.2,
                                  "lr": 0.1, "epochs": 10}),
    # PyTorch: loss 0.677 (step 0), peak 0.781, last 0.425; epoch losses 0.714, 0.691, 0.673,
    #   0.657, 0.628, 0.602 ...; val loss 0.69, best 0.444 (epoch 10), last 0.444; val acc 0.81
    R("circle_tanh_x4", None, {"data": "circle", "widths": [16] * 4, "activation": "Tanh",
                               "lr": 0.1, "epochs": 10}),
    # PyTorch: loss 3.37 (step 0), peak 3.37, last 0.218; epoch losses 1.43, 0.532, 0.359, 0.267,
    #   0.204, 0.172 ...; val loss 0.579, best 0.0815 (epoch 10), last 0.0815; val acc 0.98
    R("digits_dropout_adam", None, {"data": "digits", **SCALED, "widths": [64], "dropout": 0.3,
                                    "optimizer": "Adam", "lr": 0.003, "epochs": 10}),
]  # fmt: skip


def located(recipe: Recipe, findings: list[Any]) -> bool | None:
    """Whether the finding of the recipe's kind names its place (None: it has no place)."""
    if not recipe.places:
        return None
    for f in findings:
        if f.kind == recipe.kind:
            text = f.where + " " + f.explanation
            return any(p in f.locations or f"'{p}'" in text or f" {p} " in text
                       for p in recipe.places)  # fmt: skip
    return False


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def run_sick(recipe: Recipe) -> dict[str, Any]:
    result = gw.doctor.repair(recipes.build, recipes.train, recipe.config, print_fn=None)
    first = result.first
    kinds = [f.kind for f in first.findings]
    detected = recipe.kind in kinds
    no_worse = math.isfinite(result.final.score) and (
        not math.isfinite(first.score) or result.final.score >= first.score - 0.01
    )
    return {
        "name": recipe.name,
        "kind": recipe.kind,
        "detected": detected,
        "top": kinds[0] if kinds else "-",
        "located": located(recipe, first.findings),
        "repaired": detected and result.repaired and no_worse,
        "outcome": result.outcome,
        "changes": [r.action.get("action") for r in result.rounds if r.kept],
        "metric": first.metric,
        "before": first.score,
        "after": result.final.score,
    }  # fmt: skip


def overhead(config: dict[str, Any], repeats: int = 5) -> tuple[float, float, float]:
    """(training CPU time with the doctor over without, ms without, ms added): medians of
    alternating runs, in thread CPU time (other processes on a shared machine do not count)."""
    ratios, plain, added = [], [], []
    for _ in range(repeats):
        times = {}
        for doctor in (False, True):
            cfg = {**config, "doctor": doctor}
            model, opt = recipes.build(cfg)
            started = time.thread_time()
            recipes.train(model, opt, cfg)
            times[doctor] = time.thread_time() - started
        ratios.append(times[True] / times[False])
        plain.append(times[False])
        added.append(times[True] - times[False])
    return statistics.median(ratios), 1e3 * statistics.median(plain), 1e3 * statistics.median(added)


def run_healthy(recipe: Recipe) -> dict[str, Any]:
    model, opt = recipes.build(recipe.config)
    history = recipes.train(model, opt, recipe.config)
    sick = [f for f in history.findings if f.rank >= 1]
    name, score = judge(history)
    return {
        "name": recipe.name,
        "quiet": not sick,
        "found": ", ".join(f"{f.kind}@{f.where}" for f in sick) or "-",
        "metric": name,
        "score": score,
        "overhead": overhead(recipe.config),  # (ratio, ms without the doctor, ms added)
    }


def table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(line, rows)])  # fmt: skip


def yes(x: bool | None) -> str:
    return "-" if x is None else ("yes" if x else "NO")


def report(only: list[str] | None = None) -> int:
    def wanted(r: Recipe) -> bool:
        return not only or any(o in r.name for o in only)

    started = time.perf_counter()
    sick = [run_sick(r) for r in SICK if wanted(r)]
    healthy = [run_healthy(r) for r in HEALTHY if wanted(r)]
    rows = [[s["name"], s["kind"], yes(s["detected"]), s["top"], yes(s["located"]),
             yes(s["repaired"]), f"{s['metric']} {_fmt(s['before'])} -> {_fmt(s['after'])}",
             "+".join(s["changes"]) or "-"] for s in sick]  # fmt: skip
    print(table(rows, ["sick recipe", "built to show", "detected", "top finding", "located",
                       "repaired", "metric before -> after", "changes kept"]))  # fmt: skip
    print()
    rows = []
    for h in healthy:
        ratio, plain, added = h["overhead"]
        rows.append([h["name"], yes(h["quiet"]), h["found"], f"{h['metric']} {_fmt(h['score'])}",
                     f"{plain:.0f} ms", f"+{added:.0f} ms", f"{ratio:.2f}x"])  # fmt: skip
    print(table(rows, ["healthy recipe", "quiet", "findings", "metric", "run without doctor",
                       "doctor's cost", "ratio"]))  # fmt: skip
    print()

    def rate(values: list[bool | None]) -> str:
        vals = [v for v in values if v is not None]
        return f"{sum(vals)}/{len(vals)} ({100 * sum(vals) / max(len(vals), 1):.0f}%)"

    kinds = sorted({s["kind"] for s in sick})
    now = {k for k in gw.doctor.KINDS}
    missing = [k for k in kinds if k not in now]
    print(f"detected: {rate([s['detected'] for s in sick])}")
    print(f"located (where a place exists): {rate([s['located'] for s in sick])}")
    repaired = [s["repaired"] for s in sick]
    print(
        f"repaired by the top remedy via repair(): {rate(repaired)}; of those detected: "
        + rate([s["repaired"] for s in sick if s["detected"]])
    )
    print(f"healthy runs quiet: {rate([h['quiet'] for h in healthy])}")
    if healthy:
        cost = statistics.median(h["overhead"][0] for h in healthy)
        print(f"doctor's cost, median over healthy recipes: {cost:.2f}x the time without it")
    if missing:
        print("kinds this gradwell does not have yet (their recipes cannot be detected): "
              + ", ".join(missing))  # fmt: skip
    print(f"({len(sick)} sick and {len(healthy)} healthy recipes in "
          f"{time.perf_counter() - started:.0f} s)")  # fmt: skip
    return 0


# ------------------------------------------------------------------ the PyTorch twin
def torch_symptom(config: dict[str, Any]) -> str:
    """Train the same recipe in PyTorch (same data, split, architecture, init scheme,
    optimizer, batches and epochs); return the symptom in a line."""
    import torch

    c = recipes.settings(config)
    d = recipes.data(c)
    torch.manual_seed(int(c["seed"]))
    X = torch.tensor(d["X"])
    Xv = torch.tensor(d["Xv"])
    classification = d["task"] == "classification"
    y, yv = torch.tensor(d["y"]), torch.tensor(d["yv"])
    scaler = None
    if c["target_scaler"]:
        scaler = gw.preprocessing.TargetScaler(c["target_scaler"]).fit(d["y"])
        y = torch.tensor(scaler.transform(d["y"]).astype(np.float32))
    acts = (
        c["activations"] if c["activations"] is not None else [c["activation"]] * len(c["widths"])
    )

    class Exp(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return torch.exp(x)

    def act(name: str) -> Any:
        if name == "Exp":
            return Exp()
        if name.startswith("LeakyReLU"):
            return torch.nn.LeakyReLU(0.01)
        if name == "Softmax":
            return torch.nn.Softmax(dim=-1)
        return getattr(torch.nn, name)()

    layers: list[Any] = []
    n_in = X.shape[1]
    sizes = [*c["widths"], int(c["out_features"] or d["classes"])]
    for i, w in enumerate(sizes):
        a = acts[i] if i < len(c["widths"]) else None
        lin = torch.nn.Linear(n_in, w)
        init = c["init"] or init_for(a or (acts[-1] if acts and acts[-1] else "ReLU"))
        with torch.no_grad():
            if init in ("he", "kaiming"):
                torch.nn.init.kaiming_uniform_(lin.weight, nonlinearity="relu")
            elif init == "xavier_normal":
                torch.nn.init.xavier_normal_(lin.weight)
            else:
                torch.nn.init.xavier_uniform_(lin.weight)
            lin.weight *= float(c["init_gain"])
            lin.bias.zero_()
        layers.append(lin)
        if i < len(c["widths"]):
            if c["batchnorm"]:
                layers.append(torch.nn.BatchNorm1d(w, momentum=c["batchnorm_momentum"]))
            if a:
                layers.append(act(a))
            if c["dropout"] is not None:
                layers.append(torch.nn.Dropout(float(c["dropout"])))
        n_in = w
    if c["output"]:
        layers.append(act(c["output"]))
    model = torch.nn.Sequential(*layers)
    lr = float(c["lr"])
    if c["optimizer"] == "SGD":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=float(c["momentum"]))
    else:
        opt = getattr(torch.optim, c["optimizer"])(model.parameters(), lr=lr)
    if c["loss"] == "msle":
        loss_fn: Any = lambda o, t: ((torch.log(o) - torch.log(t)) ** 2).mean()  # noqa: E731
    else:
        loss_fn = torch.nn.CrossEntropyLoss() if classification else torch.nn.MSELoss()
    losses, epoch_losses, val_losses, nan_step = [], [], [], None
    bs = int(c["batch_size"])
    step = 0
    for epoch in range(int(c["epochs"])):
        order = np.random.default_rng([int(c["seed"]), epoch]).permutation(len(X))
        model.train()
        total = 0.0
        for s in range(0, len(X), bs):
            idx = torch.tensor(order[s : s + bs])
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            v = float(loss.detach())
            losses.append(v)
            total += v * len(idx)
            if not math.isfinite(v) and nan_step is None:
                nan_step = step
            loss.backward()
            opt.step()
            step += 1
        epoch_losses.append(total / len(X))
        model.eval()
        with torch.no_grad():
            yv_loss = (
                yv if scaler is None else torch.tensor(scaler.transform(d["yv"]).astype(np.float32))
            )
            val_losses.append(float(loss_fn(model(Xv), yv_loss)))
    with torch.no_grad():
        out = model(Xv).numpy()
    if classification:
        metric = f"val acc {float(np.mean(out.argmax(1) == d['yv'])):.2f}"
    else:
        pred = scaler.inverse_transform(out) if scaler is not None else out
        with np.errstate(all="ignore"):
            res = float(np.sum((pred - d["yv"]) ** 2))
            tot = float(np.sum((d["yv"] - d["yv"].mean()) ** 2))
        metric = f"val r2 {1 - res / tot:.3g}" if math.isfinite(res) else "val r2 nan"
    finite = [v for v in losses if math.isfinite(v)]
    peak = max(finite) if finite else math.nan
    nan = f", non-finite from step {nan_step}" if nan_step is not None else ""
    epochs = ", ".join(_fmt(v) for v in epoch_losses[:6])
    best = int(np.nanargmin(val_losses)) if any(map(math.isfinite, val_losses)) else 0
    return (f"loss {_fmt(losses[0])} (step 0), peak {_fmt(peak)}, last {_fmt(losses[-1])}"
            f"{nan}; epoch losses {epochs}{' ...' if len(epoch_losses) > 6 else ''}; val loss "
            f"{_fmt(val_losses[0])}, best {_fmt(val_losses[best])} (epoch {best + 1}), last "
            f"{_fmt(val_losses[-1])}; {metric}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated parts of recipe names")
    parser.add_argument("--torch", action="store_true", help="measure each recipe in PyTorch")
    args = parser.parse_args(argv)
    only = [o for o in (args.only or "").split(",") if o]
    warnings.simplefilter("ignore", RuntimeWarning)
    if args.torch:
        for r in SICK + HEALTHY:
            if not only or any(o in r.name for o in only):
                print(f"{r.name}: {torch_symptom(r.config)}")
        return 0
    return report(only)


if __name__ == "__main__":
    sys.exit(main())
