"""The choices of options, in one module that imports nothing.

The command line's parser lists them (``--metrics``, ``--ablate-to``, ...) without
importing the modules that use them, which import numpy, xarray and scipy: so that
``directionkit --help`` answers at once.  Those modules import their choices from here.
"""

from __future__ import annotations

#: The measures :func:`directionkit.analyze` computes (``metrics=``).
METRICS = ("statistics", "ablation", "importance", "noise", "weight_l1")
#: Measures computed only when asked for by name: ``"baselines"``, the field's other
#: generalization measures (:func:`directionkit.experiments.baseline_measures`).
OPTIONAL_METRICS = ("baselines",)
#: Every name ``metrics=`` takes.
ALL_METRICS = (*METRICS, *OPTIONAL_METRICS)
#: Noise scales (multiples of each unit's training-set sd) of the noise curve.
DEFAULT_NOISE_SCALES = (0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
#: What ablated units are clamped to (``ablate_to=``).
ABLATE_TO = ("zero", "mean", "channel-mean")
#: Image layouts of :func:`directionkit.preprocessing.load_data`.
LAYOUTS = ("NCHW", "NHWC", "flat")
#: Single scores ``(B, 1)`` of a binary classifier (see :func:`directionkit.adapter.binary_kind`).
BINARY_KINDS = ("binary-probability", "binary-logit")
#: Every kind of output an adapter reads (``output_kind=``).
ALL_KINDS = ("logits", "probabilities", "log-probabilities", "sigmoid-probabilities",
             *BINARY_KINDS)  # fmt: skip
#: The figure files of a report (``format=``).
FORMATS = ("png", "svg", "both")

#: The sweep config format of :func:`read_sweep_config` and ``directionkit sweep``.
TOML_FORMAT = """\
[sweep]               # optional
data = "train"        # "train" / "test": each run's own split (its shuffled labels for
                      # train); or digits, fashion-mnist, PATH.npz, a folder of IDX files
split = "test"        # the split of a named data set (default test)
limit = 1000          # use only its first N examples
train_data = "train"  # optional: unit sd for the noise curves; same kinds as data
runs_dir = "runs"     # where [grid] / train models are trained (default STORE.runs)

[analyze]             # optional: keyword arguments of directionkit.analyze
orderings = 5
fractions = 11
metrics = ["statistics", "ablation", "noise"]

[models.small]        # one table per model, with exactly one of
onnx = "small.onnx"   #   an ONNX file
[models.trained]
run = "runs/a"        #   a run directory of `directionkit train`
[models.new]
train = { dataset = "digits", hidden = [64], epochs = 5 }   # a TrainConfig to train

[grid]                # every combination of the listed TrainConfig values, over base;
base = { dataset = "digits", hidden = [64], epochs = 5 }
corruption = [0.0, 0.5, 1.0]
seed = [0, 1]         # models named corruption=0.5,seed=1 ...

Relative paths are relative to the TOML file.
"""

#: The kinds of basis ``analyze(directions=...)`` and ``--directions`` build (a mapping of
#: site names to rows is the fifth choice, in Python only).
DIRECTION_KINDS = ("units", "random", "pca", "class-means")
#: The kinds measured on data (the training data, as the paper's statistics are).
MEASURED_DIRECTIONS = ("pca", "class-means")
