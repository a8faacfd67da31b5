"""Library errors and warnings in the command's terms: its options, not Python parameters;
and one line for what a third-party library raises on bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from directionkit.cli._parser import _parser

if TYPE_CHECKING:  # numpy, like every other library, is imported where a command needs it

    pass


# (parameter, function) of a library message -> the option of each command that sets it
_OPTIONS = {
    ("data", "load_data"): {"analyze": "--data"},
    ("limit", "load_data"): {"analyze": "--limit"},
    ("name", "load"): {"train": "--dataset"},
    ("root", "load"): {"train": "--data-root"},
}


# library parameters whose option of `analyze` has another name (the rest: dest == parameter)
_ANALYZE_ALIASES = {"scales": "noise_scales", "repeats": "noise_repeats", "scope": "scopes"}


# the library functions `analyze` calls with its options
_ANALYZE_FUNCS = (
    "analyze", "ablation_curve", "noise_curve", "unit_importance", "activation_statistics",
    "prepare_inputs", "load_data", "OnnxAdapter",
)  # fmt: skip


# advice written for Python callers -> the same advice for each command
_ADVICE = {
    "pass overwrite=True": {"*": "pass --overwrite"},
    # the labels a data set's loader read: the user knows them as --data's (or --dataset's)
    "'labels' of load_data": {"analyze": "The labels of --data", "*": "The labels of the data"},
    "'labels' of load": {"analyze": "The labels of --data", "train": "The labels of --dataset",
                         "*": "The labels of the data"},
    "choose another out_dir": {"train": "choose another --out"},
    "choose a new or empty out_dir": {"train": "choose a new or empty --out"},
    "or pass root= a directory holding the IDX files": {
        "train": "or pass --data-root a directory holding the IDX files",
        "analyze": "or give --data a directory holding the IDX files",
    },
}


def _command_flags(command: str) -> dict[str, str]:
    """A command's options by their destination, e.g. ``{"n_bins": "--n-bins"}``."""
    commands = next(
        a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices
    return {
        action.dest: max(action.option_strings, key=len)
        for action in commands[command]._actions
        if action.option_strings
    }


def _cli_message(message: str, command: str) -> str:
    """A library error message in the command's terms: its options, not Python parameters.

    Examples
    --------
    >>> _cli_message("The 'data' parameter of load_data must be 'digits'. Got 'x' instead.",
    ...              "analyze")
    "--data must be 'digits'. Got 'x' instead."
    >>> _cli_message("... pass overwrite=True to replace it.", "demo")
    '... pass --overwrite to replace it.'
    """
    for (parameter, func), options in _OPTIONS.items():
        if command in options:
            message = message.replace(f"The '{parameter}' parameter of {func}", options[command])
    if command == "analyze":  # its options set the parameters of the same names
        flags = _command_flags("analyze")
        message = re.sub(
            rf"The '(\w+)' parameter of (?:{'|'.join(_ANALYZE_FUNCS)})\b",
            lambda m: flags.get(_ANALYZE_ALIASES.get(m[1], m[1]), m[0]),
            message,
        )
        # keyword arguments in advice: the options that set them
        message = re.sub(
            r"inputs=\{((?:'[^']+': '\.\.\.'(?:, )?)+)\}",
            lambda m: " ".join(f"--input {k}=VALUE" for k in re.findall(r"'([^']+)': ", m[1])),
            message,
        )
        message = re.sub(r"unit_axes=\{'(.+?)': AXIS\}", r"--unit-axis \1=AXIS", message)
        for python, option in (
            ("Pass output= the name", "Pass --output the name"),
            ("pass output= to choose", "pass --output to choose"),
            ("given by inputs=", "given by --input"),
            ("out of inputs=", "out of --input"),
            ("(fixed values, or callables x -> value made for each batch x)",
             "(a number, a .npy file, or zeros:SHAPE with B for the batch)"),
            ("with sites=[...]", "with --sites"),
            ("The 'unit_axes' entry of site", "The --unit-axis entry of site"),
            ("pass output_kind='binary-probability' or 'binary-logit'",
             "pass --output-kind binary-probability or binary-logit"),
        ):  # fmt: skip
            message = message.replace(python, option)
    if command == "train":  # TrainConfig's fields are the options of train (dest == field)
        message = re.sub(
            r"The '(\w+)' parameter of TrainConfig",
            lambda m: "--no-batch-norm" if m[1] == "batch_norm" else "--" + m[1].replace("_", "-"),
            message,
        )
    for advice, replacements in _ADVICE.items():
        replacement = replacements.get(command, replacements.get("*"))
        if replacement is not None:
            message = message.replace(advice, replacement)
    return message


@contextlib.contextmanager
def _warnings_printed(command: str) -> Iterator[None]:
    """directionkit's own warnings (an assumption, a measure left out, a model near chance)
    as ``directionkit: warning: ...`` lines on stderr as they come; others as usual."""
    from directionkit.errors import DirectionKitWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", DirectionKitWarning)
        previous = warnings.showwarning

        def show(
            message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
        ) -> None:
            if issubclass(category, DirectionKitWarning):
                text = _cli_message(str(message).removeprefix("directionkit: "), command)
                print(f"directionkit: warning: {text}", file=sys.stderr, flush=True)
            else:
                previous(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


#: Modules whose failures mean "a chunk of the store could not be decoded".
_CODEC_MODULES = ("numcodecs", "zarr.codecs", "zarr.core.codec_pipeline")


def _third_party_message(err: Exception, store: str | None) -> str | None:
    """A one-line message for what a library raises on bad input (None: not recognised).

    The adapters and the store map the failures they know to :class:`DirectionKitError`;
    this is the net under them, so that a damaged file never ends in a traceback.
    Libraries are recognised by module name: the core imports neither onnx nor zarr's
    codecs to catch their classes.

    Examples
    --------
    >>> class Fail(Exception): pass
    >>> Fail.__module__ = "onnxruntime.capi.onnxruntime_pybind11_state"
    >>> print(_third_party_message(Fail("no kernel for op Foo"), None))
    the ONNX model could not be loaded or run (Fail: no kernel for op Foo)
    >>> _third_party_message(ZeroDivisionError("a bug"), None) is None
    True
    """
    kind = type(err)
    root = kind.__module__.split(".")[0]
    if root in ("onnx", "onnxruntime"):
        return f"the ONNX model could not be loaded or run ({kind.__name__}: {err})"
    if isinstance(err, OSError):
        return None
    tb, modules = err.__traceback__, []
    while tb is not None:
        modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    if any(m.startswith(_CODEC_MODULES) for m in modules):
        where = repr(store) if store else "the store"
        return (
            f"{where} could not be read: a chunk is damaged or truncated ({kind.__name__}: "
            f"{err}); rerun the command that wrote it."
        )
    return None
