"""Model runtimes behind the :class:`directionkit.adapter.ModelAdapter` seam.

Installed as ``directionkit.adapters``; each framework's adapter lives in its own
module (``directionkit.adapters.torch``, ``directionkit.adapters.onnx``) and is
imported only when used, so ``import directionkit`` never imports a framework.
"""
