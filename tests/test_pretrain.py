"""Tests for vislab.pretrain and vislab.recipes: training a toy recipe to a checkpoint and back."""

import json

import pytest
import torch
from torch import nn

import vislab.pretrain as pretrain
from vislab import recipes
from vislab.checkpoints import load_checkpoint
from vislab.recipes import Recipe

NAME = "toy_test_recipe"


def build(config):
    return nn.Sequential(nn.Linear(config["inputs"], config["hidden"]), nn.ReLU(), nn.Linear(config["hidden"], 2))


def train(model, seed, device, max_seconds):
    """Fit two separable blobs for a few steps; returns the final accuracy, as a recipe must."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long()
    x, y = x.to(device), y.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = (model(x).argmax(-1) == y).float().mean().item()
    return {"accuracy": round(acc, 4), "max_seconds": max_seconds}


@pytest.fixture
def toy(monkeypatch):
    """Register a toy recipe for one test only (the registry is left as it was)."""
    recipes.names()                                            # load the real recipes first
    recipe = Recipe(name=NAME, build=build, train=train, config={"inputs": 4, "hidden": 8}, seed=3,
                    description="a toy recipe for the tests")
    monkeypatch.setitem(recipes._REGISTRY, NAME, recipe)
    return recipe


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- the registry -------------------------------------------------------------------------------------

def test_registry(toy):
    assert recipes.get(NAME) is toy
    assert NAME in recipes.names() and recipes.names() == sorted(recipes.names())
    assert recipes.register(toy) is toy                        # registering the same object again is fine
    with pytest.raises(ValueError, match="already registered"):
        recipes.register(Recipe(name=NAME, build=build, train=train))
    with pytest.raises(TypeError, match="expected a Recipe"):
        recipes.register({"name": "x"})


def test_unknown_recipe_lists_the_available_ones(toy):
    with pytest.raises(KeyError) as info:
        recipes.get("no_such_recipe")
    msg = str(info.value)
    assert "no recipe 'no_such_recipe'" in msg
    for name in recipes.names():
        assert name in msg


def test_every_registered_recipe_is_well_formed():
    for name in recipes.names():
        r = recipes.get(name)
        assert r.name == name and callable(r.build) and callable(r.train)
        assert r.dtype in ("float32", "float16")
        json.dumps(r.config)                                   # configs go into the JSON as they are
        assert r.description


# ---- train_recipe ----------------------------------------------------------------------------------------

def test_train_recipe_writes_a_checkpoint_that_loads_back(toy, tmp_path):
    model, meta = pretrain.train_recipe(NAME, device="cpu", out=tmp_path / "toy", max_seconds=30,
                                        command="python -m vislab.pretrain toy_test_recipe")
    assert (tmp_path / "toy.safetensors").exists() and (tmp_path / "toy.json").exists()
    saved = json.loads((tmp_path / "toy.json").read_text())
    for key in ("command", "seed", "seconds", "metrics", "config", "torch", "name", "device", "threads"):
        assert key in saved, key
    assert saved["command"] == "python -m vislab.pretrain toy_test_recipe"
    assert saved["seed"] == 3 and saved["config"] == {"inputs": 4, "hidden": 8}
    assert saved["metrics"]["accuracy"] >= 0.9 and saved["metrics"]["max_seconds"] == 30
    assert saved["seconds"] >= 0 and saved["torch"] == torch.__version__
    assert saved["metrics"] == meta["metrics"]
    fresh = build(toy.config)
    assert not same_weights(fresh, model)
    loaded = load_checkpoint(tmp_path / "toy", fresh)
    assert same_weights(fresh, model)
    assert loaded["metrics"] == saved["metrics"]


def test_train_recipe_is_deterministic_by_seed(toy, tmp_path):
    a, meta_a = pretrain.train_recipe(NAME, device="cpu", out=tmp_path / "a")
    b, _ = pretrain.train_recipe(NAME, device="cpu", out=tmp_path / "b")
    c, meta_c = pretrain.train_recipe(NAME, seed=4, device="cpu", out=tmp_path / "c")
    assert same_weights(a, b)
    assert not same_weights(a, c)
    assert meta_a["command"] == f"python -m vislab.pretrain {NAME}"
    assert meta_c["seed"] == 4 and meta_c["command"] == f"python -m vislab.pretrain {NAME} --seed 4"


def test_train_recipe_fp16_storage(toy, tmp_path, monkeypatch):
    monkeypatch.setitem(recipes._REGISTRY, NAME, Recipe(**{**toy.__dict__, "dtype": "float16"}))
    model, _ = pretrain.train_recipe(NAME, device="cpu", out=tmp_path / "half")
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float16 for v in load_file(str(tmp_path / "half.safetensors")).values())
    fresh = build(toy.config)
    load_checkpoint(tmp_path / "half", fresh)
    for k, v in model.state_dict().items():
        assert fresh.state_dict()[k].dtype == torch.float32
        torch.testing.assert_close(fresh.state_dict()[k], v, atol=2e-3, rtol=2e-3)


def test_train_recipe_unknown_name():
    with pytest.raises(KeyError, match="no recipe"):
        pretrain.train_recipe("no_such_recipe", out="/nonexistent/x")


# ---- load_or_train -----------------------------------------------------------------------------------

def test_load_or_train_loads_a_checkpoint_when_present_and_trains_otherwise(toy, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pretrain, "checkpoint_path", lambda name: tmp_path / name)
    # nothing shipped: trains now, and writes NAME.local.* beside (never over) the shipped file
    model, meta = pretrain.load_or_train(NAME, device="cpu")
    assert "training toy_test_recipe now (no file at" in capsys.readouterr().out
    assert not model.training and meta["metrics"]["accuracy"] >= 0.9
    assert (tmp_path / f"{NAME}.local.safetensors").exists()
    assert not (tmp_path / f"{NAME}.safetensors").exists()
    # a shipped checkpoint is loaded
    shipped, _ = pretrain.train_recipe(NAME, seed=5, device="cpu", out=tmp_path / NAME)
    capsys.readouterr()
    loaded, meta = pretrain.load_or_train(NAME, device="cpu")
    assert "loaded checkpoint toy_test_recipe" in capsys.readouterr().out
    assert same_weights(loaded, shipped) and meta["seed"] == 5 and not loaded.training
    # ... unless the switch says to train
    before = (tmp_path / f"{NAME}.safetensors").read_bytes()
    retrained, _ = pretrain.load_or_train(NAME, device="cpu", use_checkpoint=False)
    assert "USE_CHECKPOINT is False" in capsys.readouterr().out
    assert not same_weights(retrained, shipped)                # seed 3, not the shipped seed 5
    assert (tmp_path / f"{NAME}.safetensors").read_bytes() == before   # the shipped file is untouched


def test_load_or_train_finds_checkpoints_whose_names_have_dots(toy, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pretrain, "checkpoint_path", lambda name: tmp_path / name)
    dotted = Recipe(**{**toy.__dict__, "name": "toy.v2"})
    monkeypatch.setitem(recipes._REGISTRY, "toy.v2", dotted)
    shipped, _ = pretrain.train_recipe("toy.v2", device="cpu", out=tmp_path / "toy.v2")
    loaded, _ = pretrain.load_or_train("toy.v2", device="cpu")
    assert "loaded checkpoint toy.v2" in capsys.readouterr().out
    assert same_weights(loaded, shipped)


def test_load_or_train_refuses_a_mismatched_checkpoint(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain, "checkpoint_path", lambda name: tmp_path / name)
    from vislab.checkpoints import CheckpointMismatchError, save_checkpoint

    save_checkpoint(tmp_path / NAME, nn.Linear(4, 2))
    with pytest.raises(CheckpointMismatchError):
        pretrain.load_or_train(NAME, device="cpu")


# ---- the command line --------------------------------------------------------------------------------

def test_main_lists_recipes(toy, capsys):
    assert pretrain.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert NAME in out and "a toy recipe for the tests" in out


def test_main_trains_to_out(toy, tmp_path, capsys, restore_threads):
    assert pretrain.main([NAME, "--out", str(tmp_path / "cli"), "--device", "cpu", "--threads", "1",
                          "--seed", "7"]) == 0
    meta = json.loads((tmp_path / "cli.json").read_text())
    assert meta["seed"] == 7 and meta["threads"] == 1
    assert meta["command"].startswith(f"python -m vislab.pretrain {NAME} --out ")
    assert "--seed 7" in meta["command"]
    assert f"{NAME}:" in capsys.readouterr().out


# ---- budgets on a GPU ----------------------------------------------------------------------------------

def test_budget_scale_is_one_on_cpu_and_larger_on_cuda():
    from vislab.runtime import GPU_BUDGET_SCALE, budget_scale, scaled_steps

    assert budget_scale("cpu") == 1 and budget_scale(torch.device("cpu")) == 1
    assert budget_scale(torch.device("cuda")) == GPU_BUDGET_SCALE > 1      # no GPU needed to ask
    assert scaled_steps(300, "cpu") == 300 and scaled_steps(300, "cuda") == 300 * GPU_BUDGET_SCALE
    with pytest.raises(TypeError, match="device"):
        budget_scale(3)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="positive int"):
            scaled_steps(bad, "cpu")


def test_train_recipe_passes_scale_to_recipes_that_take_it(toy, tmp_path, monkeypatch, capsys):
    seen = {}

    def scalable(model, seed, device, max_seconds, scale=1):
        seen["scale"] = scale
        return train(model, seed, device, max_seconds)

    monkeypatch.setitem(recipes._REGISTRY, NAME, Recipe(name=NAME, build=build, train=scalable, config=toy.config))
    _, meta = pretrain.train_recipe(NAME, device="cpu", out=tmp_path / "a", scale=3)
    assert seen["scale"] == 3 and meta["scale"] == 3 and meta["command"].endswith("--scale 3")
    _, meta = pretrain.train_recipe(NAME, device="cpu", out=tmp_path / "b")        # CPU default: 1, not passed
    assert seen["scale"] == 1 and meta["scale"] == 1 and "--scale" not in meta["command"]
    with pytest.raises(ValueError, match="positive int"):
        pretrain.train_recipe(NAME, device="cpu", out=tmp_path / "c", scale=0)


def test_train_recipe_with_a_fixed_budget_says_so_and_trains_at_scale_one(toy, tmp_path, capsys):
    _, meta = pretrain.train_recipe(NAME, device="cpu", out=tmp_path / "toy", scale=4)
    assert meta["scale"] == 1
    assert "fixed step budget" in capsys.readouterr().out


def test_every_shipped_recipe_scales_its_budget_on_a_gpu():
    missing = [n for n in recipes.names() if n != NAME and not pretrain.accepts_scale(recipes.get(n))]
    assert not missing, f"recipes without a `scale` keyword (a multiple of their step budget): {missing}"
