"""The :class:`TorchAdapter` class (see the package docs); its work is done by the
package's private modules, on the adapter's state."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from directionkit.adapter import (
    CPU_MEMORY_BUDGET,
    GPU_MEMORY_BUDGET,
    Interventions,
    LinearChain,
    RunOutput,
    Site,
    check_output_kind,
    check_request,
    check_unit_axes,
)
from directionkit.errors import InvalidParameterError, UnsupportedModelError

from ._hooks import _AT_INPUT, _AT_SITE, _Hook, _Pass
from ._inputs import _check_input, _to_tensor
from ._memory import _chunk_size, _example_piece
from ._passes import _expansion_candidates, _forward
from ._sites import _discover
from ._weights import _linear_chain, _weight_l1

SiteSpec = str | type | Callable[[str, nn.Module], bool]


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
        _check_parameters(module, sites, output, inputs)
        _check_runnable(module, device)
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
            _discover(self, _to_tensor(self, example_input))

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
            where = _expansion_candidates(self, site)[index]
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
        tensor = _to_tensor(self, x)
        if self._sites is None:
            _discover(self, tensor)
        _check_input(self, tensor)
        sites = self.sites
        check_request(sites, interventions, record)
        m_total = 1 if interventions is None else interventions.n_interventions
        pieces: list[RunOutput] = []
        lo = 0
        while lo < tensor.shape[0]:  # pieces of examples, each taking every row
            piece = tensor[lo : lo + _example_piece(self, interventions, tensor.shape[0] - lo)]
            logits, recorded = [], {}
            start = 0
            while start < m_total:  # the chunk may grow once the expansion point is learned
                stop = min(start + _chunk_size(self, interventions, piece.shape[0]), m_total)
                rows = None if interventions is None else interventions.rows(start, stop)
                wanted = frozenset(record) if start == 0 else frozenset()
                state = _Pass(rows, wanted, piece.shape[0])
                logits.append(_forward(self, piece, state))
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
        tensor = _to_tensor(self, x)
        if self._sites is None:
            _discover(self, tensor)
        _check_input(self, tensor)
        check_request(self.sites, None, sites)
        state = _Pass(None, frozenset(sites), tensor.shape[0], elements=True)
        _forward(self, tensor, state)
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
        return _weight_l1(self, site, folded=False)

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
        return _weight_l1(self, site, folded=True)

    def linear_chain(self) -> LinearChain | None:
        """The model as a chain of Linear layers with ReLU sites, or None if it is not one.

        Recognised: an ``nn.Sequential`` of an optional leading ``Flatten``, then
        ``Linear`` layers each followed by a ``ReLU`` (``Dropout`` and ``Identity``
        allowed, being identities in eval mode), ending in a ``Linear``.  The core then
        computes cumulative ablation curves incrementally (see
        :func:`directionkit.experiments.ablation_curve`).
        """
        return _linear_chain(self)


def _check_parameters(
    module: nn.Module,
    sites: Sequence[SiteSpec] | None,
    output: str | int | Callable[[Any], Any] | None,
    inputs: Mapping[str, Any] | Callable[[Any], Mapping[str, Any]] | None,
) -> None:
    """Refuse a ``module`` that is no ``nn.Module``, and ``sites``, ``output`` or
    ``inputs`` of the wrong kind."""
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


def _check_runnable(module: nn.Module, device: str | torch.device | None) -> None:
    """Refuse a module that cannot be hooked (TorchScript) or run (on the meta device)."""
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
