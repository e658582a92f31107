"""Data, tiling and AnyRes helpers refuse nonsense and sizes that cannot finish (issue 21)."""

import time

import pytest
import torch

from vislab import anyres, internvit
from vislab.shapes import ShapeWorld


# ---- InternVL tiling ---------------------------------------------------------------------------------

def test_candidate_grids_refuses_a_tile_count_it_cannot_enumerate_quickly():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="max_num=2000 tiles is above the limit of 256"):
        internvit.candidate_grids(1, 2000)
    assert time.perf_counter() - t0 < 0.1                             # refused, not computed
    assert len(internvit.candidate_grids(1, internvit.MAX_TILES)) > 0


@pytest.mark.parametrize("kw, err, fragment", [
    (dict(min_num=0), ValueError, "min_num must be a positive int"),
    (dict(min_num=3, max_num=2), ValueError, "must be <= max_num"),
    (dict(max_num=10 ** 4), ValueError, "above the limit"),
    (dict(image_size=448, patch_size=15), ValueError, "not a multiple of patch_size"),
    (dict(scale_factor=0.3), ValueError, "1/scale_factor must be an integer"),
    (dict(use_thumbnail="yes"), TypeError, "use_thumbnail must be True or False"),
])
def test_tiling_config_refuses_nonsense(kw, err, fragment):
    with pytest.raises(err, match=fragment):
        internvit.TilingConfig(**kw)


def test_tile_tensor_refuses_tiles_that_cannot_be_allocated():
    with pytest.raises(ValueError, match="would allocate"):
        internvit.tile_tensor(torch.rand(3, 8, 8), (100, 100), 4096)


# ---- ShapeWorld ----------------------------------------------------------------------------------------

def test_shapeworld_refuses_a_sample_that_cannot_fit_in_memory():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"ShapeWorld.sample\(100,000,000\) of 32x32 images would allocate"):
        ShapeWorld().sample(10 ** 8)
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize("kw, err, fragment", [
    (dict(scale_jitter=-0.1), ValueError, "scale_jitter must be >= 0"),
    (dict(scale_jitter=1.0), ValueError, "scale_jitter must be < 1"),
    (dict(color_jitter=2.0), ValueError, "color_jitter must be <= 1"),
    (dict(noise=float("nan")), ValueError, "noise must be finite"),
    (dict(noise=-0.1), ValueError, "noise must be >= 0"),
    (dict(distractors=-1), ValueError, "distractors must be >= 0"),
    (dict(distractors=2.5), TypeError, "distractors must be an int"),
    (dict(rotation="yes"), TypeError, "rotation must be True or False"),
    (dict(image_size=10 ** 5), ValueError, "image side must be <= 2048"),
])
def test_shapeworld_options_are_checked(kw, err, fragment):
    with pytest.raises(err, match=fragment):
        ShapeWorld(**kw)


def test_valid_shapeworld_options_still_work():
    batch = ShapeWorld(nuisance="hard", scale_jitter=0.0, noise=0.0, distractors=0).sample(4, seed=1)
    assert batch.images.shape == (4, 3, 32, 32)


# ---- AnyRes ------------------------------------------------------------------------------------------------

def test_anyres_refuses_unordered_candidates_and_bad_sizes():
    with pytest.raises(TypeError, match="set's order changes"):
        anyres.select_best_resolution((500, 400), {(336, 672), (672, 336)})
    with pytest.raises(ValueError, match="tile_size must be >= 1"):
        anyres.anyres_num_tokens((500, 400), tile_size=0)
    with pytest.raises(ValueError, match="patch_size must be >= 1"):
        anyres.anyres_num_tokens((500, 400), patch_size=0)               # was a ZeroDivisionError
    with pytest.raises(TypeError, match="cap_upscaling must be True or False"):
        anyres.select_best_resolution((500, 400), cap_upscaling="no")
    with pytest.raises(ValueError, match="max_tiles must be >= 1"):
        anyres.grid_resolutions(336, 3, 3, max_tiles=0)
    with pytest.raises(ValueError, match="above 10,000"):
        anyres.grid_resolutions(336, 1000, 1000)
    with pytest.raises(ValueError, match="would allocate"):
        anyres.resize_and_pad(torch.rand(3, 4, 4), (10 ** 6, 10 ** 5))
    with pytest.raises(TypeError, match="floating point"):
        anyres.resize_and_pad(torch.zeros(3, 4, 4, dtype=torch.uint8), (8, 8))
    with pytest.raises(ValueError, match="feature_hw must be positive"):
        anyres.unpadded_shape((0, 4), (10, 10))


# ---- images ------------------------------------------------------------------------------------------------

def test_images_refuse_huge_sizes_and_unknown_modes():
    from vislab import images

    with pytest.raises(ValueError, match="would allocate"):
        images.resize_tensor(torch.rand(1, 3, 4, 4), 10 ** 6)
    with pytest.raises(ValueError, match="mode must be"):
        images.resize_tensor(torch.rand(1, 3, 4, 4), 8, mode="lanczos")
    with pytest.raises(ValueError, match="would allocate"):
        images.load_photo("china", size=(10 ** 5, 10 ** 5))
    assert images.resize_tensor(torch.rand(3, 4, 4), 8).shape == (3, 8, 8)
