"""The graph rewrite: a copy of the model in which intervened sites are scaled, shifted
and noised for M interventions at once and recorded sites become outputs, with its
onnxruntime session (see the docs of :mod:`directionkit.adapters.onnx`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from directionkit.adapter import BINARY_KINDS, LOGARITHM_TAKEN, Interventions, binary_columns
from directionkit.errors import InvalidDataError, UnsupportedModelError

from ._graph import PREFIX, ancestors, np_dtype, subgraph_reads, tensor_shape
from ._inputs import extra_feeds
from ._runtime import serialise

if TYPE_CHECKING:
    from ._adapter import OnnxAdapter

_MAX_EXPANSION_CANDIDATES = 64  # tensors tried, latest first, before expanding at the input


class Rewrite:
    """One rewritten copy of the graph, for a set of intervened and recorded sites."""

    def __init__(
        self,
        adapter: OnnxAdapter,
        intervened: frozenset[str],
        record: frozenset[str],
        elements: bool = False,
        along: frozenset[str] = frozenset(),
    ) -> None:
        self.adapter = adapter
        self.along = along  # the intervened sites whose terms are read along a basis
        model = onnx.ModelProto()
        model.CopyFrom(adapter._model)
        graph = model.graph
        self.sites = [n for n in adapter.sites if n in intervened]  # forward order
        self.record = sorted(record, key=list(adapter.sites).index)
        info = adapter._site_info
        self.fixed = adapter._fixed_batch is not None
        #: the tensor at which B rows become M*B: the first intervened site where the graph
        #: allows, else the latest tensor before it that every later computation depends
        #: on (e.g. the input of a residual block), else the model input; None: no expansion
        self.expand_at: str | None = None
        expand_rank = len(adapter._input_dims)
        self.expand_node = -1  # the node producing expand_at (-1: the model input)
        if self.sites and not self.fixed:
            self.expand_at, self.expand_node, expand_rank = self._expansion_point(
                info[self.sites[0]].tensor, info[self.sites[0]].producer
            )
        new_nodes: dict[int, list[onnx.NodeProto]] = {}  # insert after node index
        renames: dict[str, str] = {}
        self.inputs: dict[str, tuple[str, str, str]] = {}
        self.basis_inputs: dict[str, str] = {}  # the basis input of each site in `along`
        self._edit_sites(graph, new_nodes, renames)
        if self.expand_at is not None and self.expand_at != info[self.sites[0]].tensor:
            nodes, tiled = _tile_nodes(
                f"{PREFIX}expand", self.expand_at, expand_rank, self.inputs[self.sites[0]][0]
            )
            new_nodes.setdefault(self.expand_node, []).extend(nodes)
            renames[self.expand_at] = tiled
        outputs = self._recorded_outputs(new_nodes, elements)
        self._splice(graph, new_nodes, renames)
        del graph.value_info[:]
        scores = helper.make_tensor_value_info(
            adapter.output_name,
            helper.np_dtype_to_tensor_dtype(np_dtype(adapter._types.get(adapter.output_name))),
            None,
        )
        del graph.output[:]
        graph.output.extend([scores, *outputs])
        self.record_outputs = [o.name for o in outputs]
        self.session = ort.InferenceSession(
            serialise(model), adapter._options, providers=adapter._providers
        )

    def _edit_sites(
        self,
        graph: onnx.GraphProto,
        new_nodes: dict[int, list[onnx.NodeProto]],
        renames: dict[str, str],
    ) -> None:
        """Add the ``scale``, ``shift`` and ``noise`` inputs of each intervened site (and its
        ``basis`` along directions) to :attr:`inputs`, and the nodes applying them after the
        site's producer."""
        info = self.adapter._site_info
        for position, name in enumerate(self.sites):
            site, where = info[name], info[name].producer
            key = f"{PREFIX}{position}"
            scale, shift, noise = f"{key}_scale", f"{key}_shift", f"{key}_noise"
            self.inputs[name] = (scale, shift, noise)
            basis = f"{key}_basis" if name in self.along else None
            if basis is not None:
                self.basis_inputs[name] = basis
            for tensor in (scale, shift, noise, *([basis] if basis else [])):
                graph.input.append(
                    helper.make_tensor_value_info(
                        tensor, helper.np_dtype_to_tensor_dtype(site.dtype), None
                    )
                )
            expand = position == 0 and self.expand_at == site.tensor
            nodes, edited = _edit_nodes(key, site.tensor, site.rank, scale, shift, noise, expand)
            if basis is not None:
                unit_axis = 2 + self.adapter.sites[name].unit_axis_in(site.rank - 1)
                nodes = _along_nodes(
                    nodes, key, basis, site.rank + 1, unit_axis, self.adapter._opset
                )
            new_nodes.setdefault(where, []).extend(nodes)
            renames[site.tensor] = edited

    def _recorded_outputs(
        self, new_nodes: dict[int, list[onnx.NodeProto]], elements: bool
    ) -> list[onnx.ValueInfoProto]:
        """The outputs of the recorded sites, reduced over their position axes unless
        ``elements`` (the reducing nodes go to ``new_nodes``)."""
        adapter = self.adapter
        info = adapter._site_info
        outputs: list[onnx.ValueInfoProto] = []
        for name in self.record:
            site = info[name]
            tensor = site.tensor
            if site.rank > 2 and not elements:  # else unreduced, for record_elements
                # the mean over the position axes (space, tokens): (B, n_units) is left
                axes = [1 + a for a in adapter.sites[name].position_axes(site.rank - 1)]
                reduced = f"{PREFIX}rec_{len(outputs)}"
                new_nodes.setdefault(site.producer, []).extend(
                    _reduce_mean_nodes(reduced, tensor, axes, adapter._opset)
                )
                tensor = reduced
            outputs.append(
                helper.make_tensor_value_info(
                    tensor, helper.np_dtype_to_tensor_dtype(site.dtype), None
                )
            )
        return outputs

    def _splice(
        self,
        graph: onnx.GraphProto,
        new_nodes: dict[int, list[onnx.NodeProto]],
        renames: Mapping[str, str],
    ) -> None:
        """The graph's nodes that the scores and recorded sites need, each followed by the
        new nodes placed after it, their consumers reading the edited tensors."""
        adapter = self.adapter
        info = adapter._site_info
        keep = ancestors(
            adapter._graph.node,
            adapter._producers,
            [adapter.output_name, *(info[n].tensor for n in self.record)],
        )
        ordered: list[onnx.NodeProto] = list(new_nodes.get(-1, []))
        for index, original in enumerate(graph.node):
            if index not in keep:
                continue  # pruned: other outputs, ai.onnx.ml post-processing, ...
            node = onnx.NodeProto()
            node.CopyFrom(original)
            for i, tensor in enumerate(node.input):  # consumers read the edited tensors
                if tensor in renames:
                    node.input[i] = renames[tensor]
            _rename_in_bodies(node, renames)  # ... inside an If/Loop's bodies too
            ordered.append(node)
            ordered.extend(new_nodes.get(index, []))
        del graph.node[:]
        graph.node.extend(ordered)

    @property
    def at_input(self) -> bool:
        """Whether the rows are expanded at the model input (no prefix is shared)."""
        return self.expand_at == self.adapter._input

    def _expansion_point(self, site: str, site_node: int) -> tuple[str, int, int]:
        """``(tensor, producing node, rank)`` where B rows can become M*B (see ``expand_at``).

        A tensor qualifies when no node computed after it reads both a tensor that
        depends on it and a batch-carrying tensor that does not (a residual ``Add``, a
        ``Reshape`` to an early tensor's shape): those two would have M*B and B rows.
        """
        adapter = self.adapter
        nodes = adapter._graph.node
        # tensors that depend on the model input, or on another input holding the batch
        data: set[str] = {adapter._input, *adapter._batch_extras}
        for node in nodes:
            if any(t in data for t in (*node.input, *subgraph_reads(node))):
                data.update(node.output)
        earlier = [
            (nodes[i].output[0], i)
            for i in range(site_node - 1, -1, -1)
            if i in adapter._keep and nodes[i].output[0] in data
        ]
        candidates = [(site, site_node), *earlier[:_MAX_EXPANSION_CANDIDATES]]
        for tensor, index in candidates:
            rank = len(tensor_shape(adapter._types.get(tensor)) or ())
            if rank >= 1 and not self._conflicts(tensor, index, data):
                return tensor, index, rank
        return adapter._input, -1, len(adapter._input_dims)

    def _conflicts(self, tensor: str, producer: int, data: set[str]) -> bool:
        nodes = self.adapter._graph.node
        after = {tensor}
        for node in nodes[producer + 1 :]:
            reads = [*node.input, *subgraph_reads(node)]
            if any(t in after for t in reads):
                if any(t in data and t not in after for t in reads):
                    return True
                after.update(node.output)
        return False

    def bind_input(self, x: np.ndarray) -> Any:
        """The data batch as an OrtValue on the session's device (uploaded once)."""
        device = "cuda" if self.adapter.device.startswith("cuda") else "cpu"
        return ort.OrtValue.ortvalue_from_numpy(x, device, 0)

    def run(
        self,
        x: np.ndarray,
        interventions: Interventions | None,
        record: Sequence[str],
        bound: Any,
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One session run: logits ``(M, B, C)`` and recorded ``(B, n_units)``.

        ``noise_rows=(start, total)``: ``x`` is rows ``start..`` of a batch of ``total``
        (a fixed-size piece), so the noise drawn is that batch's, as other adapters draw it.
        """
        adapter = self.adapter
        b = x.shape[0]
        m = 1 if interventions is None else interventions.n_interventions
        feeds: dict[str, np.ndarray] = extra_feeds(adapter._extras, adapter._input_types, x)
        if interventions is not None:  # the rewrite edits exactly the sites it names
            for name in self.sites:
                feeds.update(self._feeds(name, interventions, x, noise_rows))
        fetch = [adapter.output_name, *(self.record_outputs if record else ())]
        if bound is not None:
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(adapter._input, bound)
            for name, value in feeds.items():
                binding.bind_cpu_input(name, value)
            for name in fetch:
                binding.bind_output(name)
            self.session.run_with_iobinding(binding)
            values = binding.copy_outputs_to_cpu()
        else:
            values = self.session.run(fetch, {adapter._input: x, **feeds})
        scores = np.asarray(values[0])
        if scores.ndim != 2 or scores.shape[0] not in (b, m * b):
            raise UnsupportedModelError(
                f"Output {adapter.output_name!r} is not class scores of shape (batch, "
                f"classes): got shape {scores.shape} for a batch of {b}."
            )
        if adapter.output_kind in BINARY_KINDS:
            scores = binary_columns(scores, adapter.output_kind)
        elif adapter.output_kind in LOGARITHM_TAKEN:
            scores = np.log(np.maximum(scores.astype(np.float32), np.finfo(np.float32).tiny))
        if scores.shape[0] == b and m > 1:
            scores = np.broadcast_to(scores, (m, *scores.shape))
        recorded = {}
        if record:
            for name, value in zip(self.record, values[1:], strict=True):
                recorded[name] = np.asarray(value[:b], dtype=np.float32)
        return scores.reshape(m, b, scores.shape[-1]), recorded

    def _feeds(
        self,
        name: str,
        iv: Interventions,
        x: np.ndarray,
        noise_rows: tuple[int, int] | None,
    ) -> dict[str, np.ndarray]:
        adapter = self.adapter
        b = x.shape[0]
        info = adapter._site_info[name]
        site = adapter.sites[name]
        scale_name, shift_name, noise_name = self.inputs[name]
        dtype = info.dtype
        m = iv.n_interventions
        unit_axis = site.unit_axis_in(info.rank - 1)
        shape = [m] + [1] * info.rank
        shape[2 + unit_axis] = iv.width(name)
        scale = np.asarray(iv.scale[name], dtype).reshape(shape)
        feeds: dict[str, np.ndarray] = {}
        if name in self.basis_inputs:  # the rewrite for these interventions: they have its basis
            feeds[self.basis_inputs[name]] = np.asarray(iv.basis[name], dtype)
        if name in iv.fill:
            # shift + (1 - scale) * fill, one value per element: (M, 1, *element shape)
            dims = list(info.dims)
            if name in iv.basis:
                dims[unit_axis] = iv.width(name)
            given = iv.fill[name].shape
            if len(dims) != len(given) or any(
                d is not None and d != t for d, t in zip(dims, given, strict=True)
            ):
                raise InvalidDataError(
                    f"The 'fill' template of site {name!r} has shape {iv.fill[name].shape}; the "
                    f"site's tensor has shape (batch, {', '.join(map(str, dims))})."
                )
            shift = iv.shift_with_fill(site, iv.fill[name].shape).astype(dtype)
        else:
            shift = np.asarray(iv.shift[name], dtype).reshape(shape)
        noise_std = np.asarray(iv.noise_std[name])
        if np.any(noise_std != 0):
            dims = iv.term_shape(site, adapter.site_dims(x, [name])[name])
            # a piece of a larger batch draws that batch's noise and keeps its own rows
            start, total = noise_rows or (0, b)
            eps = np.stack(
                [iv.standard_normal(name, r, (total, *dims))[start : start + b] for r in range(m)]
            )
            if eps.shape[1] < b:  # the padded tail of a fixed-size batch
                eps = np.concatenate([eps, np.zeros((m, b - eps.shape[1], *dims), eps.dtype)], 1)
            noise = (eps * noise_std.astype(np.float32).reshape(shape)).astype(dtype)
        else:
            noise = np.zeros([1] * (info.rank + 1), dtype)
        return {scale_name: scale, shift_name: shift, noise_name: noise, **feeds}


def _const(name: str, values: Sequence[int]) -> onnx.NodeProto:
    return helper.make_node(
        "Constant",
        [],
        [name],
        value=numpy_helper.from_array(np.asarray(values, np.int64), name),
    )


def _edit_nodes(
    key: str, tensor: str, rank: int, scale: str, shift: str, noise: str, expand: bool
) -> tuple[list[onnx.NodeProto], str]:
    """Nodes computing ``(a grouped by M) * scale + shift + noise``, flattened back."""
    rest = list(range(1, rank))
    nodes = [
        helper.make_node("Shape", [tensor], [f"{key}_shape"]),
        _const(f"{key}_rest_idx", rest),
        helper.make_node("Gather", [f"{key}_shape", f"{key}_rest_idx"], [f"{key}_rest"], axis=0),
        _const(f"{key}_minus1", [-1]),
    ]
    if expand:  # (B, ...) -> (1, B, ...)
        nodes.append(_const(f"{key}_lead", [1]))
    else:  # (M*B, ...) -> (M, B, ...), M from the scale input
        nodes += [
            helper.make_node("Shape", [scale], [f"{key}_scale_shape"]),
            _const(f"{key}_zero", [0]),
            helper.make_node(
                "Gather", [f"{key}_scale_shape", f"{key}_zero"], [f"{key}_lead"], axis=0
            ),
        ]
    nodes += [
        helper.make_node(
            "Concat", [f"{key}_lead", f"{key}_minus1", f"{key}_rest"], [f"{key}_grouped_shape"],
            axis=0,
        ),
        helper.make_node("Concat", [f"{key}_minus1", f"{key}_rest"], [f"{key}_flat_shape"], axis=0),
        helper.make_node("Reshape", [tensor, f"{key}_grouped_shape"], [f"{key}_grouped"]),
        helper.make_node("Mul", [f"{key}_grouped", scale], [f"{key}_scaled"]),
        helper.make_node("Add", [f"{key}_scaled", shift], [f"{key}_shifted"]),
        helper.make_node("Add", [f"{key}_shifted", noise], [f"{key}_noisy"]),
        helper.make_node("Reshape", [f"{key}_noisy", f"{key}_flat_shape"], [f"{key}_edited"]),
    ]  # fmt: skip
    return nodes, f"{key}_edited"


def _along_nodes(
    nodes: list[onnx.NodeProto], key: str, basis: str, rank: int, unit_axis: int, opset: int
) -> list[onnx.NodeProto]:
    """``nodes`` of :func:`_edit_nodes` rewired to edit the projections along ``basis``:
    ``p = a @ U.T`` is scaled, shifted and noised into ``p'``, and ``a + (p' - p) @ U`` is
    kept (``rank`` and ``unit_axis`` are those of the grouped ``(M, B, ...)`` tensor).

    A last unit axis (dense, tokens, channels-last maps) is a MatMul; a channel axis
    before positions an Einsum over it (opset 12 on; before it, a MatMul between two
    Transposes), so no tensor is transposed.
    """
    letters = "abcdefghijklmnopqrstuvwxy"[:rank]
    directions = letters[:unit_axis] + "z" + letters[unit_axis + 1 :]
    last = unit_axis == rank - 1
    perm = [a for a in range(rank) if a != unit_axis] + [unit_axis]
    inverse = [perm.index(a) for a in range(rank)]

    def along(source: str, target: str, forward: bool) -> list[onnx.NodeProto]:
        weights = f"{key}_basis_t" if forward else basis
        if last:  # (..., n) @ U.T, (..., k) @ U
            return [helper.make_node("MatMul", [source, weights], [target])]
        if opset < 12:  # no Einsum: the unit axis moved last and back
            return [
                helper.make_node("Transpose", [source], [f"{target}_moved"], perm=perm),
                helper.make_node("MatMul", [f"{target}_moved", weights], [f"{target}_last"]),
                helper.make_node("Transpose", [f"{target}_last"], [target], perm=inverse),
            ]
        equation = (
            f"{letters},z{letters[unit_axis]}->{directions}" if forward
            else f"{directions},z{letters[unit_axis]}->{letters}"
        )  # fmt: skip
        return [helper.make_node("Einsum", [source, basis], [target], equation=equation)]

    edited: list[onnx.NodeProto] = []
    for node in nodes:
        if node.op_type == "Mul" and node.output[0] == f"{key}_scaled":
            # a (grouped) -> its projections p, in the activation's layout
            if last or opset < 12:
                edited.append(
                    helper.make_node("Transpose", [basis], [f"{key}_basis_t"], perm=[1, 0])
                )
            edited += along(f"{key}_grouped", f"{key}_p", forward=True)
            edited.append(helper.make_node("Mul", [f"{key}_p", node.input[1]],
                                           [f"{key}_scaled"]))  # fmt: skip
        elif node.op_type == "Reshape" and node.output[0] == f"{key}_edited":
            # p' -> a + (p' - p) @ U
            edited.append(helper.make_node("Sub", [f"{key}_noisy", f"{key}_p"], [f"{key}_change"]))
            edited += along(f"{key}_change", f"{key}_back", forward=False)
            edited.append(helper.make_node("Add", [f"{key}_grouped", f"{key}_back"],
                                           [f"{key}_along"]))  # fmt: skip
            edited.append(helper.make_node("Reshape", [f"{key}_along", node.input[1]],
                                           [f"{key}_edited"]))  # fmt: skip
        else:
            edited.append(node)
    return edited


def _tile_nodes(key: str, tensor: str, rank: int, scale: str) -> tuple[list[onnx.NodeProto], str]:
    """Nodes repeating the model input M times along the batch axis, M from ``scale``."""
    nodes = [
        helper.make_node("Shape", [tensor], [f"{key}_shape"]),
        _const(f"{key}_rest_idx", list(range(1, rank))),
        helper.make_node("Gather", [f"{key}_shape", f"{key}_rest_idx"], [f"{key}_rest"], axis=0),
        _const(f"{key}_one", [1]),
        _const(f"{key}_minus1", [-1]),
        _const(f"{key}_ones", [1] * rank),
        helper.make_node("Concat", [f"{key}_one", f"{key}_shape"], [f"{key}_unsq_shape"], axis=0),
        helper.make_node("Reshape", [tensor, f"{key}_unsq_shape"], [f"{key}_unsq"]),
        helper.make_node("Shape", [scale], [f"{key}_scale_shape"]),
        _const(f"{key}_zero", [0]),
        helper.make_node("Gather", [f"{key}_scale_shape", f"{key}_zero"], [f"{key}_m"], axis=0),
        helper.make_node("Concat", [f"{key}_m", f"{key}_ones"], [f"{key}_repeats"], axis=0),
        helper.make_node("Tile", [f"{key}_unsq", f"{key}_repeats"], [f"{key}_tiled"]),
        helper.make_node("Concat", [f"{key}_minus1", f"{key}_rest"], [f"{key}_flat_shape"],
                         axis=0),
        helper.make_node("Reshape", [f"{key}_tiled", f"{key}_flat_shape"], [f"{key}_out"]),
    ]  # fmt: skip
    return nodes, f"{key}_out"


def _reduce_mean_nodes(out: str, tensor: str, axes: list[int], opset: int) -> list[onnx.NodeProto]:
    if opset >= 18:
        return [
            _const(f"{out}_axes", axes),
            helper.make_node("ReduceMean", [tensor, f"{out}_axes"], [out], keepdims=0),
        ]
    return [helper.make_node("ReduceMean", [tensor], [out], axes=axes, keepdims=0)]


def _rename_in_bodies(node: onnx.NodeProto, renames: Mapping[str, str]) -> None:
    """Make a control-flow node's bodies read the renamed (edited) outer tensors, where
    they do not make a tensor of that name themselves."""
    for attribute in node.attribute:
        graphs = [attribute.g] if attribute.HasField("g") else list(attribute.graphs)
        for graph in graphs:
            made = {i.name for i in graph.input} | {i.name for i in graph.initializer}
            for inner in graph.node:
                for i, tensor in enumerate(inner.input):
                    if tensor in renames and tensor not in made:
                        inner.input[i] = renames[tensor]
                _rename_in_bodies(inner, {k: v for k, v in renames.items() if k not in made})
                made.update(inner.output)
