"""The equal-token controls of chapter 7 (vislab.recipes.detail.equal_token_views)."""

import pytest
import torch

from vislab.recipes import detail


@pytest.fixture(scope="module")
def canvases():
    return detail.make_canvases(3, (128, 96), seed=3, split="test")


@pytest.mark.parametrize("size", detail.CANVAS_SIZES)
@pytest.mark.parametrize("control", detail.CONTROLS)
def test_as_many_views_as_the_pipeline(size, control):
    img = detail.make_canvases(1, size, seed=1, split="test").images[0]
    for pipeline, max_num in (("internvl", 12), ("internvl_tiles", 12), ("internvl", 4), ("downscale", 12)):
        want = detail.views_for(img, pipeline, max_num=max_num).shape
        got = detail.equal_token_views(img, control, pipeline, max_num=max_num)
        assert got.shape == want and got.dtype == img.dtype
        assert got.min() >= 0 and got.max() <= 1


def test_jitter_views_are_shifted_downscales(canvases):
    img = canvases.images[0]
    down = detail.views_for(img, "downscale")[0]
    views = detail.equal_token_views(img, "jitter", generator=torch.Generator().manual_seed(0))
    assert views.shape == (13, 3, 32, 32)                                   # 4x3 tiles + thumbnail
    assert torch.equal(views[0], down)                                      # view 0: the thumbnail
    assert not all(torch.equal(v, down) for v in views[1:])                 # the others are jittered ...
    assert all((v - down).abs().mean() < 0.1 for v in views[1:])            # ... but close to it
    assert torch.equal(detail.equal_token_views(img, "jitter", jitter=0)[5], down)   # no jitter: copies
    again = detail.equal_token_views(img, "jitter", generator=torch.Generator().manual_seed(0))
    assert torch.equal(views, again)                                        # deterministic


def test_blur_keeps_the_layout_and_drops_the_detail(canvases):
    img = canvases.images[0]
    tiles = detail.views_for(img, "internvl")
    blurred = detail.equal_token_views(img, "blur")
    assert blurred.shape == tiles.shape

    def roughness(v):                                   # mean |difference| between neighbouring pixels
        return (v[..., 1:] - v[..., :-1]).abs().mean() + (v[..., 1:, :] - v[..., :-1, :]).abs().mean()

    assert roughness(blurred[:-1]) < 0.5 * roughness(tiles[:-1])           # tiles: the fine detail is gone
    # the same place in the canvas: each blurred tile is close to the real tile seen through a blur
    for k in range(tiles.shape[0] - 1):
        soft = torch.nn.functional.avg_pool2d(tiles[k:k + 1], 5, 1, 2, count_include_pad=False)
        assert (blurred[k] - soft[0]).abs().mean() < (blurred[k] - soft.flip(-1)[0]).abs().mean() + 0.05


def test_bad_arguments(canvases):
    img = canvases.images[0]
    with pytest.raises(ValueError, match="control"):
        detail.equal_token_views(img, "noise")
    with pytest.raises(ValueError, match="jitter"):
        detail.equal_token_views(img, "jitter", jitter=-1)
    with pytest.raises(ValueError, match="jitter"):
        detail.equal_token_views(img, "jitter", jitter=60)
    with pytest.raises(ValueError):
        detail.equal_token_views(img[None], "blur")                        # (1, 3, H, W): not one canvas


def test_evaluate_equal_tokens_counts_the_pipelines_views(canvases):
    torch.manual_seed(0)
    model = detail.build(detail.CONFIG)
    plain = detail.evaluate(model, canvases, "internvl")
    for control in detail.CONTROLS:
        r = detail.evaluate_equal_tokens(model, canvases, control)
        assert set(r) == set(plain) and r["views"] == plain["views"]
        assert all(0 <= r[k] <= 1 for k in ("glyph", "relation", "both"))
        assert r == detail.evaluate_equal_tokens(model, canvases, control)   # deterministic
    r4 = detail.evaluate_equal_tokens(model, canvases, "jitter", max_num=4)
    assert r4["views"] == detail.evaluate(model, canvases, "internvl", max_num=4)["views"]
