"""Real checkpoints into vislab's own modules: ``from_hf(model)``.

The online tier of each chapter loads a ``transformers`` model (which downloads weights when
the learner has internet) and converts it here, so the course's own code and widgets run on
real weights. Each converter lives in a module named after the model family and is tested
offline against tiny random ``transformers`` models.
"""

from __future__ import annotations

import importlib

__all__ = ["from_hf", "CONVERTERS"]

# transformers' config.model_type → vislab.pretrained.<module>.convert
CONVERTERS = {
    "vit": "vit",
    "clip": "clip",
    "siglip": "siglip",
    "dinov2": "dinov2",
    "dinov2_with_registers": "dinov2",
}


def from_hf(model):
    """Convert a ``transformers`` model into the matching vislab module (weights copied).

    Raises ``TypeError`` for objects that are not transformers models or whose family the
    course has no converter for.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise TypeError(f"expected a transformers PreTrainedModel, got {type(model).__name__}")
    if model_type not in CONVERTERS:
        raise TypeError(f"no vislab converter for model_type {model_type!r}; supported: {sorted(CONVERTERS)}")
    try:
        module = importlib.import_module(f"{__name__}.{CONVERTERS[model_type]}")
    except ModuleNotFoundError as err:
        if err.name == f"{__name__}.{CONVERTERS[model_type]}":
            raise TypeError(f"the converter for {model_type!r} is not written yet "
                            f"(vislab/pretrained/{CONVERTERS[model_type]}.py)") from err
        raise
    return module.convert(model)
