"""Reading a torch model from one traced forward pass: its sites, unit axes and output.

:class:`~directionkit.adapters.torch.TorchAdapter` runs the model once with a hook on
every module and a :class:`torch.overrides.TorchFunctionMode` that sees every torch
function called in a ``forward`` (``F.relu``, ``torch.tanh``, ``x.sigmoid()``,
``F.linear``, ...).  The rules below read that trace.

Activations
-----------
A *module* is an activation when it is an instance of :data:`ACTIVATION_TYPES`, or
when it is a leaf module (no children) without parameters whose ``forward`` behaves
as an element-wise nonlinearity: on the input it was called with, flattened to one
axis, it gives the same values (element-wise), and on ``linspace(-4, 4)`` it is not
odd-and-homogeneous (not linear).  So ``transformers``' ``GELUActivation``,
``NewGELUActivation``, ``QuickGELUActivation`` and any user's ``Swish`` module are
found; ``Dropout``, ``Identity``, ``Softmax`` and HF's ``LinearActivation`` are not.

A *functional* activation is a call of one of :data:`FUNCTIONAL_ACTIVATIONS`
(``F.relu``, ``torch.relu``, ``x.relu()``, ``F.gelu``, ``torch.tanh``, ...) that does
not happen inside an activation module's own ``forward``: DistilBERT's head
``nn.ReLU()(x)``, built inside ``forward`` and never registered, is one.  It is named
after the module whose ``forward`` called it, ``"{owner}.{function}()"`` (``"relu()"``
when the model's own ``forward`` calls it), with ``#k`` for the k-th further call.

An activation whose output reaches the model's output without another mixing layer
(a Linear, Conv, matmul, RNN or attention) on the way, a final ReLU over class maps
(SqueezeNet) or a final Softmax, is part of the output, not a hidden site.

Unit axes
---------
A site's unit axis is the output axis of the layer that produced it: the last weighted
layer or mixing function called before it.  A layer with a 2-d weight (``Linear``,
``Embedding``, HF's ``Conv1D``) or a ``linear``/``matmul`` call puts its units on the
last axis; a convolution (weight of 3 or more dims) on axis 1.  When the producer's
output has the site's shape the axis carries over; otherwise the axis of the site whose
length is the producer's unit count, when exactly one has it.  Failing both the kind's
default is a guess, said so in a warning and in :attr:`Site.axis_from` (``"guess"``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = [
    "ACTIVATION_TYPES",
    "FUNCTIONAL_ACTIVATIONS",
    "Call",
    "FunctionWatch",
    "Trace",
    "canonical_function",
    "is_elementwise_nonlinearity",
]

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.ELU,
    nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Softplus, nn.PReLU, nn.SELU, nn.CELU,
    nn.Hardtanh,
)  # fmt: skip

#: Torch functions whose result is an activation site when called outside an activation
#: module (their canonical names: ``relu_`` and ``Tensor.relu`` are ``relu``).
FUNCTIONAL_ACTIVATIONS = frozenset({
    "relu", "relu6", "leaky_relu", "gelu", "silu", "mish", "elu", "selu", "celu",
    "hardswish", "hardsigmoid", "hardtanh", "softplus", "tanh", "sigmoid",
})  # fmt: skip
#: Functions that mix units (a site before the last of them is hidden), and the axis of
#: their output that holds units when they produce a site (-1: last; 1: channels).
MIXING_FUNCTIONS: Mapping[str, int | None] = {
    "linear": -1, "bilinear": -1, "matmul": -1, "mm": -1, "bmm": -1, "addmm": -1,
    "baddbmm": -1, "addmv": None, "einsum": None, "tensordot": None,
    "conv1d": 1, "conv2d": 1, "conv3d": 1,
    "conv_transpose1d": 1, "conv_transpose2d": 1, "conv_transpose3d": 1,
    "lstm": None, "gru": None, "rnn_tanh": None, "rnn_relu": None,  # batch axis unknown
    "multi_head_attention_forward": None, "scaled_dot_product_attention": None,
}  # fmt: skip
#: Functions whose output, when it is the model's output, holds probabilities.
PROBABILITY_FUNCTIONS = {
    "softmax": "probabilities",
    "log_softmax": "log-probabilities",
    "sigmoid": "sigmoid-probabilities",
}
#: Normalising functions, with their unit axis (evidence of a site's unit axis).
NORM_FUNCTIONS: Mapping[str, int] = {
    "batch_norm": 1, "group_norm": 1, "instance_norm": 1, "layer_norm": -1, "rms_norm": -1,
}  # fmt: skip
_RNN_TYPES = (nn.RNNBase, nn.MultiheadAttention)
_CHANNEL_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm)
_TRACED = FUNCTIONAL_ACTIVATIONS.union(MIXING_FUNCTIONS, PROBABILITY_FUNCTIONS, NORM_FUNCTIONS)
_DUNDER = re.compile(r"__(?:r|i)?(\w+?)__")


def canonical_function(func: Any) -> str:
    """The name a torch function is known by here: ``F.relu_`` and ``Tensor.relu`` are
    ``"relu"``, ``Tensor.__matmul__`` is ``"matmul"``.

    Examples
    --------
    >>> canonical_function(torch.relu_), canonical_function(torch.Tensor.__matmul__)
    ('relu', 'matmul')
    """
    name = str(getattr(func, "__name__", "") or "")
    match = _DUNDER.fullmatch(name)
    if match is not None:
        name = match[1]
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def is_elementwise_nonlinearity(module: nn.Module, example: torch.Tensor) -> bool:
    """Whether a leaf ``module`` acts on ``example`` as an element-wise nonlinearity.

    Element-wise: called on the example flattened to one axis it gives the same values,
    and the output has the input's shape.  Nonlinear: on ``linspace(-4, 4)`` it is not
    both odd and homogeneous (``f(-t) == -f(t)`` and ``f(2t) == 2 f(t)``), which every
    linear map (an identity, a dropout in eval mode, a scaling) is.  The module is
    called on copies, so in-place modules leave ``example`` alone.

    Examples
    --------
    >>> x = torch.randn(2, 3, 4)
    >>> is_elementwise_nonlinearity(nn.GELU(), x), is_elementwise_nonlinearity(nn.Identity(), x)
    (True, False)
    >>> is_elementwise_nonlinearity(nn.Softmax(dim=-1), x)
    False
    """
    if next(module.children(), None) is not None or not example.is_floating_point():
        return False
    # a module with state (an observer's running min and max) gets it back afterwards
    kept = [(b, b.detach().clone()) for b in module.buffers(recurse=False)]
    try:
        return _behaves_so(module, example)
    finally:
        with torch.no_grad():
            for buffer, value in kept:
                buffer.copy_(value)


def _behaves_so(module: nn.Module, example: torch.Tensor) -> bool:
    try:
        with torch.inference_mode():
            whole = module(example.clone())
            flat = module(example.reshape(-1).clone())
            if (
                not isinstance(whole, torch.Tensor)
                or not isinstance(flat, torch.Tensor)
                or whole.shape != example.shape
                or flat.shape != (example.numel(),)
                or not torch.allclose(flat.reshape(example.shape), whole, 1e-5, 1e-6, True)
            ):
                return False
            t = torch.linspace(-4.0, 4.0, 97, dtype=example.dtype, device=example.device)
            base, doubled, negated = module(t.clone()), module(2 * t), module(-t)
            if not all(isinstance(v, torch.Tensor) for v in (base, doubled, negated)):
                return False
            linear = torch.allclose(doubled, 2 * base, 1e-4, 1e-5) and torch.allclose(
                negated, -base, 1e-4, 1e-5
            )
            return not linear
    except Exception:  # a module that cannot run on other shapes is not element-wise
        return False


@dataclass
class Call:
    """One completed module call or torch function call of the traced forward pass.

    ``path`` is the module's path, or for a function the path of the module whose
    ``forward`` called it (its *owner*, ``""`` for the model).  ``call`` counts the
    calls of that module, or of that function by that owner, before this one.
    """

    order: int
    kind: str  # "module" or "function"
    path: str
    label: str  # the module's class name, or the function's canonical name
    call: int
    module: nn.Module | None = None
    shape: tuple[int, ...] | None = None  # the output's shape, when a tensor
    in_shape: tuple[int, ...] | None = None  # the first tensor argument's shape
    example: torch.Tensor | None = None  # a copy of the input of an activation candidate
    output: Any = None  # kept only for functions whose output may be the model's
    inside_activation: bool = False  # a function called inside an activation module
    owner_id: int | None = None  # id of the module whose forward called the function
    start: int = -1  # a module call: how many calls had completed when it began
    tensor_output: bool = True  # the output is one tensor (an RNN's is a tuple)

    @property
    def name(self) -> str:
        """The site name this call would have (see the module docs)."""
        if self.kind == "module":
            base = self.path
        else:
            base = f"{self.path}.{self.label}()" if self.path else f"{self.label}()"
        return base if self.call == 0 else f"{base}#{self.call}"


@dataclass
class Trace:
    """Everything one forward pass shows; fill it with :meth:`recording`, then call
    :meth:`classify` to learn which module calls and function calls are activations."""

    root: nn.Module
    calls: list[Call] = field(default_factory=list)
    #: ids of the modules found to be activations (after :meth:`classify`)
    activation_modules: set[int] = field(default_factory=set)
    _stack: list[int] = field(default_factory=list)
    _starts: list[int] = field(default_factory=list)
    _module_calls: dict[int, int] = field(default_factory=dict)
    _names: dict[int, str] = field(default_factory=dict)
    _modules: dict[int, nn.Module] = field(default_factory=dict)

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Hooks on every module and a function mode, all removed in ``finally``."""
        self._names = {id(m): n for n, m in self.root.named_modules()}
        self._modules = {id(m): m for m in self.root.modules()}
        handles = []
        try:
            for module in self.root.modules():
                handles.append(module.register_forward_pre_hook(self._enter))
                handles.append(module.register_forward_hook(self._leave))
            with _Functions(self):
                yield
        finally:
            for handle in handles:
                handle.remove()

    # -- hooks ------------------------------------------------------------------------
    def _enter(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._stack.append(id(module))
        self._starts.append(len(self.calls))

    def _leave(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        start = len(self.calls)
        if self._stack and self._stack[-1] == id(module):
            self._stack.pop()
            start = self._starts.pop()
        count = self._module_calls.get(id(module), 0)
        self._module_calls[id(module)] = count + 1
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        example = None
        if (
            _leaf_candidate(module)
            and isinstance(first, torch.Tensor)
            and isinstance(output, torch.Tensor)
            and count == 0
        ):
            example = first.detach()[:1].clone()
        self.calls.append(
            Call(
                len(self.calls), "module", self._names.get(id(module), ""),
                type(module).__name__, count, module, _shape(output), _shape(first), example,
                start=start, tensor_output=isinstance(output, torch.Tensor),
            )
        )  # fmt: skip

    def function(self, name: str, first: Any, output: Any) -> None:
        """Record a function call (from the function mode)."""
        owner = self._stack[-1] if self._stack else None
        keep = output if name in PROBABILITY_FUNCTIONS else None
        self.calls.append(
            Call(
                len(self.calls), "function", self._names.get(owner, "") if owner else "",
                name, 0, None, _shape(output), _shape(first), None, keep, False, owner,
            )
        )  # fmt: skip

    # -- reading ----------------------------------------------------------------------
    def classify(self) -> None:
        """Find the activation modules (by type or behaviour) and number the functional
        activation calls made outside them, per owner and function."""
        examples = {}
        for call in self.calls:
            if call.kind == "module" and call.example is not None:
                examples.setdefault(id(call.module), (call.module, call.example))
        self.activation_modules = {
            key
            for key, (module, example) in examples.items()
            if isinstance(module, ACTIVATION_TYPES) or is_elementwise_nonlinearity(module, example)  # type: ignore[arg-type]
        }
        counts: dict[tuple[str, str], int] = {}
        for call in self.calls:
            call.example = None  # the probes are done: free the copies
            if call.kind != "function" or call.label not in FUNCTIONAL_ACTIVATIONS:
                continue
            if call.owner_id in self.activation_modules:
                call.inside_activation = True
                continue
            key = (call.path, call.label)
            call.call = counts.get(key, 0)
            counts[key] = call.call + 1

    def is_activation(self, call: Call) -> bool:
        """Whether a call is an activation (after :meth:`classify`)."""
        if call.kind == "module":
            return id(call.module) in self.activation_modules
        return call.label in FUNCTIONAL_ACTIVATIONS and not call.inside_activation

    def last_mixing(self) -> int:
        """The order of the last call that mixes units, -1 when there is none."""
        last = -1
        for call in self.calls:
            if _mixes(call):
                last = call.order
        return last

    def producer(self, before: int, norms: bool = False) -> Call | None:
        """The last weighted layer or mixing function completed before call ``before``;
        with ``norms``, also a normalisation (evidence of the unit axis, not a mixer)."""
        for call in reversed(self.calls[:before]):
            if _produces(call) or (norms and _normalises(call)):
                return call
        return None

    def probability_kind(self, output: Any) -> tuple[str, str] | None:
        """The kind of output a softmax/log-softmax/sigmoid call returned, if it is
        ``output``, and which call that was (e.g. ``"softmax in Softmax 'final'"``)."""
        for call in reversed(self.calls):
            if call.kind == "function" and call.output is not None and call.output is output:
                owner = self._modules.get(call.owner_id) if call.owner_id is not None else None
                where = (
                    f" in {type(owner).__name__} {call.path!r}" if owner is not None else
                    " in the model's forward"
                )  # fmt: skip
                return PROBABILITY_FUNCTIONS[call.label], f"{call.label}(){where}"
        return None


def _shape(value: Any) -> tuple[int, ...] | None:
    """A tensor's shape; for an RNN's ``(output, state)`` tuple, the output's."""
    if isinstance(value, tuple) and value and isinstance(value[0], torch.Tensor):
        value = value[0]
    return tuple(int(d) for d in value.shape) if isinstance(value, torch.Tensor) else None


def _leaf_candidate(module: nn.Module) -> bool:
    """A module whose calls may be activations: a known type, or a leaf without
    parameters (checked by :func:`is_elementwise_nonlinearity` after the pass)."""
    if isinstance(module, ACTIVATION_TYPES):
        return True
    if next(module.children(), None) is not None:
        return False
    return next(module.parameters(recurse=False), None) is None


def _weight(module: nn.Module | None) -> torch.Tensor | None:
    weight = getattr(module, "weight", None) if module is not None else None
    return weight if isinstance(weight, torch.Tensor) and weight.ndim >= 2 else None


def _mixes(call: Call) -> bool:
    if call.kind == "function":
        return call.label in MIXING_FUNCTIONS
    return _weight(call.module) is not None or isinstance(call.module, _RNN_TYPES)


def _produces(call: Call) -> bool:
    return _mixes(call) and call.shape is not None


def _normalises(call: Call) -> bool:
    if call.shape is None:
        return False
    if call.kind == "function":
        return call.label in NORM_FUNCTIONS
    return isinstance(call.module, _CHANNEL_NORMS) or any(
        word in type(call.module).__name__ for word in ("LayerNorm", "RMSNorm")
    )


def producer_axis(call: Call) -> tuple[int | None, int | None, bool]:
    """``(axis, units, exact)`` of a producer's output: the axis its units are on (of
    the full output, batch included; -1 is the last), how many it makes, and whether
    that axis is certain (False: look for the axis of that length first -- a
    LayerNorm normalises trailing axes, but a subclass may permute them back)."""
    if call.shape is None or len(call.shape) < 2:
        return None, None, False
    if call.kind == "function":
        axis = MIXING_FUNCTIONS.get(call.label, NORM_FUNCTIONS.get(call.label))
        if axis is None:
            return None, None, False
        return axis, call.shape[axis], call.label != "layer_norm"
    if isinstance(call.module, _CHANNEL_NORMS):
        return 1, call.shape[1], True
    if isinstance(call.module, nn.RNNBase) and call.module.batch_first:
        return -1, call.shape[-1], True  # (B, T, H * directions)
    if _normalises(call):
        return -1, call.shape[-1], False
    weight = _weight(call.module)
    if weight is None:
        return None, None, False
    if weight.ndim >= 3:  # a convolution: (out, in, *kernel), channels on axis 1
        return 1, call.shape[1], True
    return -1, call.shape[-1], True


class FunctionWatch(TorchFunctionMode):
    """Calls :meth:`seen` with every torch function called while it is active (not those
    nested inside another: ``F.relu``'s own ``torch.relu`` is not seen again); what
    :meth:`seen` returns is what the caller gets."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        output = func(*args, **(kwargs or {}))
        return self.seen(canonical_function(func), args, output)

    def seen(self, name: str, args: Sequence[Any], output: Any) -> Any:
        """The value the caller gets for ``name(*args) == output``."""
        raise NotImplementedError


class _Functions(FunctionWatch):
    """Records the traced functions of the pass."""

    def __init__(self, trace: Trace) -> None:
        super().__init__()
        self.trace = trace

    def seen(self, name: str, args: Sequence[Any], output: Any) -> Any:
        if name in _TRACED:
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            self.trace.function(name, first, output)
        return output
