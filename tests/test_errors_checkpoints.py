"""Checkpoints refuse what would load silently wrong (issue 21); every shipped checkpoint still loads."""

import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vislab.checkpoints import CheckpointMismatchError, load_checkpoint, read_meta, save_checkpoint
from vislab.vit import ViT, ViTConfig


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))


def tiny(seed=0):
    torch.manual_seed(seed)
    return Tiny()


def small_vit(**kw):
    torch.manual_seed(0)
    return ViT(ViTConfig(image_size=16, patch_size=8, dim=16, depth=1, heads=2, **kw))


def test_a_config_that_differs_from_the_models_is_named(tmp_path):
    gelu = small_vit(mlp="gelu")
    save_checkpoint(tmp_path / "g", gelu, {"config": {"model": gelu.config.to_dict()}})
    relu = small_vit(mlp="relu")
    before = {k: v.clone() for k, v in relu.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match=r"mlp: file 'gelu' vs model 'relu'"):
        load_checkpoint(tmp_path / "g", relu)
    assert all(torch.equal(before[k], v) for k, v in relu.state_dict().items())          # untouched
    # the config may also be the model's config itself, at the top level
    save_checkpoint(tmp_path / "t", gelu, {"config": gelu.config.to_dict()})
    with pytest.raises(CheckpointMismatchError, match="mlp"):
        load_checkpoint(tmp_path / "t", relu)
    assert load_checkpoint(tmp_path / "t", small_vit(mlp="gelu"))["config"]["mlp"] == "gelu"


def test_an_explicit_config_is_compared_field_by_field(tmp_path):
    save_checkpoint(tmp_path / "c", tiny(), {"config": {"hidden": 8, "train": {"lr": 0.1}}})
    assert load_checkpoint(tmp_path / "c", tiny(1), config={"hidden": 8, "train": {"lr": 0.1}})
    with pytest.raises(CheckpointMismatchError, match=r"train.lr: file 0.1 vs model 0.2"):
        load_checkpoint(tmp_path / "c", tiny(1), config={"hidden": 8, "train": {"lr": 0.2}})
    with pytest.raises(TypeError, match="config must be a dict"):
        load_checkpoint(tmp_path / "c", tiny(1), config=[1])
    # tuples and lists are the same thing once in JSON
    save_checkpoint(tmp_path / "d", tiny(), {"config": {"sizes": (1, 2)}})
    load_checkpoint(tmp_path / "d", tiny(1), config={"sizes": (1, 2)})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused(tmp_path, value):
    model = tiny()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["lin.weight"][0, 0] = value
    save_file(state, str(tmp_path / "n.safetensors"))
    target = tiny(1)
    before = target.lin.weight.clone()
    with pytest.raises(ValueError, match="NaN or infinite values in lin.weight"):
        load_checkpoint(tmp_path / "n", target)
    assert torch.equal(target.lin.weight, before)
    with torch.no_grad():
        model.lin.weight[0, 0] = value
    with pytest.raises(ValueError, match="non-finite weights"):
        save_checkpoint(tmp_path / "m", model)
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
def test_integer_and_bool_tensors_are_not_cast_into_float_weights(tmp_path, dtype):
    state = {k: v.clone() for k, v in tiny().state_dict().items()}
    state["lin.weight"] = torch.ones(2, 3).to(dtype)
    save_file(state, str(tmp_path / "i.safetensors"))
    with pytest.raises(CheckpointMismatchError, match=rf"lin.weight: file {dtype} vs model torch.float32"):
        load_checkpoint(tmp_path / "i", tiny(1))


def test_a_float_file_tensor_into_an_integer_buffer_is_refused(tmp_path):
    state = {k: v.clone() for k, v in tiny().state_dict().items()}
    state["steps"] = torch.tensor(3.5)
    save_file(state, str(tmp_path / "f.safetensors"))
    with pytest.raises(CheckpointMismatchError, match="steps: file torch.float32 vs model torch.int64"):
        load_checkpoint(tmp_path / "f", tiny(1))


@pytest.mark.parametrize("text, fragment", [("[1, 2]", "must hold a JSON object"), ('"x"', "JSON object"),
                                            ("{not json", "is not valid JSON"), ('{"config": [1]}', "'config' must be")])
def test_a_bad_sidecar_is_refused_before_the_model_is_touched(tmp_path, text, fragment):
    save_checkpoint(tmp_path / "s", tiny())
    (tmp_path / "s.json").write_text(text)
    target = tiny(1)
    before = target.lin.weight.clone()
    with pytest.raises(ValueError, match=fragment) as info:
        load_checkpoint(tmp_path / "s", target)
    assert "s.json" in str(info.value) or "s.safetensors" in str(info.value)
    assert torch.equal(target.lin.weight, before)
    if "config" not in text:
        with pytest.raises(ValueError, match="s.json"):
            read_meta(tmp_path / "s")


def test_a_model_on_the_meta_device_is_refused(tmp_path):
    save_checkpoint(tmp_path / "m", tiny())
    with torch.device("meta"):
        ghost = Tiny()
    with pytest.raises(ValueError, match="meta device.*to_empty"):
        load_checkpoint(tmp_path / "m", ghost)
    with pytest.raises(ValueError, match="meta device"):
        save_checkpoint(tmp_path / "g", ghost)


@pytest.mark.parametrize("content, fragment", [
    (None, "torch.save/pickle"),                                      # torch.save's zip
    (b"\x80\x04K\x01.", "torch.save/pickle"),                         # a raw pickle
    (b"", "not a readable safetensors"),
    (b"hello world, not a tensor file", "not a readable safetensors"),
    (b"\xff" * 8 + b"{}", "not a readable safetensors"),              # header too large
])
def test_files_that_are_not_safetensors_are_refused_by_name(tmp_path, content, fragment):
    path = tmp_path / "w.safetensors"
    if content is None:
        torch.save(tiny().state_dict(), path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=fragment) as info:
        load_checkpoint(tmp_path / "w", tiny(1))
    assert "w.safetensors" in str(info.value)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int64, torch.bool, torch.uint8])
def test_saving_refuses_a_dtype_that_destroys_float_weights(tmp_path, dtype):
    with pytest.raises(ValueError, match="would truncate every float weight"):
        save_checkpoint(tmp_path / "x", tiny(), dtype=dtype)
    assert not list(tmp_path.iterdir())


def test_saving_refuses_bad_dtypes_meta_and_float16_overflow(tmp_path):
    with pytest.raises(TypeError, match="torch.dtype"):
        save_checkpoint(tmp_path / "x", tiny(), dtype="float16")
    with pytest.raises(TypeError, match="meta must be a dict"):
        save_checkpoint(tmp_path / "x", tiny(), meta=[1, 2])
    big = tiny()
    with torch.no_grad():
        big.lin.weight[0, 0] = 1e6
    with pytest.raises(ValueError, match="overflows"):
        save_checkpoint(tmp_path / "x", big, dtype=torch.float16)
    save_checkpoint(tmp_path / "x", big, dtype=torch.bfloat16)          # bfloat16 has the range


# ---- every shipped checkpoint loads as the chapters load it ---------------------------------------------

def _shipped():
    from vislab.paths import checkpoint_dir

    return sorted(p.stem for p in checkpoint_dir().glob("*.safetensors"))


def test_there_are_shipped_checkpoints():
    assert len(_shipped()) >= 10


@pytest.mark.parametrize("name", _shipped())
def test_every_shipped_checkpoint_loads_as_the_chapters_load_it(name, capsys):
    from safetensors.torch import load_file

    from vislab.paths import checkpoint_dir
    from vislab.pretrain import load_or_train

    model, meta = load_or_train(name, device="cpu", use_checkpoint=True)       # the chapters' call
    assert f"loaded checkpoint {name}" in capsys.readouterr().out                # loaded, not retrained
    assert meta["name"] == name
    stored = load_file(str(checkpoint_dir() / f"{name}.safetensors"))
    own = model.state_dict()
    assert set(stored) == set(own)
    for k, v in stored.items():                                                  # bit for bit, after the cast
        assert torch.equal(own[k], v.to(own[k].dtype)), k


def test_load_or_train_and_train_recipe_check_their_switches():
    from vislab.pretrain import load_or_train, train_recipe

    with pytest.raises(TypeError, match="use_checkpoint must be True or False"):
        load_or_train("vit_shapes", device="cpu", use_checkpoint="yes")
    with pytest.raises(TypeError, match="seed must be an int"):
        train_recipe("vit_shapes", seed=1.5, device="cpu")
    with pytest.raises(ValueError, match="max_seconds must be a positive number"):
        train_recipe("vit_shapes", device="cpu", max_seconds=-1)
