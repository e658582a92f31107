"""Tests for vislab.checkpoints: round trips, fp16 storage, atomic writes, clear mismatch errors."""

import json

import pytest
import torch
from torch import nn

from vislab import paths
from vislab.checkpoints import (CheckpointMismatchError, checkpoint_path, load_checkpoint, read_meta,
                                save_checkpoint)


class Tiny(nn.Module):
    def __init__(self, width=8, extra=False):
        super().__init__()
        self.embed = nn.Linear(4, width)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 3)
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))      # an integer buffer
        if extra:
            self.extra = nn.Linear(3, 3)


def make(seed=0, **kw):
    torch.manual_seed(seed)
    return Tiny(**kw)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip(tmp_path):
    model = make(0)
    model.steps.fill_(17)
    meta = {"config": {"width": 8}, "seed": 3, "metrics": {"acc": 0.875}, "command": "python -m x"}
    stem = save_checkpoint(tmp_path / "tiny", model, meta)
    assert stem == tmp_path / "tiny"
    assert (tmp_path / "tiny.safetensors").exists() and (tmp_path / "tiny.json").exists()
    other = make(1)
    assert not same_weights(model, other)
    loaded = load_checkpoint(tmp_path / "tiny", other)
    assert same_weights(model, other)
    assert other.steps.item() == 17 and other.steps.dtype == torch.long
    for k, v in meta.items():
        assert loaded[k] == v
    assert loaded["torch"] == torch.__version__                # recorded automatically
    assert read_meta(tmp_path / "tiny") == loaded
    # the JSON is plain, readable JSON
    assert json.loads((tmp_path / "tiny.json").read_text()) == loaded


@pytest.mark.parametrize("suffix", [".safetensors", ".json", ""])
def test_paths_with_or_without_suffix(tmp_path, suffix):
    model = make(0)
    save_checkpoint(f"{tmp_path / 'm'}{suffix}", model, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
    other = make(1)
    assert load_checkpoint(str(tmp_path / f"m{suffix}"), other) ["a"] == 1
    assert same_weights(model, other)


@pytest.mark.parametrize("name", ["vit.local", "run_0.5", "a.b.c"])
def test_stems_with_dots_keep_their_name(tmp_path, name):
    """``NAME.local`` (pretrain's local retraining) must not overwrite ``NAME.safetensors``."""
    shipped, local = make(0), make(1)
    save_checkpoint(tmp_path / name.split(".")[0], shipped, {"which": "shipped"})
    save_checkpoint(tmp_path / name, local, {"which": "local"})
    assert (tmp_path / f"{name}.safetensors").exists() and (tmp_path / f"{name}.json").exists()
    probe = make(2)
    assert load_checkpoint(tmp_path / name.split(".")[0], probe)["which"] == "shipped"
    assert same_weights(probe, shipped)
    assert load_checkpoint(tmp_path / name, probe)["which"] == "local"
    assert same_weights(probe, local)
    assert read_meta(tmp_path / f"{name}.json")["which"] == "local"


def test_meta_is_optional_and_not_mutated(tmp_path):
    model = make(0)
    meta = {"x": 1}
    save_checkpoint(tmp_path / "a", model, meta)
    assert meta == {"x": 1}
    save_checkpoint(tmp_path / "b", model)
    assert set(read_meta(tmp_path / "b")) == {"torch"}
    (tmp_path / "b.json").unlink()
    assert load_checkpoint(tmp_path / "b", make(1)) == {}          # weights alone still load


def test_meta_with_non_json_values_is_stringified(tmp_path):
    save_checkpoint(tmp_path / "m", make(0), {"device": torch.device("cpu"), "path": tmp_path})
    meta = read_meta(tmp_path / "m")
    assert meta["device"] == "cpu" and meta["path"] == str(tmp_path)


def test_fp16_storage_halves_the_file_and_loads_back_in_float32(tmp_path):
    model = make(0, width=256)
    save_checkpoint(tmp_path / "f32", model)
    save_checkpoint(tmp_path / "f16", model, dtype=torch.float16)
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "f16.safetensors"))
    assert stored["embed.weight"].dtype == torch.float16
    assert stored["steps"].dtype == torch.long                      # integers are not cast
    size16 = (tmp_path / "f16.safetensors").stat().st_size
    size32 = (tmp_path / "f32.safetensors").stat().st_size
    assert size16 < 0.75 * size32
    other = make(1, width=256)
    load_checkpoint(tmp_path / "f16", other)
    for k, v in model.state_dict().items():
        w = other.state_dict()[k]
        assert w.dtype == v.dtype
        torch.testing.assert_close(w, v.to(torch.float16).to(v.dtype) if v.is_floating_point() else v, atol=0, rtol=0)
        if v.is_floating_point():
            torch.testing.assert_close(w, v, atol=1e-3, rtol=1e-3)


def test_tied_weights_can_be_saved(tmp_path):
    model = make(0)
    model.extra_head = model.head                                   # the same module twice in the state dict
    save_checkpoint(tmp_path / "tied", model)
    other = make(1)
    other.extra_head = other.head
    load_checkpoint(tmp_path / "tied", other)
    assert same_weights(model, other)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "sub" / "dir" / "ckpt"                       # parent folders are created
    save_checkpoint(target, make(0), {"a": 1})
    save_checkpoint(target, make(1), {"a": 2})                       # overwrite in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["ckpt.json", "ckpt.safetensors"]
    assert read_meta(target)["a"] == 2


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path):
    model = make(0)
    save_checkpoint(tmp_path / "c", model, {"v": "old"})

    class Unserialisable:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(tmp_path / "c", make(1), {"v": Unserialisable()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.safetensors"]
    assert read_meta(tmp_path / "c")["v"] == "old"
    probe = make(2)
    load_checkpoint(tmp_path / "c", probe)
    assert same_weights(probe, model)


def test_failed_weights_write_leaves_no_temp_file(tmp_path, monkeypatch):
    import vislab.checkpoints as ck

    def broken(tensors, filename, *a, **k):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(tmp_path / "d", make(0))
    assert list(tmp_path.iterdir()) == []


# ---- mismatches ----------------------------------------------------------------------------------

def test_missing_tensors_are_named(tmp_path):
    save_checkpoint(tmp_path / "small", make(0))
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(tmp_path / "small", make(0, extra=True))
    msg = str(info.value)
    assert "missing from the file: extra.bias, extra.weight" in msg
    assert "small.safetensors" in msg and "Tiny" in msg


def test_unexpected_tensors_are_named(tmp_path):
    save_checkpoint(tmp_path / "big", make(0, extra=True))
    with pytest.raises(CheckpointMismatchError, match="not in the model: extra.bias, extra.weight"):
        load_checkpoint(tmp_path / "big", make(0))


def test_shape_mismatches_are_named_and_nothing_is_loaded(tmp_path):
    save_checkpoint(tmp_path / "w8", make(0, width=8))
    target = make(1, width=16)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(tmp_path / "w8", target)
    msg = str(info.value)
    assert "embed.weight: file (8, 4) vs model (16, 4)" in msg
    assert "head.weight: file (3, 8) vs model (3, 16)" in msg
    assert "norm.bias" in msg
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_all_kinds_of_mismatch_in_one_message(tmp_path):
    save_checkpoint(tmp_path / "a", make(0, width=8, extra=True))
    model = make(0, width=16)
    model.more = nn.Linear(2, 2)
    with pytest.raises(ValueError) as info:                         # CheckpointMismatchError is a ValueError
        load_checkpoint(tmp_path / "a", model)
    msg = str(info.value)
    assert "missing from the file: more.bias, more.weight" in msg
    assert "not in the model: extra.bias, extra.weight" in msg
    assert "shape mismatch" in msg


def test_load_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing", make(0))
    with pytest.raises(FileNotFoundError, match="no checkpoint metadata"):
        read_meta(tmp_path / "nothing")
    save_checkpoint(tmp_path / "ok", make(0))
    with pytest.raises(TypeError, match="nn.Module"):
        load_checkpoint(tmp_path / "ok", make(0).state_dict())
    with pytest.raises(TypeError, match="nn.Module"):
        save_checkpoint(tmp_path / "x", make(0).state_dict())


# ---- shipped checkpoint names ----------------------------------------------------------------------

def test_checkpoint_path():
    assert checkpoint_path("vit_shapes") == paths.checkpoint_dir() / "vit_shapes"
    assert checkpoint_path("vit_shapes").parent == paths.repo_root() / "data" / "checkpoints"
    for bad in ("", "a/b", ".hidden", None, 3):
        with pytest.raises(ValueError, match="plain file stem"):
            checkpoint_path(bad)
