"""The ONNX adapter: audit a model from its ``.onnx`` file alone, with onnxruntime.

The adapter never touches the caller's file or ``ModelProto``; it rewrites a copy.
For every set of intervened sites it builds (once, then caches) a graph in which each
intervened site tensor ``a`` is followed by::

    a' = Reshape(a, (M or 1, B, ...)) * scale + shift + noise  ->  Reshape(a', (M*B, ...))

``scale`` and ``shift`` are new graph inputs of shape ``(M, 1, C, 1, 1)`` for a conv
site (``(M, 1, U)`` for a dense one) and ``noise`` is ``noise_std * eps``, so one
``InferenceSession.run`` evaluates M interventions.  The batch grows from B to M*B
rows at the first intervened site; everything before it runs once per data batch
(prefix caching).  Where a tensor computed before that site is consumed after it
(a residual connection, or a shape computed from an early tensor), the rows are
expanded at the latest earlier tensor that everything after it depends on (in a
ResNet, the input of the block holding the site), so only the blocks from there on
run M times; failing that, at the model input.  Recorded sites become extra outputs, reduced
over space in the graph for conv sites.

Sites
-----
Outputs of activation nodes (:data:`ACTIVATION_OPS`) that lie on the path to the
model's output, excluding the activation that produces the output (a final
Softmax or Sigmoid): no Conv/Gemm/MatMul between it and the output.  A rank-4
activation is a conv site (unit = channel, axis 1); rank 2 and 3 have their units
on the last axis.  Names follow the PyTorch module paths when the graph carries
them, so a torch model and its export report the same site names:

* the dynamo exporter's ``pkg.torch.onnx.name_scopes`` metadata (an activation
  module decomposed into several nodes, e.g. GELU at low opsets, is one site: the
  output of its last node; a module called twice gives ``name`` and ``name#1``);
* the legacy exporter's node names: ``/3/relu/Relu`` is ``3.relu``, its second
  call ``/3/relu_1/Relu`` is ``3.relu#1``; ``/features/features.2/Relu`` is ``features.2``;
* otherwise the node's name, or its output tensor's name.

A site's :attr:`~directionkit.adapter.Site.layer` (counted by ``scope="last:K"``)
follows the torch adapter's rule where the dynamo exporter's class metadata allows:
the block owning the activation module (a module with its own forward, not the model
and not a Sequential/ModuleList/ModuleDict).  Without that metadata (legacy exports,
other producers) every site is a layer of its own.  A site's
:attr:`~directionkit.adapter.Site.shape` is its tensor's per-example shape when shape
inference fixes it.  Per-element ``fill`` templates are fed as the ``shift`` input,
``shift + (1 - scale) * fill`` of shape ``(M, 1, *element shape)``.

The output
----------
The float output of shape ``(B, C)``, or ``(B, C, 1, 1)`` as CNNs ending in a 1x1
convolution and global pooling give it (read as ``(B, C)``); ``output=`` picks one
when there are several.  When it holds probabilities (it comes out of a Softmax or
Sigmoid), the adapter returns their logarithm as the class scores, so accuracy is
unchanged and the core's cross-entropy is ``-log p[y]`` (for a Sigmoid's per-class
probabilities ``-log(s[y] / sum(s))``, see :data:`directionkit.adapter.OUTPUT_KINDS`); it
says so once in the log and in :attr:`OnnxAdapter.output_kind`.  scikit-learn models
converted by skl2onnx output a ``ZipMap`` (a sequence of dicts) by default; the adapter
then reads the probability tensor that feeds it.

Files from elsewhere
--------------------
What onnxruntime runs is audited: a model that fails ``onnx.checker`` (an old IR
version, say) gets a warning, not a refusal; one onnxruntime cannot load (a
custom-domain operator without its library) is an :class:`UnsupportedModelError`
naming the domain.  A batch axis fixed in the file (``torch.onnx.export`` without
dynamic shapes) is made symbolic in the private copy, batch sizes built into
``Reshape`` targets included, and kept only if the copy gives the original's scores
on a batch of another size and on each example alone; otherwise the adapter runs one
intervention per session run and warns, with the cost and how to re-export.
External data must lie inside the model file's folder: locations with ``..``,
absolute paths and symlinks that resolve outside it are refused.

Examples
--------
>>> import numpy as np
>>> from onnx import TensorProto, helper, numpy_helper
>>> from directionkit.adapter import Interventions
>>> w1 = numpy_helper.from_array(np.eye(2, 3, dtype=np.float32), "w1")
>>> w2 = numpy_helper.from_array(np.ones((3, 2), np.float32), "w2")
>>> graph = helper.make_graph(
...     [helper.make_node("MatMul", ["x", "w1"], ["h"]),
...      helper.make_node("Relu", ["h"], ["a"], name="act"),
...      helper.make_node("MatMul", ["a", "w2"], ["logits"])],
...     "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
...     [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], [w1, w2])
>>> adapter = OnnxAdapter(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
>>> list(adapter.sites)
['act']
>>> iv = Interventions.zero_ablate(adapter.sites, {"act": [[True, False, False], [False] * 3]})
>>> adapter.run(np.ones((4, 2), np.float32), iv).logits[:, 0]
array([[1., 1.],
       [2., 2.]], dtype=float32)
"""

from __future__ import annotations

import logging

from ._adapter import OnnxAdapter, from_model
from ._load import MIN_OPSET
from ._sites import ACTIVATION_OPS, TORCH_ACTIVATIONS

__all__ = [
    "ACTIVATION_OPS",
    "MAX_SESSIONS",
    "MIN_OPSET",
    "TORCH_ACTIVATIONS",
    "OnnxAdapter",
    "from_model",
]

#: The logger of every module of this package (their records carry this name).
log = logging.getLogger(__name__)
#: Rewritten sessions kept (least recently used dropped): one per set of intervened and
#: recorded sites, so per-unit importance over many sites would otherwise hold one each,
#: each with its memory arena at its peak (B8: 2.5 GB with every session, 0.6 GB with 2).
#: Read at each use: setting it here takes effect.
MAX_SESSIONS = 2
