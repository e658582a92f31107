"""Tests for vislab.shapes (ShapeWorld): determinism, splits, labels, captions, holdout, options."""

import numpy as np
import pytest
import torch

from vislab.shapes import (COLORS, NUISANCE, POSITION_PHRASES, POSITIONS, RELATIONS, SHAPES, SIZES, ShapeBatch,
                           ShapeWorld)
from vislab.shapes import _RGB

N = 300


def batches_equal(a: ShapeBatch, b: ShapeBatch) -> bool:
    same = torch.equal(a.images, b.images) and a.captions == b.captions
    same &= all(torch.equal(a.labels[k], b.labels[k]) for k in a.labels)
    same &= all(torch.equal(a.objects[k].nan_to_num(-9), b.objects[k].nan_to_num(-9)) for k in a.objects)
    return same


def article(word):
    return "an" if word[0] in "aeiou" else "a"


# ---- constants --------------------------------------------------------------------------------

def test_vocabularies():
    assert len(SHAPES) >= 7 and len(set(SHAPES)) == len(SHAPES)
    assert len(COLORS) >= 8 and len(set(COLORS)) == len(COLORS)
    assert 2 <= len(SIZES) <= 3
    assert len(POSITIONS) == 9 and len(POSITION_PHRASES) == 9
    assert POSITIONS[0] == "top left" and POSITIONS[4] == "center" and POSITIONS[8] == "bottom right"
    assert RELATIONS == ("left of", "right of", "above", "below")
    assert set(NUISANCE) == {"none", "medium", "hard"}


# ---- determinism and splits -------------------------------------------------------------------

@pytest.mark.parametrize("nuisance", ["none", "hard"])
def test_same_seed_same_batch(nuisance):
    sw = ShapeWorld(max_shapes=3, nuisance=nuisance)
    assert batches_equal(sw.sample(64, "train", seed=5), sw.sample(64, "train", seed=5))
    # a fresh generator object with the same options is the same world
    assert batches_equal(sw.sample(64, "train", seed=5), ShapeWorld(max_shapes=3, nuisance=nuisance).sample(64, "train", seed=5))


def test_sampling_does_not_use_global_rng():
    sw = ShapeWorld(nuisance="medium")
    torch.manual_seed(0)
    np.random.seed(0)
    a = sw.sample(16, seed=1)
    torch.manual_seed(1)
    np.random.seed(1)
    b = sw.sample(16, seed=1)
    assert batches_equal(a, b)


def test_seeds_and_splits_are_independent():
    sw = ShapeWorld(max_shapes=2, nuisance="medium")
    train0, train1 = sw.sample(64, "train", seed=0), sw.sample(64, "train", seed=1)
    test0 = sw.sample(64, "test", seed=0)
    for a, b in [(train0, train1), (train0, test0), (train1, test0)]:
        assert not torch.equal(a.images, b.images)
        assert a.captions != b.captions
    # no image of the test split is an image of the train split
    flat_train = train0.images.flatten(1)
    flat_test = test0.images.flatten(1)
    assert not any(torch.equal(t, r) for t in flat_test for r in flat_train)


def test_negative_and_numpy_seeds():
    sw = ShapeWorld()
    assert batches_equal(sw.sample(4, seed=np.int64(3)), sw.sample(4, seed=3))
    assert len(sw.sample(4, seed=-1)) == 4


# ---- shapes, dtypes, ranges -----------------------------------------------------------------------

@pytest.mark.parametrize("size,hw", [(32, (32, 32)), (64, (64, 64)), ((24, 40), (24, 40)), (17, (17, 17))])
@pytest.mark.parametrize("max_shapes", [1, 3])
def test_shapes_dtypes_and_ranges(size, hw, max_shapes):
    sw = ShapeWorld(image_size=size, max_shapes=max_shapes, nuisance="hard")
    b = sw.sample(40, seed=0)
    assert len(b) == 40
    assert b.images.shape == (40, 3, *hw) and b.images.dtype == torch.float32
    assert b.images.min() >= 0 and b.images.max() <= 1
    assert isinstance(b.captions, list) and len(b.captions) == 40 and all(isinstance(c, str) for c in b.captions)
    for k in ("shape", "color", "size", "position", "count", "relation"):
        assert b.labels[k].shape == (40,) and b.labels[k].dtype == torch.long, k
    for k in ("x", "y"):
        assert b.labels[k].shape == (40,) and b.labels[k].dtype == torch.float32
        assert b.labels[k].min() >= 0 and b.labels[k].max() <= 1
    assert b.labels["shape"].min() >= 0 and b.labels["shape"].max() < len(SHAPES)
    assert b.labels["color"].min() >= 0 and b.labels["color"].max() < len(COLORS)
    assert b.labels["size"].min() >= 0 and b.labels["size"].max() < len(SIZES)
    assert b.labels["position"].min() >= 0 and b.labels["position"].max() <= 8
    for k in ("shape", "color", "size", "x", "y"):
        assert b.objects[k].shape == (40, max_shapes)
    # the labels are those of object 0
    for k in ("shape", "color", "size", "x", "y"):
        assert torch.equal(b.labels[k], b.objects[k][:, 0])


def test_every_value_occurs():
    b = ShapeWorld(nuisance="medium").sample(600, seed=0)
    assert set(b.labels["shape"].tolist()) == set(range(len(SHAPES)))
    assert set(b.labels["color"].tolist()) == set(range(len(COLORS)))
    assert set(b.labels["size"].tolist()) == set(range(len(SIZES)))
    assert set(b.labels["position"].tolist()) == set(range(9))


@pytest.mark.parametrize("lo,hi", [(1, 1), (1, 3), (2, 3), (3, 3), (2, 2)])
def test_counts_within_bounds_and_matching_objects(lo, hi):
    b = ShapeWorld(min_shapes=lo, max_shapes=hi, nuisance="hard").sample(N, seed=2)
    count = b.labels["count"]
    assert count.min() >= lo and count.max() <= hi
    if hi > lo:
        assert set(count.tolist()) == set(range(lo, hi + 1))
    present = b.objects["shape"] >= 0
    assert torch.equal(present.sum(1), count)
    # the present objects fill the first slots; empty slots are -1 / nan everywhere
    assert torch.equal(present, torch.arange(hi)[None, :] < count[:, None])
    for k in ("color", "size"):
        assert torch.equal(b.objects[k] >= 0, present)
    for k in ("x", "y"):
        assert torch.equal(~torch.isnan(b.objects[k]), present)


# ---- labels agree with each other, with the captions and with the pixels ---------------------------

def expected_position(x, y):
    return min(int(y * 3), 2) * 3 + min(int(x * 3), 2)


@pytest.mark.parametrize("nuisance", ["none", "medium", "hard"])
def test_position_label_matches_x_y(nuisance):
    b = ShapeWorld(nuisance=nuisance, max_shapes=2).sample(N, seed=1)
    for x, y, pos in zip(b.labels["x"].tolist(), b.labels["y"].tolist(), b.labels["position"].tolist()):
        assert pos == expected_position(x, y)


@pytest.mark.parametrize("nuisance", ["none", "hard"])
def test_relation_matches_x_y(nuisance):
    b = ShapeWorld(nuisance=nuisance, min_shapes=1, max_shapes=3).sample(N, seed=3)
    ox, oy = b.objects["x"], b.objects["y"]
    seen = set()
    for i in range(len(b)):
        rel = int(b.labels["relation"][i])
        if int(b.labels["count"][i]) == 1:
            assert rel == -1
            continue
        dx, dy = float(ox[i, 0] - ox[i, 1]), float(oy[i, 0] - oy[i, 1])
        if abs(dx) >= abs(dy):
            assert RELATIONS[rel] == ("left of" if dx < 0 else "right of")
        else:                                           # y grows downwards
            assert RELATIONS[rel] == ("above" if dy < 0 else "below")
        seen.add(rel)
    assert seen == {0, 1, 2, 3}


def test_single_shape_relation_is_minus_one():
    b = ShapeWorld().sample(20)
    assert torch.all(b.labels["relation"] == -1)
    assert torch.all(b.labels["count"] == 1)


def test_grid_positions_are_cell_centres_and_distinct():
    b = ShapeWorld(nuisance="none", min_shapes=3, max_shapes=3).sample(100, seed=0)
    for k in ("x", "y"):
        cell = torch.floor(b.objects[k] * 3)
        centre = (cell + 0.5) / 3
        assert torch.all((b.objects[k] - centre).abs() <= 0.031)
    cells = (torch.floor(b.objects["y"] * 3) * 3 + torch.floor(b.objects["x"] * 3)).long()   # (n, 3)
    assert all(len(set(row.tolist())) == 3 for row in cells)


@pytest.mark.parametrize("nuisance", ["none", "medium", "hard"])
def test_captions_match_labels(nuisance):
    b = ShapeWorld(nuisance=nuisance, min_shapes=1, max_shapes=3).sample(N, seed=4)
    lab, obj = b.labels, b.objects
    for i, cap in enumerate(b.captions):
        count = int(lab["count"][i])
        shape, color = SHAPES[lab["shape"][i]], COLORS[lab["color"][i]]
        if count == 1:
            size = SIZES[lab["size"][i]]
            expected = f"{article(size)} {size} {color} {shape} {POSITION_PHRASES[lab['position'][i]]}"
        else:
            c1, s1 = COLORS[obj["color"][i, 1]], SHAPES[obj["shape"][i, 1]]
            expected = (f"{article(color)} {color} {shape} {RELATIONS[lab['relation'][i]]} "
                        f"{article(c1)} {c1} {s1}")
            if count == 3:
                c2, s2 = COLORS[obj["color"][i, 2]], SHAPES[obj["shape"][i, 2]]
                expected += f" and {article(c2)} {c2} {s2}"
        assert cap == expected


def test_caption_examples_read_well():
    b = ShapeWorld(max_shapes=2, min_shapes=1).sample(200, seed=0)
    assert any(c.startswith("a small ") for c in b.captions)
    assert any(" an orange " in f" {c} " for c in b.captions)
    assert not any(" a orange" in c or " a orange" in f" {c}" for c in b.captions)


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "ring"])
def test_pixels_show_the_labelled_colour_at_the_labelled_place(shape):
    """Without nuisance, the pixel at the centre of a filled shape has the shape's colour."""
    sw = ShapeWorld(image_size=64, nuisance="none")
    b = sw.sample(200, seed=7)
    sel = (b.labels["shape"] == SHAPES.index(shape)).nonzero().flatten()
    assert len(sel) > 5
    for i in sel.tolist():
        x = min(int(float(b.labels["x"][i]) * 64), 63)
        y = min(int(float(b.labels["y"][i]) * 64), 63)
        pixel = b.images[i, :, y, x]
        target = torch.from_numpy(_RGB[int(b.labels["color"][i])])
        assert torch.allclose(pixel, target, atol=0.02), (shape, i, pixel, target)


def test_ring_has_a_hole():
    b = ShapeWorld(image_size=64, nuisance="none", sizes=(2,)).sample(100, seed=0)
    sel = (b.labels["shape"] == SHAPES.index("ring")).nonzero().flatten().tolist()
    assert sel
    for i in sel:
        x, y = int(float(b.labels["x"][i]) * 64), int(float(b.labels["y"][i]) * 64)
        assert b.images[i, :, y, x].max() < 0.05              # black background shows through


def test_size_classes_grow():
    b = ShapeWorld(image_size=32, nuisance="none").sample(N, seed=0)
    area = (b.images.amax(1) > 0.05).float().sum((1, 2))    # painted pixels on a black background
    means = [area[b.labels["size"] == s].mean().item() for s in range(len(SIZES))]
    assert means[0] < means[1] < means[2]


def test_black_background_without_nuisance_and_texture_with():
    plain = ShapeWorld(nuisance="none").sample(50, seed=0).images
    textured = ShapeWorld(nuisance="hard", noise=0.0).sample(50, seed=0).images
    assert (plain == 0).float().mean() > 0.5
    assert (textured == 0).float().mean() < 0.01          # (pixel noise alone clips some pixels to 0)


# ---- holdout -------------------------------------------------------------------------------------

HOLD = (("green", "triangle"), ("red", "circle"))


def held_mask(shape, color, pairs=HOLD):
    bad = torch.zeros_like(shape, dtype=torch.bool)
    for c, s in pairs:
        bad |= (color == COLORS.index(c)) & (shape == SHAPES.index(s))
    return bad


@pytest.mark.parametrize("split", ["train", "test"])
def test_holdout_combinations_never_appear_in_train_or_test(split):
    sw = ShapeWorld(max_shapes=3, min_shapes=1, nuisance="medium", holdout=HOLD)
    b = sw.sample(500, split, seed=0)
    assert not held_mask(b.objects["shape"], b.objects["color"]).any()
    # the colours and shapes themselves still occur, only the pairs are removed
    assert (b.labels["color"] == COLORS.index("green")).any()
    assert (b.labels["shape"] == SHAPES.index("triangle")).any()


def test_holdout_split_has_only_held_out_primary_objects():
    sw = ShapeWorld(max_shapes=3, min_shapes=1, holdout=HOLD)
    b = sw.sample(400, "holdout", seed=0)
    primary = held_mask(b.labels["shape"], b.labels["color"])
    assert primary.all()
    both = {(COLORS[c], SHAPES[s]) for c, s in zip(b.labels["color"].tolist(), b.labels["shape"].tolist())}
    assert both == set(HOLD)
    # the other objects in a holdout scene avoid the held-out pairs
    others = held_mask(b.objects["shape"][:, 1:], b.objects["color"][:, 1:])
    assert not others.any()
    # captions name the held-out pair
    for cap, c, s in zip(b.captions, b.labels["color"].tolist(), b.labels["shape"].tolist()):
        assert f"{COLORS[c]} {SHAPES[s]}" in cap


def test_holdout_of_every_colour_of_one_shape():
    """Removing every colour of a shape cannot be satisfied by recolouring alone."""
    pairs = tuple((c, "star") for c in COLORS)
    sw = ShapeWorld(max_shapes=2, min_shapes=2, holdout=pairs)
    b = sw.sample(300, "train", seed=0)
    assert not (b.objects["shape"] == SHAPES.index("star")).any()
    h = sw.sample(50, "holdout", seed=0)
    assert torch.all(h.labels["shape"] == SHAPES.index("star"))
    assert not (h.objects["shape"][:, 1] == SHAPES.index("star")).any()


def test_holdout_world_differs_from_plain_world_only_where_needed():
    b = ShapeWorld(holdout=(("green", "triangle"),)).sample(200, seed=0)
    assert len(b) == 200


# ---- nuisance presets and options ------------------------------------------------------------------

@pytest.mark.parametrize("nuisance", list(NUISANCE))
def test_every_preset_samples(nuisance):
    sw = ShapeWorld(nuisance=nuisance, max_shapes=2)
    for k, v in NUISANCE[nuisance].items():
        assert sw.opts[k] == v
    b = sw.sample(20, seed=0)
    assert b.images.shape == (20, 3, 32, 32)
    assert torch.isfinite(b.images).all()


def test_explicit_option_overrides_preset():
    sw = ShapeWorld(nuisance="hard", background="black", noise=0.0, distractors=0, rotation=False)
    assert sw.opts["background"] == "black" and sw.opts["noise"] == 0.0 and sw.opts["distractors"] == 0
    assert sw.opts["position"] == "continuous"                     # from the preset
    assert (sw.sample(20).images == 0).float().mean() > 0.5


@pytest.mark.parametrize("option", [dict(background="noise"), dict(background="texture"), dict(position="grid"),
                                    dict(position="continuous"), dict(distractors=5), dict(noise=0.2),
                                    dict(color_jitter=0.3), dict(scale_jitter=0.3), dict(rotation=True),
                                    dict(sizes=(0,)), dict(sizes=(1, 2))])
def test_single_options(option):
    b = ShapeWorld(**option).sample(16, seed=0)
    assert b.images.shape == (16, 3, 32, 32)
    assert b.images.min() >= 0 and b.images.max() <= 1
    if "sizes" in option:
        assert set(b.labels["size"].tolist()) <= set(option["sizes"])


def test_options_change_the_images():
    base = ShapeWorld(nuisance="none").sample(16, seed=0).images
    for option in [dict(noise=0.1), dict(background="noise"), dict(distractors=2)]:
        assert not torch.equal(ShapeWorld(nuisance="none", **option).sample(16, seed=0).images, base)


def test_distractors_are_not_counted():
    b = ShapeWorld(distractors=3).sample(50, seed=0)
    assert torch.all(b.labels["count"] == 1)


def test_with_options():
    sw = ShapeWorld(nuisance="none")
    hard = sw.with_options(nuisance="hard", image_size=64)
    assert hard.nuisance == "hard" and hard.size_hw == (64, 64) and hard.opts["distractors"] == 3
    assert sw.nuisance == "none"                                   # the original is unchanged (frozen)
    with pytest.raises(TypeError, match="unknown ShapeWorld option"):
        sw.with_options(colour="red")
    with pytest.raises(ValueError):
        sw.with_options(nuisance="extreme")


def test_frozen():
    sw = ShapeWorld()
    with pytest.raises(Exception):
        sw.nuisance = "hard"


@pytest.mark.parametrize("kwargs", [dict(nuisance="extreme"), dict(min_shapes=0), dict(max_shapes=4),
                                    dict(min_shapes=3, max_shapes=2), dict(min_shapes=1.0),
                                    dict(position="random"), dict(background="white"), dict(sizes=()),
                                    dict(sizes=(3,)), dict(holdout=(("green",),)), dict(holdout=("green",)),
                                    dict(holdout=(("purple", "circle"),)), dict(holdout=(("green", "hexagon"),)),
                                    dict(holdout=tuple((c, s) for c in COLORS for s in SHAPES)),
                                    dict(image_size=0), dict(image_size=(32, -1))])
def test_bad_options_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        ShapeWorld(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(image_size="32"), dict(image_size=(32, 32, 3))])
def test_bad_image_size_type(kwargs):
    with pytest.raises(TypeError):
        ShapeWorld(**kwargs)


def test_bad_sample_arguments():
    sw = ShapeWorld()
    for n in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="n must be a positive int"):
            sw.sample(n)
    with pytest.raises(ValueError, match="split must be one of"):
        sw.sample(4, split="val")
    with pytest.raises(ValueError, match="holdout"):
        sw.sample(4, split="holdout")
    with pytest.raises(TypeError, match="seed"):
        sw.sample(4, seed="0")
    with pytest.raises(TypeError, match="seed"):
        sw.sample(4, seed=1.0)


# ---- ShapeBatch --------------------------------------------------------------------------------------

def test_batch_slicing_and_indexing():
    b = ShapeWorld(max_shapes=2).sample(10, seed=0)
    s = b[2:5]
    assert isinstance(s, ShapeBatch) and len(s) == 3
    assert torch.equal(s.images, b.images[2:5]) and s.captions == b.captions[2:5]
    assert torch.equal(s.labels["shape"], b.labels["shape"][2:5])
    assert s.objects["x"].shape == (3, 2)
    one = b[3]
    assert len(one) == 1 and one.captions == [b.captions[3]]
    assert torch.equal(one.images[0], b.images[3])
    last = b[-1]
    assert len(last) == 1 and last.captions == [b.captions[-1]]
    assert b[-2].captions == [b.captions[-2]]
    picked = b[[0, 7, 7]]
    assert picked.captions == [b.captions[0], b.captions[7], b.captions[7]]
    assert torch.equal(picked.images[1], b.images[7])
    mask = b.labels["shape"] == b.labels["shape"][0]
    masked = b[mask]
    assert len(masked) == int(mask.sum())
    assert all(c == b.captions[i] for c, i in zip(masked.captions, mask.nonzero().flatten().tolist()))
    moved = b.to("cpu")
    assert torch.equal(moved.images, b.images) and moved.captions == b.captions

