"""The PyTorch adapter: hooks on a ``torch.nn.Module``, never leaking into it.

Sites
-----
By default a site is every hidden activation, one site per *call*, found by running the
model once (see :mod:`directionkit.adapters.torch._trace` for the rules):

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

from ._adapter import SiteSpec, TorchAdapter
from ._trace import ACTIVATION_TYPES

__all__ = ["ACTIVATION_TYPES", "SiteSpec", "TorchAdapter"]
