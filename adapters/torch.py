"""The PyTorch adapter: hooks on a ``torch.nn.Module``, never leaking into it.

Sites are the outputs of activation modules (ReLU, LeakyReLU, ReLU6, GELU,
SiLU, Tanh, Sigmoid, ELU, Hardswish, Mish, Softplus), one site per *call*: a
module used twice in one forward (torchvision's ResNet blocks reuse
``self.relu``) gives sites ``"layer1.0.relu"``, ``"layer1.0.relu#1"``, ... .
An activation whose output is the model's output (a final Softmax/Sigmoid) is
never a site.  Conv activations ``(B, C, H, W)`` have one unit per channel;
other activations have their units on the last axis.

Layers
------
Each site has a :attr:`~directionkit.adapter.Site.layer`, which ``scope="last:K"``
counts: the path of the module that owns the activation module, when that owner is
a block with its own ``forward`` (a ResNet ``Bottleneck``: its ReLU calls
``layer1.0.relu``, ``layer1.0.relu#1``, ``layer1.0.relu#2`` are layer ``layer1.0``);
an activation owned by the model itself or by a container (``nn.Sequential``,
``nn.ModuleList``, ``nn.ModuleDict``) is a layer of its own.  So on the paper's
11-layer ConvNet ``last:3`` is the last three ReLUs, on a ResNet the last three
blocks.

Outputs and dtypes
------------------
A model whose output comes straight from a ``Softmax`` module gives probabilities: the
adapter returns their logarithm as class scores, so accuracy is unchanged and the core's
cross-entropy is ``-log p[y]``; from a ``LogSoftmax`` the output is used as it is (its
cross-entropy is already ``-log p[y]``).  A final ``Sigmoid`` gives one probability per
class that need not sum to one: its logarithm is returned too, so accuracy is the
argmax of the sigmoids and the loss is ``-log(s[y] / sum(s))``, the cross-entropy of the
sigmoids renormalised over the classes (``output_kind="sigmoid-probabilities"``).  The adapter
logs which and says so in :attr:`TorchAdapter.output_kind`.  Float inputs are cast to
the dtype of the model's parameters (a float64 model runs in float64), and logits
come back in that dtype (float32 for lower precisions).

M interventions are evaluated in one forward pass: the batch is expanded from
``B`` to ``M * B`` rows at the first intervened site, so every layer before it
runs once per data batch (prefix caching).  Models whose graph adds a tensor
computed before that site to one computed after it (residual connections) cannot
be expanded there; the adapter then expands at the input of the smallest module
enclosing the site for which expansion works (a forward pre-hook repeating the
module's first argument M times: for a ResNet site ``layer4.2.relu#1`` the block
``layer4.2``; ``layer4.2.relu#2`` follows the residual sum and expands at itself),
trying the site's ancestors from the innermost outwards, and at the model input only
when none works.  It learns this from failing passes (each failure costs one forward
pass, once per first intervened site) and remembers it
(:attr:`TorchAdapter.expansion_points`).
An ancestor is not used when it is called more than once per forward pass, or
when it runs after the site (a module shared between blocks); a choice is learned
only from batches of more than one example, as with ``B == 1`` broadcasting can
hide the row mismatch that rules a point out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
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
    OUTPUT_KINDS,
    Interventions,
    LinearChain,
    RunOutput,
    Site,
    check_request,
)
from directionkit.errors import (
    InvalidDataError,
    InvalidParameterError,
    SiteNotFoundError,
    UnsupportedModelError,
)

__all__ = ["ACTIVATION_TYPES", "TorchAdapter"]

log = logging.getLogger(__name__)

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.ELU,
    nn.Hardswish, nn.Mish, nn.Softplus, nn.PReLU, nn.SELU, nn.CELU, nn.Hardtanh,
)  # fmt: skip
_PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_OUTPUTS = (nn.Softmax, nn.LogSoftmax, nn.Softmax2d)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


#: Where a pass expands B rows to M*B: at the first intervened site's output, at the
#: input of the module with this path (a pre-hook), or at the model input ("").
_AT_SITE: str | None = None
_AT_INPUT = ""


class _Unexpandable(Exception):
    """Rows cannot be expanded at the point a pass tried; the next point outwards is tried."""


@dataclass
class _Pass:
    """The state of one forward pass through the hooks."""

    interventions: Interventions | None = None
    record: frozenset[str] = frozenset()
    batch_size: int = 0
    expanded: bool = False
    expand_at: str | None = _AT_SITE
    calls: dict[int, int] = field(default_factory=dict)
    recorded: dict[str, np.ndarray] = field(default_factory=dict)
    elements: bool = False  # record unreduced activations
    trace: list[tuple[str, nn.Module, torch.Tensor]] | None = None


class TorchAdapter:
    """Run a ``torch.nn.Module`` under interventions, for the directionkit core.

    Parameters
    ----------
    module : torch.nn.Module
        A classifier whose forward returns class scores of shape ``(B, C)``.
    sites : sequence of str, optional
        Site names to use (see the module docs); default: every activation site.
        Unknown names raise :class:`~directionkit.errors.SiteNotFoundError`.
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

    Attributes
    ----------
    output_kind : {"logits", "probabilities", "log-probabilities", "sigmoid-probabilities"}
        What the model's output holds (known once the sites are); probabilities (from a
        Softmax or a Sigmoid) are returned as their logarithm.

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
        sites: Sequence[str] | None = None,
        device: str | torch.device | None = None,
        example_input: Any = None,
        memory_budget: int | None = None,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise UnsupportedModelError(
                f"TorchAdapter needs a torch.nn.Module. Got {type(module).__name__} instead."
            )
        if sites is not None and (
            isinstance(sites, str) or not all(isinstance(s, str) for s in sites)
        ):
            raise InvalidParameterError(
                f"The 'sites' parameter of TorchAdapter must be a sequence of site names. "
                f"Got {sites!r} instead."
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
        if device is None:
            param = next(module.parameters(), None)
            device = param.device if param is not None else "cpu"
        self._device = torch.device(device)
        if memory_budget is None:
            memory_budget = CPU_MEMORY_BUDGET if self._device.type == "cpu" else GPU_MEMORY_BUDGET
        self.memory_budget = int(memory_budget)
        self._names = {id(m): n for n, m in module.named_modules()}
        self._sites: dict[str, Site] | None = None
        self._producers: dict[str, tuple[nn.Module | None, nn.Module | None]] = {}
        self._site_numel: dict[str, int] = {}
        #: first intervened site -> index into _expansion_candidates(site), learned
        self._expansion: dict[str, int] = {}
        #: expand every request at the model input (the pre-ancestor fallback), for
        #: comparisons in tests and benchmarks
        self._force_input_expansion = False
        self._input_shape: tuple[int, ...] | None = None
        self.output_kind = "logits"
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
        """The module class at each site (e.g. ``"ReLU"``), for figure labels."""
        modules = dict(self.module.named_modules())
        return {name: type(modules[name]).__name__ for name in self.sites if name in modules}

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

        The producer is the last ``Linear``/``Conv`` module called before the site's
        activation; this is the paper's "L1-norm of the filter weights" (A.3), the
        weights as stored.  Biases are not included.  A ``BatchNorm`` between producer
        and activation is folded in by :meth:`unit_weight_l1_folded`.

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
                f"No Linear or Conv module is called before site {site!r}; its incoming "
                "weights are unknown."
            )
        with torch.no_grad():
            weight = producer.weight.detach().to("cpu", torch.float64)
            l1 = weight.abs().reshape(weight.shape[0], -1).sum(dim=1)
            if folded and norm is not None and norm.affine and norm.track_running_stats:
                gamma = norm.weight.detach().to("cpu", torch.float64)
                var = norm.running_var.detach().to("cpu", torch.float64)
                l1 = l1 * (gamma / torch.sqrt(var + norm.eps)).abs()
        if l1.shape[0] != self.sites[site].n_units:
            raise UnsupportedModelError(
                f"The module producing site {site!r} has {l1.shape[0]} outputs but the site "
                f"has {self.sites[site].n_units} units."
            )
        return l1.numpy()

    def linear_chain(self) -> LinearChain | None:
        """The model as a chain of Linear layers with ReLU sites, or None if it is not one.

        Recognised: an ``nn.Sequential`` of an optional leading ``Flatten``, then
        ``Linear`` layers each followed by a ``ReLU`` (``Dropout`` and ``Identity``
        allowed, being identities in eval mode), ending in a ``Linear``.  The core then
        computes cumulative ablation curves incrementally (see
        :func:`directionkit.experiments.ablation_curve`).
        """
        if not isinstance(self.module, nn.Sequential):
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

    @contextlib.contextmanager
    def _hooked(self, state: _Pass) -> Iterator[None]:
        """Hooks on every activation module, eval mode, inference mode; all undone in finally."""
        modules = list(self.module.modules())
        training = [m.training for m in modules]
        handles = []
        try:
            if state.expand_at:  # a module path: expand its input
                block = self.module.get_submodule(state.expand_at)
                handles.append(block.register_forward_pre_hook(self._make_expander(state)))
            for module in modules:
                if isinstance(module, ACTIVATION_TYPES):
                    handles.append(module.register_forward_hook(self._make_hook(state)))
                elif state.trace is not None and isinstance(module, _PRODUCERS + _NORMS + _OUTPUTS):
                    handles.append(module.register_forward_hook(self._make_tracer(state)))
            self.module.eval()
            with torch.inference_mode():
                yield
        finally:
            for handle in handles:
                handle.remove()
            for module, flag in zip(modules, training, strict=True):
                module.training = flag

    def _make_expander(self, state: _Pass):  # type: ignore[no-untyped-def]
        """A forward pre-hook repeating a module's first argument M times (B -> M*B rows)."""

        def expander(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            b = state.batch_size
            if state.expanded:
                # a second call of the module in one pass: its input may be expanded rows
                # or an unrelated tensor, so it is left to an outer point
                raise _Unexpandable(
                    f"module {state.expand_at!r} runs again after the rows were expanded"
                )
            x = args[0] if args else None
            if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[0] != b:
                raise _Unexpandable(
                    f"the first argument of module {state.expand_at!r} is not a batch of {b}"
                )
            assert state.interventions is not None
            m = state.interventions.n_interventions
            state.expanded = True
            return (x.repeat(m, *([1] * (x.ndim - 1))), *args[1:])

        return expander

    def _make_tracer(self, state: _Pass):  # type: ignore[no-untyped-def]
        def tracer(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            assert state.trace is not None
            state.trace.append((self._names.get(id(module), ""), module, output))

        return tracer

    def _make_hook(self, state: _Pass):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            count = state.calls.get(id(module), 0)
            state.calls[id(module)] = count + 1
            base = self._names.get(id(module), "")
            name = base if count == 0 else f"{base}#{count}"
            if state.trace is not None:
                state.trace.append((name, module, output))
                return None
            if self._sites is None or name not in self._sites:
                return None
            site = self._sites[name]
            iv = state.interventions
            m = 1 if iv is None else iv.n_interventions
            b = state.batch_size
            if name in state.record:
                row0 = output[:b] if state.expanded else output
                if state.elements:
                    pass  # unreduced, (B, *site.shape)
                elif site.kind == "conv":  # (B, C, H, W): average each map over space
                    row0 = row0.mean(dim=tuple(range(2, row0.ndim)))
                elif row0.ndim > 2:  # (B, T, U): average over positions
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

        return hook

    def _apply(
        self, grouped: torch.Tensor, iv: Interventions, name: str, site: Site
    ) -> torch.Tensor:
        """``a * scale + shift + noise_std * eps`` on ``grouped`` of shape (M or 1, B, ...)."""
        m = iv.n_interventions
        shape = [m] + [1] * (grouped.ndim - 1)
        unit_axis = 2 if site.kind == "conv" else grouped.ndim - 1
        shape[unit_axis] = site.n_units

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
            attempt = _Pass(iv, state.record, b, expand_at=candidates[index])
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
        if state.expand_at == _AT_INPUT and m > 1:
            inputs = x.repeat(m, *([1] * (x.ndim - 1)))
            state.expanded = True
        with self._hooked(state):
            out = self.module(inputs)
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise UnsupportedModelError(
                "The model's forward must return class scores of shape (B, C). Got "
                f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))}."
            )
        if state.expanded and m > 1 and out.shape[0] != m * b:
            raise _Unexpandable(f"the output has {out.shape[0]} rows, expected {m} x {b}")
        if out.shape[0] == b and m > 1:
            out = out.unsqueeze(0).expand(m, *out.shape)
        if self.output_kind in LOGARITHM_TAKEN:
            out = torch.log(out.clamp_min(torch.finfo(out.dtype).tiny))
        return _numpy(out.reshape(m, b, out.shape[-1]))

    def _expansion_candidates(self, site: str) -> tuple[str | None, ...]:
        """Where rows may expand for a first intervened ``site``, innermost first.

        The site itself (None), then the modules enclosing its activation module, from
        the innermost outwards, then the model input (``""``).
        """
        parts = site.split("#", 1)[0].split(".")
        ancestors = tuple(".".join(parts[:k]) for k in range(len(parts) - 1, 0, -1))
        return (_AT_SITE, *ancestors, _AT_INPUT)

    # -- memory: M rows x B examples are cut to fit memory_budget (prefix caching kept) --
    def _example_piece(self, interventions: Interventions | None, batch: int) -> int:
        """Examples per forward pass: all ``batch`` of them, unless their M rows overflow
        the budget; then pieces of examples that each take every row, so the layers before
        the expansion point still run once per example (cutting the rows instead would
        re-run them for every chunk of rows).  Counted from the learned expansion point,
        from the input until it is learned.  Noise is drawn for the whole batch, so noisy
        interventions keep the batch and cut the rows."""
        if interventions is None or interventions.has_noise:
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
        if where == _AT_INPUT:
            start = 0
        elif where is _AT_SITE:
            start = names.index(first)
        else:
            start = min(i for i, n in enumerate(names) if n == first or n.startswith(where + "."))
        return max(1, sum(self._site_numel[name] for name in names[start:]))

    def _check_input(self, x: torch.Tensor) -> None:
        """Same rank and same features/channels (axis 1) as the input sites were found with."""
        expected = self._input_shape
        assert expected is not None
        if x.ndim != len(expected) + 1 or (expected and x.shape[1] != expected[0]):
            raise InvalidDataError(
                f"Model input of shape {tuple(x.shape)} does not fit the model: it was set up "
                f"with inputs of shape (B, {', '.join(map(str, expected))})."
            )

    def _discover(self, x: torch.Tensor) -> None:
        self._input_shape = tuple(x.shape[1:])
        state = _Pass(batch_size=x.shape[0], trace=[])
        try:
            with self._hooked(state):
                output = self.module(x)
        except RuntimeError as err:
            raise InvalidDataError(
                f"Model input of shape {tuple(x.shape)} does not fit the model: the forward "
                f"pass failed with: {err}"
            ) from err
        assert state.trace is not None
        found: dict[str, Site] = {}
        last_producer: nn.Module | None = None
        last_norm: nn.Module | None = None
        modules = dict(self.module.named_modules())
        for name, module, value in state.trace:
            if value is output and isinstance(module, (*_OUTPUTS, nn.Sigmoid)):
                self.output_kind = OUTPUT_KINDS[type(module).__name__]
                log.info("The model's output comes from %s %r: %s", type(module).__name__, name,
                         OUTPUT_KIND_NOTES[self.output_kind])  # fmt: skip
            if isinstance(module, _OUTPUTS):
                continue
            if isinstance(module, _PRODUCERS):
                last_producer, last_norm = module, None
                continue
            if isinstance(module, _NORMS):
                last_norm = module
                continue
            if value is output or value.ndim < 2 or value.shape[0] != x.shape[0]:
                continue  # the model's own output, or not a per-example activation
            kind = "conv" if value.ndim == 4 else "dense"
            n_units = value.shape[1] if kind == "conv" else value.shape[-1]
            found[name] = Site(
                name, int(n_units), kind, len(found), _layer(name, modules, self.module),
                tuple(int(d) for d in value.shape[1:]),
            )  # fmt: skip
            self._producers[name] = (last_producer, last_norm)
            self._site_numel[name] = int(value[0].numel())
        if not found:
            raise UnsupportedModelError(
                f"{type(self.module).__name__} has no hidden activation module to use as a site "
                f"(looked for {', '.join(t.__name__ for t in ACTIVATION_TYPES)})."
            )
        if self._requested is not None:
            for name in self._requested:
                if name not in found:
                    raise SiteNotFoundError(name, found)
            found = {
                name: dataclasses.replace(found[name], depth=depth)
                for depth, name in enumerate(n for n in found if n in self._requested)
            }
        self._sites = found


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
    owned by the model itself or by a container (``Sequential``, ``ModuleList``,
    ``ModuleDict``) is a layer of its own (None).
    """
    path = site.split("#", 1)[0]
    if "." not in path:
        return None
    owner_path = path.rsplit(".", 1)[0]
    owner = modules.get(owner_path)
    if owner is None or owner is root or isinstance(owner, _CONTAINERS):
        return None
    return owner_path
