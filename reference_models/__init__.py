"""The paper's reference models, data sets and training (``directionkit.reference_models``)."""
