"""vislab.where: the quadrant task and the ways of running a ViT at a new resolution."""

import pytest
import torch

from vislab.vit import ViT, ViTConfig
from vislab.where import (QUADRANTS, InterpolatedRoPE, majority_share, positions_zeroed, probs, quadrant,
                          rope_interpolated, table_kept, tiled_probs, tiles_of, where_set)


def tiny(**over):
    torch.manual_seed(0)
    m = ViT(ViTConfig(image_size=32, patch_size=8, dim=32, depth=2, heads=4, num_classes=4, **over)).eval()
    torch.nn.init.normal_(m.head.weight)                     # the head starts at zero: give it a direction
    if m.pos_embed is not None:
        torch.nn.init.normal_(m.pos_embed)
    return m


def test_quadrant_labels():
    x = torch.tensor([0.1, 0.9, 0.1, 0.9, 0.5])
    y = torch.tensor([0.1, 0.1, 0.9, 0.9, 0.2])
    assert quadrant(x, y).tolist() == [0, 1, 2, 3, 1]
    assert len(QUADRANTS) == 4
    with pytest.raises(ValueError):
        quadrant(x, y[:2])


def test_where_set_is_balanced_and_the_same_scenes_at_64px():
    x, y = where_set(400)
    assert x.shape == (400, 3, 32, 32) and y.shape == (400,)
    assert set(y.tolist()) == {0, 1, 2, 3} and majority_share(y) < 0.35
    x2, y2 = where_set(400, image_size=64)
    assert x2.shape == (400, 3, 64, 64) and torch.equal(y, y2)
    # the 64 px scene, downscaled, is close to the 32 px one
    small = torch.nn.functional.avg_pool2d(x2, 2)
    assert (small - x).abs().mean() < 0.05
    assert torch.equal(where_set(400)[0], x)                                     # deterministic


def test_majority_share():
    assert majority_share(torch.tensor([0, 1, 1, 3])) == 0.5


def test_table_kept_keeps_the_trained_entries_top_left():
    m = tiny()
    big = table_kept(m, 64)
    assert big.config.grid == (8, 8)
    old, new = m.pos_embed[0, 1:].view(4, 4, -1), big.pos_embed[0, 1:].view(8, 8, -1)
    assert torch.equal(new[:4, :4], old) and not new[4:].any() and not new[:, 4:].any()
    assert torch.equal(big.pos_embed[0, 0], m.pos_embed[0, 0])
    assert big(torch.rand(2, 3, 64, 64)).shape == (2, 4)
    with pytest.raises(ValueError, match="smaller"):
        table_kept(m, 16)
    with pytest.raises(ValueError, match="learned"):
        table_kept(tiny(pos_embed="rope"), 64)


def test_interpolated_rope_scale_one_is_plain_rope_and_half_halves_the_angles():
    m = tiny(pos_embed="rope")
    same = InterpolatedRoPE(m.config.head_dim, m.config.rope_theta, 1.0)
    for a, b in zip(same((8, 8), 1), m.rope((8, 8), 1)):
        assert torch.allclose(a, b)
    half_cos, _ = InterpolatedRoPE(m.config.head_dim, m.config.rope_theta, 0.5)((8, 8), 1)   # (65, Dh)
    cos4, _ = m.rope((4, 4), 1)
    # row 2, col 2 of the 8x8 grid at scale 1/2 sits where row 1, col 1 of the 4x4 grid sits
    assert torch.allclose(half_cos[1 + 2 * 8 + 2], cos4[1 + 1 * 4 + 1], atol=1e-6)
    pi = rope_interpolated(m, 0.5)
    assert isinstance(pi.rope, InterpolatedRoPE) and not isinstance(m.rope, InterpolatedRoPE)
    assert pi(torch.rand(2, 3, 64, 64)).shape == (2, 4)
    with pytest.raises(ValueError, match="rope"):
        rope_interpolated(tiny(), 0.5)


def test_positions_zeroed_makes_the_model_blind_to_where():
    x = torch.zeros(1, 3, 32, 32)
    x[:, :, 2:8, 2:8] = 1.0                                   # a square top left
    moved = torch.roll(x, shifts=(16, 16), dims=(2, 3))        # the same square bottom right
    for model in (tiny(), tiny(pos_embed="rope")):
        blind = positions_zeroed(model)
        with torch.no_grad():
            assert torch.allclose(blind(x), blind(moved), atol=1e-5)
            assert not torch.allclose(model(x), model(moved), atol=1e-5)
        assert model.pos_embed is None or model.pos_embed.abs().sum() > 0      # the original is untouched


def test_tiles_and_tiled_probs():
    x = torch.arange(2 * 3 * 64 * 64, dtype=torch.float32).view(2, 3, 64, 64)
    t = tiles_of(x)
    assert len(t) == 4 and torch.equal(t[1], x[:, :, :32, 32:]) and torch.equal(t[2], x[:, :, 32:, :32])
    with pytest.raises(ValueError):
        tiles_of(torch.zeros(1, 3, 40, 64))
    m = tiny()
    p = tiled_probs(m, torch.rand(3, 3, 64, 64))
    assert p.shape == (3, 4) and torch.allclose(p.sum(-1), torch.full((3,), 4.0))
    assert torch.allclose(probs(m, torch.rand(5, 3, 32, 32), batch_size=2).sum(-1), torch.ones(5))


def test_resolution_strategies_are_the_chapters_seven_and_are_counted():
    from vislab.where import STRATEGIES, resolution_strategies, strategy_hits, thumbnail

    learned, rope = tiny(), tiny(pos_embed="rope")
    strategies = resolution_strategies(learned, rope, 64)
    assert tuple(strategies) == STRATEGIES
    x, y = where_set(6, image_size=64)
    for name, fn in strategies.items():
        p = fn(x)
        assert p.shape == (6, 4), name
    # the reference is the learned model on the downscaled image; bicubic is the model as is
    assert torch.allclose(strategies[STRATEGIES[0]](x), probs(learned, thumbnail(x)))
    assert torch.allclose(strategies[STRATEGIES[2]](x), probs(learned, x))
    hits = strategy_hits(strategies, x, y)
    assert set(hits) == set(STRATEGIES) and all(0 <= v <= 6 for v in hits.values())
    assert hits[STRATEGIES[2]] == int((probs(learned, x).argmax(-1) == y).sum())
    with pytest.raises(ValueError, match="learned position table"):
        resolution_strategies(rope, rope)
    with pytest.raises(ValueError, match="pos_embed='rope'"):
        resolution_strategies(learned, learned)
    with pytest.raises(ValueError, match="multiple"):
        resolution_strategies(learned, rope, 48)
    with pytest.raises(ValueError, match="one label per image"):
        strategy_hits(strategies, x, y[:3])
    with pytest.raises(ValueError, match="B, 3, H, W"):
        thumbnail(torch.zeros(3, 64, 64))


def test_where_seeds_benchmark_scores_every_row_of_the_chapter():
    """benchmarks/where_seeds.py (data/where_seeds.json): its scoring, on tiny untrained models."""
    import importlib.util

    from vislab.paths import repo_root
    from vislab.where import STRATEGIES

    spec = importlib.util.spec_from_file_location("where_seeds", repo_root() / "benchmarks" / "where_seeds.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    hits = bench.score(tiny(), tiny(pos_embed="rope"), n_test=8)
    assert set(STRATEGIES) <= set(hits) and len(hits) == len(STRATEGIES) + 5
    assert all(isinstance(v, int) and 0 <= v <= 8 for v in hits.values())


def test_shipped_where_seeds_json_has_the_shipped_seed_and_every_row():
    import json

    from vislab.paths import repo_root
    from vislab.where import STRATEGIES

    data = json.loads((repo_root() / "data" / "where_seeds.json").read_text())
    assert data["command"].startswith("python benchmarks/where_seeds.py")
    seeds = [r["seed"] for r in data["runs"]]
    assert 0 in seeds and len(set(seeds)) == len(seeds) >= 3
    for r in data["runs"]:
        assert set(STRATEGIES) <= set(r["hits"]) and all(0 <= v <= data["n_test"] for v in r["hits"].values())
