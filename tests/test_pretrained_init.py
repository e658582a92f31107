"""Tests for vislab.pretrained.from_hf: dispatch on config.model_type, clear errors otherwise."""

from types import SimpleNamespace

import pytest
from torch import nn

from vislab.pretrained import CONVERTERS, from_hf


@pytest.mark.parametrize("obj", [nn.Linear(2, 2), object(), "google/vit-base-patch16-224", None,
                                 SimpleNamespace(config=None), SimpleNamespace(config=SimpleNamespace())])
def test_non_transformers_objects_raise_type_error(obj):
    with pytest.raises(TypeError, match="expected a transformers PreTrainedModel"):
        from_hf(obj)


def test_unsupported_model_type_names_the_supported_ones():
    fake = SimpleNamespace(config=SimpleNamespace(model_type="bert"))
    with pytest.raises(TypeError) as info:
        from_hf(fake)
    msg = str(info.value)
    assert "no vislab converter for model_type 'bert'" in msg
    for kind in CONVERTERS:
        assert kind in msg


def test_every_converter_module_named_in_the_table_is_importable_or_pending():
    """Each entry names a module vislab/pretrained/<name>.py exposing convert(); modules not
    written yet must be reported by from_hf as such (TypeError), not as an import crash."""
    import importlib

    for kind, module in CONVERTERS.items():
        try:
            mod = importlib.import_module(f"vislab.pretrained.{module}")
        except ModuleNotFoundError as err:
            assert err.name == f"vislab.pretrained.{module}"
            with pytest.raises(TypeError, match="not written yet"):
                from_hf(SimpleNamespace(config=SimpleNamespace(model_type=kind)))
            continue
        assert callable(getattr(mod, "convert", None)), f"vislab/pretrained/{module}.py lacks convert()"

