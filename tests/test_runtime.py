"""Tests for vislab.runtime: device choice, seeding, generators, threads, setup, and paths."""

import random

import numpy as np
import pytest
import torch

from vislab import paths, runtime


@pytest.fixture
def restore_threads():
    """set_threads changes process-wide pools; put torch's count back afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# ---- get_device -------------------------------------------------------------------------------

def test_get_device_default_is_a_device():
    dev = runtime.get_device()
    assert isinstance(dev, torch.device)
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        assert dev.type == "cpu"


def test_get_device_prefer_cpu():
    assert runtime.get_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_get_device_missing_cuda_raises_instead_of_falling_back():
    with pytest.raises(ValueError, match="CUDA"):
        runtime.get_device("cuda")
    with pytest.raises(ValueError, match="CUDA"):
        runtime.get_device("cuda:0")


def test_get_device_bad_input():
    with pytest.raises(ValueError, match="unknown device"):
        runtime.get_device("tpu")
    with pytest.raises(TypeError, match="string"):
        runtime.get_device(0)


# ---- seeding ----------------------------------------------------------------------------------

def test_seed_everything_seeds_every_library():
    g1 = runtime.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=g1))
    g2 = runtime.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=g2))
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])
    assert isinstance(g1, torch.Generator)


def test_seed_everything_accepts_numpy_ints_and_large_seeds():
    runtime.seed_everything(np.int64(7))
    runtime.seed_everything(2**40)                 # numpy's seed is taken modulo 2**32


@pytest.mark.parametrize("bad", [1.5, "0", None, True])
def test_seed_everything_rejects_non_ints(bad):
    with pytest.raises(TypeError, match="seed must be an int"):
        runtime.seed_everything(bad)


def test_make_generator_is_deterministic_and_independent_of_global_state():
    a = torch.rand(4, generator=runtime.make_generator(5))
    torch.manual_seed(999)
    torch.rand(100)
    b = torch.rand(4, generator=runtime.make_generator(5))
    c = torch.rand(4, generator=runtime.make_generator(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert runtime.make_generator(0).device == torch.device("cpu")


@pytest.mark.parametrize("bad", [0.0, "1", None, False])
def test_make_generator_rejects_non_ints(bad):
    with pytest.raises(TypeError, match="seed must be an int"):
        runtime.make_generator(bad)


# ---- threads ----------------------------------------------------------------------------------

def test_set_threads_default_and_explicit(restore_threads):
    from threadpoolctl import threadpool_info

    assert runtime.set_threads() == runtime.DEFAULT_CPU_THREADS
    assert torch.get_num_threads() == runtime.DEFAULT_CPU_THREADS
    assert runtime.set_threads(2) == 2
    assert torch.get_num_threads() == 2
    assert runtime.set_threads(1) == 1
    assert torch.get_num_threads() == 1
    # the BLAS/OpenMP pools that numpy and scikit-learn use are limited too
    assert all(pool["num_threads"] == 1 for pool in threadpool_info())


@pytest.mark.parametrize("bad", [0, -1, 1.0, "2", True])
def test_set_threads_rejects_bad_counts(bad, restore_threads):
    with pytest.raises(ValueError, match="positive int"):
        runtime.set_threads(bad)


def test_default_cpu_threads_is_a_positive_int():
    assert isinstance(runtime.DEFAULT_CPU_THREADS, int) and runtime.DEFAULT_CPU_THREADS >= 1


# ---- setup ------------------------------------------------------------------------------------

def test_setup_prints_one_line_and_returns_the_device(capsys, restore_threads):
    dev = runtime.setup(seed=3, device="cpu")
    out = capsys.readouterr().out.strip().splitlines()
    assert dev == torch.device("cpu")
    assert len(out) == 1
    assert "device=cpu" in out[0] and "seed=3" in out[0]
    assert f"{runtime.DEFAULT_CPU_THREADS} CPU thread" in out[0]
    assert torch.get_num_threads() == runtime.DEFAULT_CPU_THREADS
    # the seed was applied
    x = torch.rand(2)
    runtime.setup(seed=3, device="cpu", verbose=False)
    assert torch.equal(x, torch.rand(2))
    assert capsys.readouterr().out == ""


def test_setup_threads_argument(capsys, restore_threads):
    runtime.setup(seed=0, threads=2, device="cpu")
    assert torch.get_num_threads() == 2
    assert "2 CPU threads" in capsys.readouterr().out


def test_setup_bad_input(restore_threads):
    with pytest.raises(TypeError):
        runtime.setup(seed="zero", device="cpu")
    with pytest.raises(ValueError):
        runtime.setup(seed=0, device="tpu")
    with pytest.raises(ValueError):
        runtime.setup(seed=0, threads=0, device="cpu")


def test_on_colab_is_false_here(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert runtime.on_colab() is False
    monkeypatch.setenv("COLAB_RELEASE_TAG", "x")
    assert runtime.on_colab() is True


def test_import_sets_no_global_state():
    """Importing vislab modules must not seed or change thread counts (STYLE rule 9)."""
    import subprocess
    import sys

    # Python's own `random` is left out: importing scikit-learn (a dependency of vislab.probes)
    # draws from it, which is why chapters call setup() after their imports.
    code = ("import numpy as np, torch; n = torch.get_num_threads(); "
            "torch.manual_seed(11); np.random.seed(11); "
            "import vislab, vislab.runtime, vislab.shapes, vislab.train, vislab.probes, vislab.patching, "
            "vislab.check, vislab.checkpoints, vislab.images; "
            "a = (torch.rand(3), np.random.rand()); "
            "torch.manual_seed(11); np.random.seed(11); "
            "b = (torch.rand(3), np.random.rand()); "
            "assert torch.equal(a[0], b[0]) and a[1] == b[1], 'import touched a global RNG'; "
            "assert torch.get_num_threads() == n, 'import changed the thread count'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ---- paths ------------------------------------------------------------------------------------

def test_paths_point_at_the_checkout():
    root = paths.repo_root()
    assert (root / "book.yml").exists()
    assert (root / "vislab").is_dir()
    assert paths.data_dir() == root / "data"
    assert paths.checkpoint_dir() == root / "data" / "checkpoints"
