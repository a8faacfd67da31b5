"""The PyTorch adapter: hooks on a ``torch.nn.Module``, never leaking into it.

Sites
-----
By default a site is every hidden activation, one site per *call*, found by running the
model once (see :mod:`directionkit.adapters._torch_trace` for the rules):

* the output of an activation module: a known type (ReLU, GELU, SiLU, Tanh, ...) or any
  parameter-free leaf module that behaves as an element-wise nonlinearity
  (``transformers``' ``GELUActivation``, ``NewGELUActivation``, a user's ``Swish``).  A
  module used twice in one forward (torchvision's ResNet blocks reuse ``self.relu``)
  gives sites ``"layer1.0.relu"``, ``"layer1.0.relu#1"``, ...;
* a functional activation called outside any activation module (``F.relu(x)``,
  ``torch.tanh(x)``, ``x.sigmoid()``, DistilBERT's ``nn.ReLU()(x)`` built inside
  ``forward``), named after the module whose ``forward`` called it:
  ``"classifier.relu()"``, or ``"relu()"`` in the model's own ``forward``.

An activation that reaches the output without another mixing layer (a final Softmax or
Sigmoid, SqueezeNet's ReLU over its class maps) is part of the output, never a site.
``sites=`` chooses instead, by name (a site above, any module path for its output,
``"path:input"`` for its first argument, with ``#k`` for its k-th further call), by
module class, or by a predicate ``(path, module) -> bool``.

Units
-----
A site's unit axis comes from the layer that produced it (``Linear`` and HF's ``Conv1D``:
the last axis; convolutions: the channel axis), or from ``unit_axes=``; every other axis
is a position (space, tokens) over which recorded activity is averaged.  ConvNeXt's
channels-last ``(B, H, W, 4C)`` GELU output has ``4C`` units, not ``H``.

Layers
------
Each site has a :attr:`~directionkit.adapter.Site.layer`, which ``scope="last:K"``
counts: the path of the module that owns the activation module, when that owner is
a block with its own ``forward`` (a ResNet ``Bottleneck``: its ReLU calls
``layer1.0.relu``, ``layer1.0.relu#1``, ``layer1.0.relu#2`` are layer ``layer1.0``);
an activation owned by the model itself or by a container (``nn.Sequential``,
``nn.ModuleList``, ``nn.ModuleDict``) is a layer of its own.  A functional site's owner
is the module whose ``forward`` called it.  So on the paper's 11-layer ConvNet
``last:3`` is the last three ReLUs, on a ResNet the last three blocks.

Outputs and dtypes
------------------
The forward may return a tensor, a tuple or list, a dict or a HuggingFace
``ModelOutput``; ``output=`` picks the class scores (a key, an index, or a callable on
what forward returns).  By default: the tensor itself, the ``logits`` entry of a dict or
``ModelOutput``, or the one float ``(B, C)`` tensor among several; when several could
be the scores and none is named ``logits``, the adapter refuses and lists them.
Scores of shape ``(B, C, 1, ..., 1)`` are read as ``(B, C)``.

Scores that come out of a softmax (module or function, ``F.softmax`` included) are
probabilities: the adapter returns their logarithm, so accuracy is unchanged and the
core's cross-entropy is ``-log p[y]``; out of a log-softmax they are used as they are.
A final sigmoid gives one probability per class that need not sum to one: its logarithm
is returned too, so accuracy is the argmax of the sigmoids and the loss is
``-log(s[y] / sum(s))`` (``output_kind="sigmoid-probabilities"``).  Scores that no such
operation produced but whose rows are non-negative and sum to one on the first batch
are taken as probabilities too, with a warning (a softmax written out by hand).  The
kind is :attr:`TorchAdapter.output_kind`.  Float inputs are cast to the dtype of the
model's parameters (a float64 model runs in float64), and logits come back in that
dtype (float32 for lower precisions).  Extra forward arguments (an attention mask, a
state) come from ``inputs=``.

Prefix caching
--------------
M interventions are evaluated in one forward pass: the batch is expanded from
``B`` to ``M * B`` rows at the first intervened site, so every layer before it
runs once per data batch.  Models whose graph adds a tensor
computed before that site to one computed after it (residual connections) cannot
be expanded there; the adapter then expands at the input of the smallest module
enclosing the site for which expansion works (a forward pre-hook repeating the
module's tensor arguments that hold the batch M times: for a ResNet site
``layer4.2.relu#1`` the block ``layer4.2``, for a transformer's feed-forward GELU its
encoder layer), trying the site's ancestors from the innermost outwards, and at the
model input only when none works.  It learns this from failing passes (each failure
costs one forward pass, once per first intervened site) and remembers it
(:attr:`TorchAdapter.expansion_points`).
An ancestor is not used when it is called more than once per forward pass, or
when it runs after the site (a module shared between blocks); a choice is learned
only from batches of more than one example, as with ``B == 1`` broadcasting can
hide the row mismatch that rules a point out.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from directionkit.adapter import (
    CPU_MEMORY_BUDGET,
    GPU_MEMORY_BUDGET,
    LOGARITHM_TAKEN,
    OUTPUT_KIND_NOTES,
    Interventions,
    LinearChain,
    RunOutput,
    Site,
    binary_kind,
    check_output_kind,
    check_request,
    check_unit_axes,
    check_unit_axes_named,
    given_unit_axis,
    guessed_unit_axis,
    probabilities_by_value,
)
from directionkit.adapters._torch_trace import (
    ACTIVATION_TYPES,
    FUNCTIONAL_ACTIVATIONS,
    Call,
    FunctionWatch,
    Trace,
    producer_axis,
)
from directionkit.errors import (
    DirectionKitWarning,
    InvalidDataError,
    InvalidParameterError,
    SiteNotFoundError,
    UnsupportedModelError,
)

__all__ = ["ACTIVATION_TYPES", "TorchAdapter"]

log = logging.getLogger(__name__)

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_CALL = re.compile(r"(?P<base>.*?)(?:#(?P<call>\d+))?")

#: Where a pass expands B rows to M*B: at the first intervened site's output, at the
#: input of the module with this path (a pre-hook), or at the model input ("").
_AT_SITE: str | None = None
_AT_INPUT = ""

SiteSpec = str | type | Callable[[str, nn.Module], bool]


class _Unexpandable(Exception):
    """Rows cannot be expanded at the point a pass tried; the next point outwards is tried."""


@dataclass(frozen=True)
class _Hook:
    """Where a site is read: a module's output or input (its ``call``-th call), or the
    ``index``-th functional activation call of a pass."""

    where: str  # "output", "input" or "function"
    module: nn.Module | None = None
    call: int = 0
    index: int = -1


@dataclass
class _Pass:
    """The state of one forward pass through the hooks."""

    interventions: Interventions | None = None
    record: frozenset[str] = frozenset()
    batch_size: int = 0
    expanded: bool = False
    expand_at: str | None = _AT_SITE
    calls: dict[int, int] = field(default_factory=dict)
    functions: int = 0  # functional activation calls seen (outside activation modules)
    inside_activation: int = 0
    recorded: dict[str, np.ndarray] = field(default_factory=dict)
    elements: bool = False  # record unreduced activations
    visited: set[str] = field(default_factory=set)  # the sites the pass reached


class TorchAdapter:
    """Run a ``torch.nn.Module`` under interventions, for the directionkit core.

    Parameters
    ----------
    module : torch.nn.Module
        A classifier (see the module docs for what its forward may return).
    sites : sequence of str, type or callable, optional
        The sites to use (see the module docs); default: every hidden activation.  A str
        names a found site, any module (its output; ``"path:input"`` for its input), a
        type every module of that class, a callable ``(path, module) -> bool`` the
        modules it accepts.  Unknown names raise
        :class:`~directionkit.errors.SiteNotFoundError`.
    device : str or torch.device, optional
        Where to compute; default: the device of the module's parameters.  The
        module is moved there for the duration of each run and moved back.
    example_input : array-like, optional
        One batch of inputs, used to discover the sites at once; otherwise they
        are discovered on the first :meth:`run`.
    memory_budget : int, optional
        Bytes of activations one forward pass may hold; M is chunked to fit.  Default:
        256 MiB on the CPU, 1 GiB on other devices.  On the CPU smaller passes run
        faster (they stay nearer the caches and fault in fewer fresh pages): the B6
        ResNet workload took 3.9-5.9 s at 256 MiB against 10.9-11.2 s at 1 GiB, a
        ConvNet-11 and an MLP were as fast or slightly faster (``benchmarks/RESULTS.md``).
    output : str, int or callable, optional
        Where the class scores are in what forward returns: a key of a dict or
        ``ModelOutput``, an index of a tuple, or a callable mapping the returned value
        to the ``(B, C)`` scores.  Default: see the module docs.
    inputs : mapping or callable, optional
        Extra keyword arguments of forward: a mapping of values (arrays become tensors on
        the device) or of callables ``value(x)`` called with each batch's input tensor
        (``{"attention_mask": lambda x: (x != 0).long()}``), or one callable
        ``inputs(x) -> mapping``.
    unit_axes : mapping of str to int, optional
        The unit axis of named sites, counted in one example's activation (0 is the
        first axis after the batch), where the producing layer does not tell it.
    output_kind : str, optional
        What the scores are (see :data:`directionkit.adapter.ALL_KINDS`), where the
        operations that made them do not tell it; default: detected.

    Attributes
    ----------
    output_kind : {"logits", "probabilities", "log-probabilities", "sigmoid-probabilities"}
        What the model's output holds (known once the sites are); probabilities (from a
        softmax or a sigmoid) are returned as their logarithm.
    output_description : str
        Where the scores were read (``"the returned tensor"``, ``"output['logits']"``,
        ...), known once the sites are.
    assumptions : list of str
        What the adapter had to assume without evidence (recorded with results).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> adapter = TorchAdapter(net, example_input=np.zeros((1, 4), np.float32))
    >>> list(adapter.sites)
    ['1']
    >>> out = adapter.run(np.ones((5, 4), np.float32),
    ...                   Interventions.zero_ablate(adapter.sites, {"1": np.eye(3, dtype=bool)}))
    >>> out.logits.shape
    (3, 5, 2)
    """

    def __init__(
        self,
        module: nn.Module,
        sites: Sequence[SiteSpec] | None = None,
        device: str | torch.device | None = None,
        example_input: Any = None,
        memory_budget: int | None = None,
        *,
        output: str | int | Callable[[Any], Any] | None = None,
        inputs: Mapping[str, Any] | Callable[[Any], Mapping[str, Any]] | None = None,
        unit_axes: Mapping[str, int] | None = None,
        output_kind: str | None = None,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise UnsupportedModelError(
                f"TorchAdapter needs a torch.nn.Module. Got {type(module).__name__} instead."
            )
        if sites is not None and (
            isinstance(sites, str | type)
            or callable(sites)
            or not all(isinstance(s, str | type) or callable(s) for s in sites)
        ):
            raise InvalidParameterError(
                "The 'sites' parameter of TorchAdapter must be a sequence of site names, "
                f"module classes or predicates (path, module) -> bool. Got {sites!r} instead."
            )
        if output is not None and (
            isinstance(output, bool) or (not isinstance(output, str | int) and not callable(output))
        ):
            raise InvalidParameterError(
                "The 'output' parameter of TorchAdapter must be a key (str), an index (int) "
                f"or a callable on the model's output. Got {output!r} instead."
            )
        if inputs is not None and not isinstance(inputs, Mapping) and not callable(inputs):
            raise InvalidParameterError(
                "The 'inputs' parameter of TorchAdapter must be a mapping of extra forward "
                f"arguments or a callable x -> mapping. Got {type(inputs).__name__} instead."
            )
        if isinstance(module, torch.jit.ScriptModule):
            schema = getattr(getattr(module, "forward", None), "schema", None)
            raise UnsupportedModelError(
                "TorchScript modules (torch.jit.script or torch.jit.trace) cannot be hooked, "
                "so directionkit cannot reach their activations"
                + (f" (its forward is {schema})" if schema is not None else "")
                + ". Pass the nn.Module it was made from, or export it to ONNX and analyse "
                "the .onnx file (other inputs go to inputs=)."
            )
        meta = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
        if meta or (device is not None and torch.device(device).type == "meta"):
            where = f"its tensors {meta[:3]} are" if meta else "device='meta' was asked for"
            raise UnsupportedModelError(
                f"The module cannot be run: {where} on the 'meta' device, which holds shapes "
                "but no values (a model made under torch.device('meta') or with empty "
                "weights). Load its weights first, e.g. module.to_empty(device='cpu') then "
                "module.load_state_dict(...)."
            )
        self.module = module
        self._requested = None if sites is None else tuple(sites)
        self._output = output
        self._inputs = inputs
        self._unit_axes = check_unit_axes(unit_axes, "TorchAdapter")
        self._given_kind = check_output_kind(output_kind, "TorchAdapter")
        if device is None:
            param = next(module.parameters(), None)
            device = param.device if param is not None else "cpu"
        self._device = torch.device(device)
        if memory_budget is None:
            memory_budget = CPU_MEMORY_BUDGET if self._device.type == "cpu" else GPU_MEMORY_BUDGET
        self.memory_budget = int(memory_budget)
        self._names = {id(m): n for n, m in module.named_modules()}
        self._sites: dict[str, Site] | None = None
        self._hooks: dict[str, _Hook] = {}
        self._site_ops: dict[str, str] = {}
        self._activation_modules: list[nn.Module] = []
        #: per functional activation call of a pass: its site (or None) and function
        self._functional: list[tuple[str | None, str]] = []
        self._producers: dict[str, tuple[nn.Module | None, nn.Module | None]] = {}
        self._site_numel: dict[str, int] = {}
        #: first intervened site -> index into _expansion_candidates(site), learned
        self._expansion: dict[str, int] = {}
        #: expand every request at the model input (the pre-ancestor fallback), for
        #: comparisons in tests and benchmarks
        self._force_input_expansion = False
        self._input_shape: tuple[int, ...] | None = None
        self._output_path: tuple[str, Any] = ("self", None)
        self.output_kind = "logits"
        self.output_description = "the returned tensor"
        self.assumptions: list[str] = []
        dtypes = [p.dtype for p in module.parameters() if p.is_floating_point()]
        self._dtype = dtypes[0] if dtypes else torch.float32
        if example_input is not None:
            self._discover(self._to_tensor(example_input))

    # -- properties ---------------------------------------------------------------
    @property
    def sites(self) -> Mapping[str, Site]:
        """The sites, in forward order (discovered on the first run if needed)."""
        if self._sites is None:
            raise InvalidParameterError(
                "The sites of a TorchAdapter are found by running the model once: pass "
                "example_input=... to TorchAdapter, or call run() first."
            )
        return self._sites

    @property
    def site_ops(self) -> Mapping[str, str]:
        """What computes each site, for labels: the module class (``"ReLU"``), a
        function (``"relu()"``), or ``"Linear:input"`` for a module's input."""
        return {name: self._site_ops[name] for name in self.sites if name in self._site_ops}

    @property
    def sites_pending(self) -> bool:
        """True until the sites are found (by ``example_input`` or the first :meth:`run`).

        The experiments and :func:`directionkit.analyze` run the first example of their
        data when it is True, so ``example_input`` is only needed to read ``sites`` first.
        """
        return self._sites is None

    @property
    def device(self) -> str:
        """The torch device the adapter computes on."""
        return str(self._device)

    @property
    def prefix_cache(self) -> bool:
        """True unless some request had to expand its rows at the model input.

        Expanding at a site or at the input of an enclosing block still runs every
        layer before that point once per batch.  Before the first intervened run it is
        True (nothing has failed yet).
        """
        if self._force_input_expansion:
            return False
        return all(where != _AT_INPUT for where in self.expansion_points.values())

    @property
    def expansion_points(self) -> Mapping[str, str]:
        """Where the B rows become M*B, per first intervened site seen so far.

        The value is the site's own name (expanded at its output), the path of the
        enclosing module at whose input the rows are expanded (e.g. ``"layer4.2"``),
        or ``""`` for the model input.  Learned on the first run with ``B > 1`` that
        starts at that site.
        """
        points = {}
        for site, index in self._expansion.items():
            where = self._expansion_candidates(site)[index]
            points[site] = site if where is _AT_SITE else where
        return points

    # -- the seam -----------------------------------------------------------------
    def run(
        self,
        x: Any,
        interventions: Interventions | None = None,
        record: Sequence[str] = (),
    ) -> RunOutput:
        """Logits ``(M, B, C)`` under ``interventions`` and recorded activations ``(B, n_units)``.

        See :mod:`directionkit.adapter` for the semantics.
        """
        tensor = self._to_tensor(x)
        if self._sites is None:
            self._discover(tensor)
        self._check_input(tensor)
        sites = self.sites
        check_request(sites, interventions, record)
        m_total = 1 if interventions is None else interventions.n_interventions
        pieces: list[RunOutput] = []
        lo = 0
        while lo < tensor.shape[0]:  # pieces of examples, each taking every row
            piece = tensor[lo : lo + self._example_piece(interventions, tensor.shape[0] - lo)]
            logits, recorded = [], {}
            start = 0
            while start < m_total:  # the chunk may grow once the expansion point is learned
                stop = min(start + self._chunk_size(interventions, piece.shape[0]), m_total)
                rows = None if interventions is None else interventions.rows(start, stop)
                wanted = frozenset(record) if start == 0 else frozenset()
                state = _Pass(rows, wanted, piece.shape[0])
                logits.append(self._forward(piece, state))
                recorded.update(state.recorded)
                start = stop
            pieces.append(RunOutput(np.concatenate(logits, axis=0), recorded))
            lo += piece.shape[0]
        if len(pieces) == 1:
            return pieces[0]
        return RunOutput(
            np.concatenate([p.logits for p in pieces], axis=1),
            {n: np.concatenate([p.activations[n] for p in pieces]) for n in pieces[0].activations},
        )

    def record_elements(self, x: Any, sites: Sequence[str]) -> dict[str, np.ndarray]:
        """The clean, unreduced activations ``(B, *site.shape)`` of ``sites`` for batch ``x``.

        Examples
        --------
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
        >>> adapter = TorchAdapter(net, example_input=np.zeros((1, 1, 2, 2), np.float32))
        >>> adapter.record_elements(np.ones((3, 1, 2, 2), np.float32), ["1"])["1"].shape
        (3, 2, 2, 2)
        """
        tensor = self._to_tensor(x)
        if self._sites is None:
            self._discover(tensor)
        self._check_input(tensor)
        check_request(self.sites, None, sites)
        state = _Pass(None, frozenset(sites), tensor.shape[0], elements=True)
        self._forward(tensor, state)
        return state.recorded

    def unit_weight_l1(self, site: str) -> np.ndarray:
        """L1 norm of each unit's raw incoming filter: the producing Conv filter or Linear row.

        The producer is the ``Linear``/``Conv`` (or other layer with a weight of two or
        more dims, e.g. HF's ``Conv1D``) called last before the site, when nothing else
        mixing units was called after it; this is the paper's "L1-norm of the filter
        weights" (A.3), the weights as stored.  Biases are not included.  A
        ``BatchNorm`` between producer and activation is folded in by
        :meth:`unit_weight_l1_folded`.

        Examples
        --------
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2))
        >>> with torch.no_grad():
        ...     _ = net[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        >>> TorchAdapter(net, example_input=np.zeros((1, 2), np.float32)).unit_weight_l1("1")
        array([3. , 0.5])
        """
        return self._weight_l1(site, folded=False)

    def unit_weight_l1_folded(self, site: str) -> np.ndarray:
        """Like :meth:`unit_weight_l1`, with a BatchNorm between producer and site folded in.

        A unit's weights are ``W[c] * gamma[c] / sqrt(running_var[c] + eps)``: the filter
        as the network effectively applies it in eval mode.  Without a BatchNorm it equals
        :meth:`unit_weight_l1`.

        Examples
        --------
        >>> net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.ReLU(),
        ...                     nn.Linear(2, 2))
        >>> with torch.no_grad():
        ...     _ = net[0].weight.fill_(1.0); _ = net[1].weight.fill_(2.0)
        >>> adapter = TorchAdapter(net, example_input=np.zeros((2, 2), np.float32))
        >>> adapter.unit_weight_l1("2"), adapter.unit_weight_l1_folded("2").round(3)
        (array([2., 2.]), array([4., 4.]))
        """
        return self._weight_l1(site, folded=True)

    def _weight_l1(self, site: str, folded: bool) -> np.ndarray:
        if site not in self.sites:
            raise SiteNotFoundError(site, self.sites)
        producer, norm = self._producers.get(site, (None, None))
        if producer is None:
            raise UnsupportedModelError(
                f"No Linear or Conv module is called just before site {site!r}; its incoming "
                "weights are unknown."
            )
        n_units = self.sites[site].n_units
        with torch.no_grad():
            weight = producer.weight.detach().to("cpu", torch.float64)
            if type(producer).__name__ == "Conv1D" and weight.ndim == 2:
                weight = weight.T  # transformers' Conv1D stores (in, out)
            l1 = weight.abs().reshape(weight.shape[0], -1).sum(dim=1)
            if l1.shape[0] != n_units:
                raise UnsupportedModelError(
                    f"The module producing site {site!r} has {l1.shape[0]} outputs but the "
                    f"site has {n_units} units."
                )
            if folded and norm is not None and norm.affine and norm.track_running_stats:
                gamma = norm.weight.detach().to("cpu", torch.float64)
                var = norm.running_var.detach().to("cpu", torch.float64)
                l1 = l1 * (gamma / torch.sqrt(var + norm.eps)).abs()
        return l1.numpy()

    def linear_chain(self) -> LinearChain | None:
        """The model as a chain of Linear layers with ReLU sites, or None if it is not one.

        Recognised: an ``nn.Sequential`` of an optional leading ``Flatten``, then
        ``Linear`` layers each followed by a ``ReLU`` (``Dropout`` and ``Identity``
        allowed, being identities in eval mode), ending in a ``Linear``.  The core then
        computes cumulative ablation curves incrementally (see
        :func:`directionkit.experiments.ablation_curve`).
        """
        if not isinstance(self.module, nn.Sequential) or self.output_kind != "logits":
            return None
        layers = [m for m in self.module if not isinstance(m, nn.Dropout | nn.Identity)]
        if layers and isinstance(layers[0], nn.Flatten):
            layers = layers[1:]
        weights, biases, site_layers = [], [], {}
        names = {id(m): n for n, m in self.module.named_children()}
        for position, module in enumerate(layers):
            expect_linear = position % 2 == 0
            if expect_linear and isinstance(module, nn.Linear):
                w = module.weight.detach().to("cpu")  # the model's own dtype
                weights.append(w.T.numpy().copy())
                b = module.bias
                biases.append(
                    np.zeros(w.shape[0], weights[-1].dtype)
                    if b is None
                    else b.detach().to("cpu").numpy().copy()
                )
            elif not expect_linear and type(module) is nn.ReLU:
                site_layers[names[id(module)]] = len(weights) - 1
            else:
                return None
        if len(layers) % 2 == 0 or not weights:
            return None  # must end with a Linear
        if not all(name in site_layers for name in self.sites):
            return None
        return LinearChain(tuple(weights), tuple(biases), site_layers)

    # -- internals ----------------------------------------------------------------
    def _to_tensor(self, x: Any) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            tensor = x
        else:
            try:
                tensor = torch.from_numpy(np.asarray(x))
            except (TypeError, ValueError) as err:
                raise InvalidDataError(f"Model input must be array-like: {err}") from err
        if tensor.ndim == 0 or tensor.shape[0] == 0:
            raise InvalidDataError(
                f"Model input must have a non-empty batch axis. Got shape {tuple(tensor.shape)}."
            )
        if tensor.is_floating_point() and tensor.dtype != self._dtype:
            tensor = tensor.to(self._dtype)
        return tensor.to(self._device)

    def _extra_inputs(self, x: torch.Tensor) -> dict[str, Any]:
        """The extra keyword arguments of forward for the batch ``x``, on the device."""
        if self._inputs is None:
            return {}
        given = self._inputs(x) if callable(self._inputs) else self._inputs
        if not isinstance(given, Mapping):
            raise InvalidParameterError(
                "The 'inputs' callable of TorchAdapter must return a mapping of forward "
                f"arguments. Got {type(given).__name__} instead."
            )
        kwargs = {}
        for key, value in given.items():
            if callable(value) and not isinstance(value, torch.Tensor | nn.Module):
                value = value(x)  # made for this batch, as OnnxAdapter's inputs= are
            if isinstance(value, np.ndarray | np.generic):
                value = torch.from_numpy(np.asarray(value))
            if isinstance(value, torch.Tensor):
                if value.is_floating_point() and value.dtype != self._dtype:
                    value = value.to(self._dtype)
                value = value.to(self._device)
            kwargs[str(key)] = value
        return kwargs

    @contextlib.contextmanager
    def _hooked(self, state: _Pass) -> Iterator[None]:
        """Hooks on the site modules, eval mode, inference mode; all undone in finally."""
        modules = list(self.module.modules())
        training = [m.training for m in modules]
        handles = []
        functional = any(h.where == "function" for h in self._hooks.values())
        try:
            if state.expand_at:  # a module path: expand its input
                block = self.module.get_submodule(state.expand_at)
                handles.append(
                    block.register_forward_pre_hook(self._make_expander(state), with_kwargs=True)
                )
            hooked: set[int] = set()
            for hook in self._hooks.values():
                if hook.module is None or id(hook.module) in hooked:
                    continue
                hooked.add(id(hook.module))
                handles.append(hook.module.register_forward_pre_hook(self._make_entry(state)))
                handles.append(hook.module.register_forward_hook(self._make_hook(state)))
            if functional:  # functional calls inside activation modules are not sites
                for module in self._activation_modules:
                    if id(module) not in hooked:
                        handles.append(module.register_forward_pre_hook(self._make_entry(state)))
                        handles.append(module.register_forward_hook(self._make_exit(state)))
            self.module.eval()
            with torch.inference_mode(), _RunFunctions(self, state) if functional else _nothing():
                yield
        finally:
            for handle in handles:
                handle.remove()
            for module, flag in zip(modules, training, strict=True):
                module.training = flag

    def _make_expander(self, state: _Pass):  # type: ignore[no-untyped-def]
        """A forward pre-hook repeating a module's batch-holding tensor arguments M times."""

        def expander(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[tuple[Any, ...], dict[str, Any]]:
            b = state.batch_size
            if state.expanded:
                # a second call of the module in one pass: its input may be expanded rows
                # or an unrelated tensor, so it is left to an outer point
                raise _Unexpandable(
                    f"module {state.expand_at!r} runs again after the rows were expanded"
                )
            x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
            if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[0] != b:
                raise _Unexpandable(
                    f"the first tensor argument of module {state.expand_at!r} is not a batch "
                    f"of {b}"
                )
            assert state.interventions is not None
            m = state.interventions.n_interventions
            state.expanded = True
            return _repeat_batch(args, b, m), _repeat_batch(kwargs, b, m)

        return expander

    def _make_entry(self, state: _Pass):  # type: ignore[no-untyped-def]
        """A pre-hook: marks the pass inside an activation module, and reads input sites."""
        activations = {id(m) for m in self._activation_modules}

        def entry(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            if id(module) in activations:
                state.inside_activation += 1
            key = self._names.get(id(module), "")
            call = state.calls.get(id(module), 0)
            name = _call_name(key, call) + ":input"
            # the first tensor argument, as the trace recorded it
            at = next((i for i, a in enumerate(args) if isinstance(a, torch.Tensor)), None)
            if name not in self._hooks or at is None:
                return None
            edited = self._visit(state, name, args[at])
            return None if edited is None else (*args[:at], edited, *args[at + 1 :])

        return entry

    def _make_exit(self, state: _Pass):  # type: ignore[no-untyped-def]
        def leave(module: nn.Module, inputs: Any, output: Any) -> None:
            state.inside_activation -= 1

        return leave

    def _make_hook(self, state: _Pass):  # type: ignore[no-untyped-def]
        activations = {id(m) for m in self._activation_modules}

        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            if id(module) in activations:
                state.inside_activation -= 1
            count = state.calls.get(id(module), 0)
            state.calls[id(module)] = count + 1
            name = _call_name(self._names.get(id(module), ""), count)
            if name not in self._hooks or not isinstance(output, torch.Tensor):
                return None
            return self._visit(state, name, output)

        return hook

    def _visit(self, state: _Pass, name: str, output: torch.Tensor) -> torch.Tensor | None:
        """Record and edit the value of site ``name``; None leaves it unchanged."""
        if self._sites is None or name not in self._sites:
            return None
        state.visited.add(name)
        site = self._sites[name]
        iv = state.interventions
        m = 1 if iv is None else iv.n_interventions
        b = state.batch_size
        if name in state.record:
            row0 = output[:b] if state.expanded else output
            if not state.elements:  # average each unit over its positions: (B, n_units)
                axis = 1 + site.unit_axis_in(row0.ndim - 1)
                row0 = row0.movedim(axis, -1)
                if row0.ndim > 2:
                    row0 = row0.mean(dim=tuple(range(1, row0.ndim - 1)))
            state.recorded[name] = _numpy(row0)
        if iv is None or name not in iv.sites:
            return None
        if not state.expanded:
            if state.expand_at is not _AT_SITE:
                raise _Unexpandable(f"site {name!r} runs before {state.expand_at!r}")
            if output.shape[0] != b:
                raise InvalidDataError(
                    f"Site {name!r} has batch size {output.shape[0]}, expected {b}."
                )
            grouped = output.unsqueeze(0)
        else:
            grouped = output.reshape(m, b, *output.shape[1:])
        edited = self._apply(grouped, iv, name, site)
        state.expanded = True
        return edited.reshape(m * b, *output.shape[1:])

    def _apply(
        self, grouped: torch.Tensor, iv: Interventions, name: str, site: Site
    ) -> torch.Tensor:
        """``a * scale + shift + noise_std * eps`` on ``grouped`` of shape (M or 1, B, ...)."""
        m = iv.n_interventions
        shape = [m] + [1] * (grouped.ndim - 1)
        shape[2 + site.unit_axis_in(grouped.ndim - 2)] = site.n_units

        def term(values: Any) -> torch.Tensor:
            return torch.as_tensor(
                np.asarray(values), dtype=grouped.dtype, device=grouped.device
            ).reshape(shape)

        if site.shape is not None and tuple(grouped.shape[2:]) != site.shape and name in iv.fill:
            raise InvalidDataError(
                f"Site {name!r} has activations of shape {tuple(grouped.shape[2:])} per example; "
                f"its 'fill' template was made for {site.shape} (inputs of another size?)."
            )
        shift = iv.shift_with_fill(site, tuple(grouped.shape[2:]))
        out = grouped * term(iv.scale[name])  # a new (M, B, ...) tensor: added to in place
        if np.any(shift != 0):  # zero-ablation has none: skip a pass over M*B rows
            out.add_(torch.as_tensor(shift, dtype=grouped.dtype, device=grouped.device))
        noise_std = np.asarray(iv.noise_std[name])
        if np.any(noise_std != 0):
            full = (m, *grouped.shape[1:])
            eps = np.stack([iv.standard_normal(name, r, full[1:]) for r in range(m)])
            out.add_(term(noise_std) * torch.from_numpy(eps).to(grouped.device, grouped.dtype))
        return out

    def _forward(self, x: torch.Tensor, state: _Pass) -> np.ndarray:
        """Logits ``(M, B, C)``; with M > 1 expanded at the learned point of the first site."""
        iv = state.interventions
        m = 1 if iv is None else iv.n_interventions
        if iv is None or m == 1 or not iv.sites:
            return self._pass(x, state)
        first = min(iv.sites, key=lambda name: self.sites[name].depth)
        candidates = self._expansion_candidates(first)
        index = (
            len(candidates) - 1 if self._force_input_expansion else self._expansion.get(first, 0)
        )
        b = x.shape[0]
        while True:
            attempt = _Pass(
                iv, state.record, b, expand_at=candidates[index], elements=state.elements
            )
            try:
                logits = self._pass(x, attempt)
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, _Unexpandable) as err:
                if index == len(candidates) - 1 or not (
                    attempt.expanded or isinstance(err, _Unexpandable)
                ):
                    raise  # the last point, or an error before any row was expanded
                log.info(
                    "Rows cannot be expanded at %s for site %r (%s); trying %s.",
                    _describe(candidates[index], first), first, err,
                    _describe(candidates[index + 1], first),
                )  # fmt: skip
                index += 1
                continue
            if not self._force_input_expansion and (b > 1 or index > self._expansion.get(first, 0)):
                # with B == 1 a 1-row tensor broadcasts against M rows, so a success
                # does not show the point works for larger batches; a failure does count
                self._expansion[first] = index
            state.recorded.update(attempt.recorded)
            return logits

    def _pass(self, x: torch.Tensor, state: _Pass) -> np.ndarray:
        """One forward pass expanding rows at ``state.expand_at``."""
        m = 1 if state.interventions is None else state.interventions.n_interventions
        b = x.shape[0]
        inputs = x
        kwargs = self._extra_inputs(x)
        if state.expand_at == _AT_INPUT and m > 1:
            inputs = x.repeat(m, *([1] * (x.ndim - 1)))
            kwargs = _repeat_batch(kwargs, b, m)
            state.expanded = True
        with self._hooked(state):
            returned = self.module(inputs, **kwargs)
        wanted = set(state.record) | set(state.interventions.sites if state.interventions else ())
        missed = sorted(wanted - state.visited)
        if missed:  # its edits would have done nothing: refuse rather than report robustness
            raise UnsupportedModelError(
                f"Sites {missed} were not reached in this forward pass (they were when the "
                "sites were found): the model's forward takes another path for these inputs, "
                "so interventions there would change nothing."
            )
        out = self._scores(returned)
        if state.expanded and m > 1 and out.shape[0] != m * b:
            raise _Unexpandable(f"the output has {out.shape[0]} rows, expected {m} x {b}")
        if out.shape[0] == b and m > 1:
            out = out.unsqueeze(0).expand(m, *out.shape)
        if self.output_kind == "binary-logit":  # one logit: the classes are [0, z]
            out = torch.cat([torch.zeros_like(out), out], dim=-1)
        elif self.output_kind == "binary-probability":  # p of class 1: [log(1-p), log p]
            p = out.clamp(torch.finfo(out.dtype).tiny, 1 - torch.finfo(out.dtype).eps)
            out = torch.cat([torch.log1p(-p), torch.log(p)], dim=-1)
        elif self.output_kind in LOGARITHM_TAKEN:
            out = torch.log(out.clamp_min(torch.finfo(out.dtype).tiny))
        return _numpy(out.reshape(m, b, out.shape[-1]))

    def _scores(self, returned: Any) -> torch.Tensor:
        """The class scores ``(rows, C)`` in what forward returned (see ``output=``)."""
        how, key = self._output_path
        try:
            if how == "call":
                value = self._output(returned)  # type: ignore[misc,operator]
            elif how == "key":
                value = returned[key]
            elif how == "index":
                value = returned[key]
            elif how == "attr":
                value = getattr(returned, key)
            else:
                value = returned
        except (KeyError, IndexError, TypeError, AttributeError) as err:
            raise UnsupportedModelError(
                f"The class scores were read from {self.output_description} of the model's "
                f"output, which this call did not return ({type(err).__name__}: {err})."
            ) from err
        if not isinstance(value, torch.Tensor):
            raise UnsupportedModelError(
                f"The class scores, {self.output_description}, must be a tensor of shape "
                f"(B, C). Got {type(value).__name__}."
            )
        if value.ndim > 2 and all(d == 1 for d in value.shape[2:]):
            value = value.reshape(value.shape[0], value.shape[1])
        if value.ndim != 2:
            raise UnsupportedModelError(
                f"The class scores, {self.output_description}, must have shape (B, C). Got "
                f"shape {tuple(value.shape)}; pass output= to choose another output."
            )
        return value

    def _expansion_candidates(self, site: str) -> tuple[str | None, ...]:
        """Where rows may expand for a first intervened ``site``, innermost first.

        The site itself (None), then the modules enclosing it, from the innermost
        outwards (for a functional site, the module whose forward calls it first), then
        the model input (``""``).
        """
        path = self._site_path(site)
        parts = path.split(".") if path else []
        # a module's output or input is the site itself; a function's owner encloses it
        own = 0 if self._hooks.get(site, _Hook("output")).where == "function" else 1
        ancestors = tuple(".".join(parts[:k]) for k in range(len(parts) - own, 0, -1))
        return (_AT_SITE, *ancestors, _AT_INPUT)

    @staticmethod
    def _site_path(site: str) -> str:
        """The module path a site belongs to: its module, or a function's owner."""
        base = site.removesuffix(":input")
        base = _CALL.fullmatch(base)["base"]  # type: ignore[index]
        if base.endswith(")"):  # "owner.relu()": the owner
            return base.rsplit(".", 1)[0] if "." in base else ""
        return base

    # -- memory: M rows x B examples are cut to fit memory_budget (prefix caching kept) --
    def _example_piece(self, interventions: Interventions | None, batch: int) -> int:
        """Examples per forward pass: all ``batch`` of them, unless their M rows overflow
        the budget; then pieces of examples that each take every row, so the layers before
        the expansion point still run once per example (cutting the rows instead would
        re-run them for every chunk of rows).  Counted from the learned expansion point,
        from the input until it is learned.  Noise is drawn for the whole batch, so noisy
        interventions keep the batch and cut the rows."""
        if interventions is None:  # a clean pass: every activation, one row
            return max(1, min(batch, self.memory_budget // (4 * 3 * self._numel_from("", ""))))
        if interventions.has_noise:
            return batch
        first, where, _ = self._budget_point(interventions)
        per_example = 4 * 3 * self._numel_from(where, first) * interventions.n_interventions
        # until the point is learned, at least two examples: a one-example pass cannot
        # teach it (one row broadcasts against any number of rows)
        least = 1 if where != _AT_INPUT or self._force_input_expansion else 2
        return max(min(batch, least), min(batch, self.memory_budget // per_example))

    def _chunk_size(self, interventions: Interventions | None, batch: int) -> int:
        """Rows per pass: as many as fit the memory budget from the expansion point on.

        Until the point is learned the budget is counted from the input; when that fits
        only one row but counting from the site fits two, the pass takes two rows, so
        that the point can be learned (if the rows then expand at the input, that one
        pass holds up to twice the budget).
        """
        if interventions is None:
            return 1
        first, where, provisional = self._budget_point(interventions)
        rows = self._rows_fitting(batch, where, first)
        if provisional and rows <= 1:
            rows = min(2, self._rows_fitting(batch, _AT_SITE, first))
        return max(1, min(interventions.n_interventions, rows))

    def _budget_point(self, interventions: Interventions) -> tuple[str, str | None, bool]:
        """The first intervened site, the expansion point the budget counts from, and
        whether that is provisional: the learned point; the input when expansion there is
        forced, or (provisionally) until the point is learned."""
        first = min(interventions.sites, key=lambda name: self.sites[name].depth)
        index = self._expansion.get(first)
        if self._force_input_expansion or index is None:
            return first, _AT_INPUT, not self._force_input_expansion
        return first, self._expansion_candidates(first)[index], False

    def _rows_fitting(self, batch: int, where: str | None, first: str) -> int:
        """How many rows of activations from expansion point ``where`` on fit the budget."""
        return self.memory_budget // (4 * batch * self._numel_from(where, first) * 3)

    def _numel_from(self, where: str | None, first: str) -> int:
        """Activation elements per example and row from expansion point ``where`` on."""
        names = list(self._site_numel)  # every activation, in forward order
        if where == _AT_INPUT or first not in names:
            start = 0
        elif where is _AT_SITE:
            start = names.index(first)
        else:
            start = min(
                (i for i, n in enumerate(names) if n == first or n.startswith(where + ".")),
                default=0,
            )
        return max(1, sum(self._site_numel[name] for name in names[start:]))

    def _check_input(self, x: torch.Tensor) -> None:
        """Same rank as the sites were found with; same features/channels (axis 1) for
        float inputs (token ids may be of any length)."""
        expected = self._input_shape
        assert expected is not None
        if x.ndim != len(expected) + 1 or (
            expected and x.is_floating_point() and x.shape[1] != expected[0]
        ):
            raise InvalidDataError(
                f"Model input of shape {tuple(x.shape)} does not fit the model: it was set up "
                f"with inputs of shape (B, {', '.join(map(str, expected))})."
            )

    # -- discovery ------------------------------------------------------------------
    def _discover(self, x: torch.Tensor) -> None:
        self._input_shape = tuple(x.shape[1:])
        trace = Trace(self.module)
        modules = list(self.module.modules())
        training = [m.training for m in modules]
        kwargs = self._extra_inputs(x)
        self._check_input_names(kwargs)
        try:
            self.module.eval()
            try:
                with torch.inference_mode(), trace.recording():
                    returned = self.module(x, **kwargs)
            except (RuntimeError, TypeError, ValueError, IndexError) as err:
                raise _forward_error(x, err, self._inputs is not None) from err
            trace.classify()  # probes modules: in eval mode, as the pass ran
        finally:
            for module, flag in zip(modules, training, strict=True):
                module.training = flag
        self._output_path, self.output_description = _output_path(returned, self._output, x)
        self._output_path_checked(returned)
        self._set_output_kind(trace, returned)
        self._activation_modules = [m for m in modules if id(m) in trace.activation_modules]
        hidden_before = trace.last_mixing()
        batch = x.shape[0]
        found: dict[str, tuple[Call, str]] = {}  # name -> (call, "output"/"input")
        functional: list[tuple[str, str]] = []  # (name, function) per functional call
        for call in trace.calls:
            if call.kind == "function" and trace.is_activation(call):
                functional.append((call.name, call.label))
            if not trace.is_activation(call):
                continue
            if call.order > hidden_before or not _per_example(call.shape, batch):
                continue  # the output's own activation, or not a per-example activation
            found[call.name] = (call, "output")
        if self._requested is not None:
            found = self._requested_calls(trace, found, batch)
        sites: dict[str, Site] = {}
        hooks: dict[str, _Hook] = {}
        for name, (call, where) in sorted(
            found.items(), key=lambda item: item[1][0].start if item[1][1] == "input"
            else item[1][0].order,
        ):  # fmt: skip
            site = self._site_for(trace, name, call, where, len(sites))
            sites[name] = site
            if call.kind == "function":
                hooks[name] = _Hook("function", index=[n for n, _ in functional].index(name))
            else:
                hooks[name] = _Hook(where, call.module, call.call)
            self._site_ops[name] = (
                f"{call.label}()" if call.kind == "function"
                else call.label + (":input" if where == "input" else "")
            )  # fmt: skip
            self._producers[name] = self._weight_producer(trace, call, where)
        if not sites:
            raise UnsupportedModelError(_no_sites_message(self.module, trace, batch))
        self._functional = [(name if name in hooks else None, f) for name, f in functional]
        self._hooks = hooks
        self._site_numel = {
            call.name: int(np.prod(call.shape[1:]))  # type: ignore[index]
            for call in trace.calls
            if trace.is_activation(call) and _per_example(call.shape, batch)
        }
        for name, site in sites.items():
            self._site_numel.setdefault(name, int(np.prod(site.shape or (site.n_units,))))
        check_unit_axes_named(self._unit_axes, sites)
        self._sites = sites

    def _check_input_names(self, kwargs: Mapping[str, Any]) -> None:
        """Names in ``inputs=`` that forward does not take: an error; that it takes only
        through ``**kwargs``: a warning (HF models swallow a misspelt ``atention_mask``)."""
        try:
            parameters = inspect.signature(self.module.forward).parameters
        except (TypeError, ValueError):  # a builtin forward: nothing to check against
            return
        named = [n for n, p in parameters.items()
                 if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # fmt: skip
        catch_all = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
        unknown = [k for k in kwargs if k not in named]
        if not unknown:
            return
        if not catch_all:
            raise InvalidParameterError(
                f"The 'inputs' parameter of TorchAdapter names {unknown}, which the model's "
                f"forward does not take; its arguments are {named}."
            )
        note = (
            f"inputs= names {unknown}, which the model's forward takes only through **kwargs "
            f"(its named arguments are {named}): a misspelt name would be ignored silently."
        )
        self.assumptions.append(note)
        warnings.warn(note, DirectionKitWarning, stacklevel=5)

    def _output_path_checked(self, returned: Any) -> None:
        """Fail now, with the choices, when the scores cannot be read."""
        self._scores(returned)

    def _set_output_kind(self, trace: Trace, returned: Any) -> None:
        how, key = self._output_path
        raw = returned
        if how in ("key", "index"):
            raw = returned[key]
        elif how == "attr":
            raw = getattr(returned, key)
        elif how == "call":
            raw = self._output(returned)  # type: ignore[misc,operator]
        found = trace.probability_kind(raw)
        kind, source = found if found is not None else (None, "")
        scores = self._scores(returned)
        values = scores.detach().to("cpu", torch.float64).numpy()
        if self._given_kind is not None:
            self.output_kind = self._given_kind
            return
        if values.shape[-1] == 1:  # one score per example: a binary classifier
            kind = binary_kind(values, self.output_description,
                               sigmoid=kind == "sigmoid-probabilities")  # fmt: skip
            found = found and (kind, source)
        elif kind is None:
            by_value = probabilities_by_value(values, self.output_description)
            if by_value is not None:
                kind, note = by_value
                self.assumptions.append(note)
                warnings.warn(note, DirectionKitWarning, stacklevel=4)
        self.output_kind = kind or "logits"
        if found is not None:
            log.info("The model's scores (%s) come from %s: %s; %s.", self.output_description,
                     source, kind, OUTPUT_KIND_NOTES[kind])  # fmt: skip

    def _requested_calls(
        self, trace: Trace, found: dict[str, tuple[Call, str]], batch: int
    ) -> dict[str, tuple[Call, str]]:
        """The calls ``sites=`` names, as (call, "output"/"input")."""
        assert self._requested is not None
        by_name = {c.name: c for c in trace.calls if c.kind == "module" and c.path}
        functions = {c.name: c for c in trace.calls if trace.is_activation(c)}
        chosen: dict[str, tuple[Call, str]] = {}
        for spec in self._requested:
            if isinstance(spec, str):
                if spec in found:
                    chosen[spec] = found[spec]
                    continue
                name, where = spec, "output"
                if spec.endswith(":input"):
                    name, where = spec.removesuffix(":input"), "input"
                elif spec.endswith(":output"):
                    name = spec.removesuffix(":output")
                call = by_name.get(name) or (functions.get(name) if where == "output" else None)
                if call is None:
                    raise _unknown_site(spec, found, by_name)
                shape = call.in_shape if where == "input" else call.shape
                if where == "output" and not call.tensor_output:
                    raise InvalidParameterError(
                        f"Site {spec!r} is module {call.label} whose output is not one tensor "
                        "(an RNN's (output, state), attention's (output, weights)): an edit of "
                        "one part could miss what the model uses. Name a tensor instead: the "
                        "input of the module that reads it ('path:input'), or an activation "
                        "after it."
                    )
                if not _per_example(shape, batch):
                    raise InvalidParameterError(
                        f"Site {spec!r} is not a per-example activation: its value has shape "
                        f"{shape}, not (batch={batch}, ...) (the batch must come first)."
                    )
                chosen[call.name + (":input" if where == "input" else "")] = (call, where)
                continue
            matched = [
                c for c in by_name.values()
                if (isinstance(c.module, spec) if isinstance(spec, type)
                    else bool(spec(c.path, c.module)))  # type: ignore[arg-type,operator]
                and _per_example(c.shape, batch) and c.tensor_output
            ]  # fmt: skip
            if not matched:
                what = spec.__name__ if isinstance(spec, type) else repr(spec)
                raise SiteNotFoundError(what, list(found))
            for call in matched:
                chosen[call.name] = (call, "output")
        return chosen

    def _site_for(self, trace: Trace, name: str, call: Call, where: str, depth: int) -> Site:
        shape = call.in_shape if where == "input" else call.shape
        assert shape is not None
        per_example = tuple(shape[1:])
        axis, source, conv = self._unit_axis(trace, name, call, where, per_example)
        kind = "conv" if conv or len(per_example) >= 3 else "dense"
        layer = self._layer_of(call)
        return Site(
            name, per_example[axis], kind, depth, layer, per_example, axis, source  # type: ignore[arg-type]
        )

    def _unit_axis(
        self, trace: Trace, name: str, call: Call, where: str, shape: tuple[int, ...]
    ) -> tuple[int, str, bool]:
        """``(axis, what fixed it, made by a convolution)`` for a site of per-example
        ``shape`` (see the module docs)."""
        rank = len(shape)
        given = given_unit_axis(self._unit_axes, name, shape)
        if given is not None:
            return given, "given", False
        own = call if call.kind == "module" and producer_axis(call)[0] is not None else None
        if own is not None and where == "input":
            weight = getattr(call.module, "weight", None)
            conv = weight is not None and weight.ndim >= 3
            return (0 if conv else rank - 1), f"{call.label} input", conv
        producer = own or trace.producer(call.start if where == "input" else call.order, True)
        if rank == 1:
            return 0, producer.label if producer is not None else "rank", False
        if producer is not None:
            full_axis, units, exact = producer_axis(producer)
            conv = full_axis == 1
            if full_axis is not None and producer.shape is not None:
                carried = (full_axis - 1) % rank if full_axis > 0 else rank - 1
                matches = [i for i, d in enumerate(shape) if d == units]
                if tuple(producer.shape[1:]) == shape and (exact or len(matches) != 1):
                    return carried, producer.label, conv
                if len(matches) == 1:
                    conv = conv or (rank >= 3 and matches[0] == 0)
                    return matches[0], f"{producer.label} (by size)", conv
        default, note = guessed_unit_axis(name, shape)
        self.assumptions.append(note)
        warnings.warn(note, DirectionKitWarning, stacklevel=5)
        return default, "guess", rank >= 3 and default == 0

    def _layer_of(self, call: Call) -> str | None:
        if call.kind == "function":
            owner = self.module.get_submodule(call.path) if call.path else self.module
            if owner is self.module or type(owner) in _CONTAINERS:
                return None
            return call.path
        return _layer(call.path, dict(self.module.named_modules()), self.module)

    def _weight_producer(
        self, trace: Trace, call: Call, where: str
    ) -> tuple[nn.Module | None, nn.Module | None]:
        """The weighted module feeding a site (for weight L1), and a BatchNorm in between."""
        before = call.start if where == "input" else call.order
        if where == "output" and call.kind == "module" and _weighted(call.module):
            return call.module, None  # the output of a Linear/Conv itself
        producer = trace.producer(before)
        shape = call.in_shape if where == "input" else call.shape
        if (
            producer is None
            or producer.kind != "module"
            or not _weighted(producer.module)
            or producer.shape is None
            or shape is None
            or producer.shape[1:] != shape[1:]  # a concatenation, a reshape in between
        ):
            return None, None
        norm = None
        for other in trace.calls[producer.order + 1 : before]:
            if other.kind == "module" and isinstance(other.module, _NORMS):
                norm = other.module if other.shape == producer.shape else None
        return producer.module, norm


class _RunFunctions(FunctionWatch):
    """Edits functional activation sites during a pass (see :class:`_Hook`)."""

    def __init__(self, adapter: TorchAdapter, state: _Pass) -> None:
        super().__init__()
        self.adapter = adapter
        self.state = state

    def seen(self, name: str, args: Sequence[Any], output: Any) -> Any:
        state = self.state
        if state.inside_activation > 0 or name not in FUNCTIONAL_ACTIVATIONS:
            return output
        index = state.functions
        state.functions += 1
        calls = self.adapter._functional
        site, function = calls[index] if index < len(calls) else (None, name)
        if function != name:  # counted by position: another path would edit the wrong call
            raise UnsupportedModelError(
                f"The model's forward called {name}() where it called {function}() when the "
                "sites were found: it takes another path for these inputs, so functional "
                "sites cannot be told apart. Name module sites instead (sites=[...])."
            )
        if site is None or not isinstance(output, torch.Tensor):
            return output
        edited = self.adapter._visit(state, site, output)
        return output if edited is None else edited


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


def _weighted(module: nn.Module | None) -> bool:
    weight = getattr(module, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.ndim >= 2


def _call_name(path: str, call: int) -> str:
    return path if call == 0 else f"{path}#{call}"


def _per_example(shape: tuple[int, ...] | None, batch: int) -> bool:
    return shape is not None and len(shape) >= 2 and shape[0] == batch


def _repeat_batch(values: Any, b: int, m: int) -> Any:
    """Tensors (in a tuple or dict) whose first axis holds the batch, repeated M times."""

    def repeat(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == b:
            return value.repeat(m, *([1] * (value.ndim - 1)))
        return value

    if isinstance(values, dict):
        return {k: repeat(v) for k, v in values.items()}
    return tuple(repeat(v) for v in values)


def _output_path(returned: Any, spec: Any, x: torch.Tensor) -> tuple[tuple[str, Any], str]:
    """How to read the scores from what forward returns, and a description of it."""
    batch = x.shape[0]
    if callable(spec) and not isinstance(spec, str):
        return ("call", None), f"output={getattr(spec, '__name__', 'callable')}(...)"
    if isinstance(spec, str):
        if isinstance(returned, Mapping) and spec in returned:
            return ("key", spec), f"output[{spec!r}]"
        if not isinstance(returned, Mapping) and hasattr(returned, spec):
            return ("attr", spec), f"output.{spec}"
        raise InvalidParameterError(
            f"The 'output' parameter names {spec!r}, which the model's output does not hold; "
            f"it holds {_describe_output(returned, batch)}."
        )
    if isinstance(spec, int):
        if isinstance(returned, Mapping):  # a dict or ModelOutput: its entries in order
            keys = list(returned.keys())
            if -len(keys) <= spec < len(keys):
                return ("key", keys[spec]), f"output[{keys[spec]!r}]"
        elif isinstance(returned, Sequence) and not isinstance(returned, str):
            if -len(returned) <= spec < len(returned):
                return ("index", spec), f"output[{spec}]"
        raise InvalidParameterError(
            f"The 'output' parameter is the index {spec}, which the model's output does not "
            f"have; it holds {_describe_output(returned, batch)}."
        )
    if isinstance(returned, torch.Tensor):
        return ("self", None), "the returned tensor"
    if isinstance(returned, Mapping):
        if "logits" in returned:
            return ("key", "logits"), "output['logits']"
        candidates = [k for k, v in returned.items() if _score_like(v, batch)]
        if len(candidates) == 1:
            return ("key", candidates[0]), f"output[{candidates[0]!r}]"
    elif isinstance(returned, Sequence) and not isinstance(returned, str):
        candidates = [i for i, v in enumerate(returned) if _score_like(v, batch)]
        if len(candidates) == 1:
            return ("index", candidates[0]), f"output[{candidates[0]}]"
    elif isinstance(getattr(returned, "logits", None), torch.Tensor):
        return ("attr", "logits"), "output.logits"
    raise UnsupportedModelError(
        f"The model's forward returned {_describe_output(returned, batch)}; directionkit "
        "cannot tell which holds the class scores (B, C). Pass output= a key, an index, "
        "or a callable returning the scores."
    )


def _score_like(value: Any, batch: int) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and value.ndim >= 2
        and value.shape[0] == batch
        and all(d == 1 for d in value.shape[2:])
    )


def _describe_output(value: Any, batch: int) -> str:
    def one(v: Any) -> str:
        if isinstance(v, torch.Tensor):
            return f"tensor {tuple(v.shape)}"
        return type(v).__name__

    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {one(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return f"{type(value).__name__} [" + ", ".join(one(v) for v in value) + "]"
    return one(value)


def _forward_error(x: torch.Tensor, err: Exception, has_inputs: bool) -> Exception:
    """The error for a forward pass that failed while the sites were being found."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if re.search(r"missing (value for argument|\d+ required positional argument)|"
                 r"required (positional|keyword) argument", text):  # fmt: skip
        hint = (
            "its forward needs more arguments than the data gives: pass the others with "
            "inputs={'name': value} (or a callable x -> dict)"
            if not has_inputs
            else "its forward needs arguments that inputs= does not give"
        )
        return UnsupportedModelError(
            f"The model could not be run on a batch of shape {tuple(x.shape)}: {hint} "
            f"({type(err).__name__}: {first})."
        )
    return InvalidDataError(
        f"Model input of shape {tuple(x.shape)} does not fit the model: the forward pass "
        f"failed with {type(err).__name__}: {first}. Check the shape and dtype the model "
        "expects (and give its other forward arguments with inputs=)."
    )


def _no_sites_message(module: nn.Module, trace: Trace, batch: int) -> str:
    classes = sorted({c.label for c in trace.calls if c.kind == "module" and c.path})
    last = trace.last_mixing()
    passed = []  # activations that ran but cannot be sites, and why
    for call in trace.calls:
        if not trace.is_activation(call):
            continue
        if call.order > last:
            passed.append(f"{call.name!r} (after the last mixing layer: part of the output)")
        elif not _per_example(call.shape, batch):
            passed.append(f"{call.name!r} (shape {call.shape}: the batch of {batch} is not its "
                          "first axis)")  # fmt: skip
    found = (
        f" Activations that ran but cannot be sites: {', '.join(passed[:6])}"
        + (", ..." if len(passed) > 6 else "") + "." if passed else ""
    )  # fmt: skip
    return (
        f"{type(module).__name__} has no hidden activation to use as a site: no activation "
        "module (a known type, or a parameter-free module acting as an element-wise "
        "nonlinearity) and no functional activation (F.relu, torch.tanh, ...) with the batch "
        f"on its first axis runs before its last mixing layer.{found} Module classes it ran: "
        f"{', '.join(classes) or '(none)'}. Name sites with sites=[...]: a module path (its "
        "output), 'path:input', a module class, or a predicate (path, module) -> bool."
    )


def _unknown_site(
    spec: str, found: Mapping[str, Any], modules: Mapping[str, Call]
) -> SiteNotFoundError:
    paths = list(modules)
    error = SiteNotFoundError(spec, found)
    shown = ", ".join(repr(p) for p in paths[:12]) + (", ..." if len(paths) > 12 else "")
    error.args = (
        f"{error.args[0][:-1]}; or any module path (for its output; 'path:input' for its "
        f"input): {shown}.",
    )
    return error


def _describe(where: str | None, site: str) -> str:
    if where is _AT_SITE:
        return f"site {site!r}"
    return "the model input" if where == _AT_INPUT else f"the input of module {where!r}"


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU numpy copy, float64 kept, other float dtypes as float32."""
    dtype = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    return tensor.detach().to("cpu", dtype).numpy()


def _layer(site: str, modules: Mapping[str, nn.Module], root: nn.Module) -> str | None:
    """The layer of a site: its activation module's owner when that is a block.

    A block is a module with its own forward (a ResNet ``Bottleneck``); an activation
    owned by the model itself or by a container (exactly ``Sequential``, ``ModuleList``,
    ``ModuleDict``; a subclass such as torchvision's ``Conv2dNormActivation`` counts as a
    block, as an ONNX export, which names only the class, must count it) is a layer of
    its own (None).
    """
    path = site.split("#", 1)[0]
    if "." not in path:
        return None
    owner_path = path.rsplit(".", 1)[0]
    owner = modules.get(owner_path)
    if owner is None or owner is root or type(owner) in _CONTAINERS:
        return None
    return owner_path

