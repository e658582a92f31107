"""Property-based tests (hypothesis) of the course's invariants on random sizes (issue 21).

Bounded: few examples, small tensors, no deadline surprises on a busy 2-core machine.
"""

import math

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vislab import anyres, internvit, probes  # noqa: E402
from vislab.mae import random_masking  # noqa: E402
from vislab.patching import PatchEmbed, patchify, unpatchify  # noqa: E402

FEW = settings(max_examples=25, deadline=None, derandomize=True)


@FEW
@given(B=st.integers(1, 3), C=st.integers(1, 4), P=st.integers(1, 6), gh=st.integers(1, 5), gw=st.integers(1, 5))
def test_unpatchify_inverts_patchify(B, C, P, gh, gw):
    x = torch.randn(B, C, gh * P, gw * P)
    patches = patchify(x, P)
    assert patches.shape == (B, gh * gw, P * P * C)
    assert torch.equal(unpatchify(patches, P, (gh * P, gw * P)), x)


@FEW
@given(C=st.integers(1, 3), P=st.integers(1, 5), gh=st.integers(1, 4), gw=st.integers(1, 4), D=st.integers(1, 8))
def test_patch_embed_is_patchify_then_linear(C, P, gh, gw, D):
    torch.manual_seed(0)
    embed = PatchEmbed((gh * P, gw * P), P, C, D)
    x = torch.randn(2, C, gh * P, gw * P)
    torch.testing.assert_close(embed(x), embed.as_linear()(patchify(x, P)), atol=1e-5, rtol=1e-5)


@FEW
@given(B=st.integers(1, 2), r=st.integers(1, 3), u=st.integers(1, 4), v=st.integers(1, 4), C=st.integers(1, 4),
       version=st.sampled_from(["v1", "v2"]))
def test_inverse_pixel_shuffle_inverts_pixel_shuffle(B, r, u, v, C, version):
    x = torch.randn(B, u * r, v * r, C)
    y = internvit.pixel_shuffle(x, 1 / r, version)
    assert y.shape == ((B, u, v, r * r * C) if version == "v2" else (B, v, u, r * r * C))
    assert torch.equal(internvit.inverse_pixel_shuffle(y, 1 / r, version), x)
    # the documented layout: out[n, a, b, (i*r + j)*C + c] = x[n, r*a + i, r*b + j, c]
    if version == "v2":
        n, a, b, i, j, c = B - 1, u - 1, v - 1, r - 1, 0, C - 1
        assert y[n, a, b, (i * r + j) * C + c] == x[n, r * a + i, r * b + j, c]


@FEW
@given(B=st.integers(1, 3), N=st.integers(1, 40), D=st.integers(1, 4), ratio=st.floats(0.0, 0.95), seed=st.integers(0, 99))
def test_mae_masking_keeps_the_right_count_and_restores_the_order(B, N, D, ratio, seed):
    keep = int(N * (1 - ratio))
    if keep < 1:
        with pytest.raises(ValueError, match="keeps"):
            random_masking(torch.randn(B, N, D), ratio)
        return
    tokens = torch.randn(B, N, D)
    kept, mask, ids_restore = random_masking(tokens, ratio, generator=torch.Generator().manual_seed(seed))
    assert kept.shape == (B, keep, D)
    assert torch.equal(mask.sum(1), torch.full((B,), float(N - keep)))        # exactly N - K removed
    assert torch.equal(ids_restore.sort(1).values, torch.arange(N).expand(B, N))   # a permutation
    # the kept tokens are the unmasked ones, and restoring puts every token back in place
    removed = torch.zeros(B, N - keep, D)
    full = torch.gather(torch.cat([kept, removed], 1), 1, ids_restore[..., None].expand(-1, -1, D))
    visible = mask == 0
    assert torch.equal(full[visible], tokens[visible])


# ---- grid choices against the references ---------------------------------------------------------------

def _internvl_candidates(min_num, max_num):
    """InternVL's code (``dynamic_preprocess``), verbatim."""
    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1) if
        i * j <= max_num and i * j >= min_num)
    return sorted(target_ratios, key=lambda x: x[0] * x[1])


def _internvl_find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    """InternVL's ``find_closest_aspect_ratio``, verbatim."""
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


@FEW
@given(lo=st.integers(1, 6), span=st.integers(0, 14))
def test_candidate_grids_are_internvls_list_in_its_order(lo, span):
    assert internvit.candidate_grids(lo, lo + span) == _internvl_candidates(lo, lo + span)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(w=st.integers(1, 5000), h=st.integers(1, 5000), lo=st.integers(1, 3), span=st.integers(0, 12),
       size=st.sampled_from([32, 224, 448]))
def test_tile_grid_is_internvls_choice(w, h, lo, span, size):
    ours = internvit.tile_grid(w, h, lo, lo + span, size)
    ref = _internvl_find_closest_aspect_ratio(w / h, _internvl_candidates(lo, lo + span), w, h, size)
    assert ours == ref


@settings(max_examples=60, deadline=None, derandomize=True)
@given(w=st.integers(1, 4000), h=st.integers(1, 4000),
       cands=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=6),
       tile=st.sampled_from([14, 336]))
def test_select_best_resolution_matches_transformers(w, h, cands, tile):
    ipu = pytest.importorskip("transformers.image_processing_utils")
    res = [(c * tile, r * tile) for c, r in cands]                    # (width, height)
    ref = ipu.select_best_resolution((h, w), [(rh, rw) for rw, rh in res])   # transformers: (height, width)
    assert anyres.select_best_resolution((w, h), res) == (ref[1], ref[0])


# ---- metrics ---------------------------------------------------------------------------------------------------

@FEW
@given(n=st.integers(1, 12), levels=st.integers(1, 4), seed=st.integers(0, 999), k=st.integers(1, 12))
def test_retrieval_recall_is_the_mean_over_random_tie_breaks(n, levels, seed, k):
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, levels, (n, n), generator=g).float()        # few levels: many ties
    r = probes.retrieval_recall(s, ks=(k,))[f"R@{k}"]
    assert 0.0 <= r <= 1.0
    # brute force over random tie orders: rank the true item among its ties uniformly at random
    exact = 0.0
    for i in range(n):
        above = int((s[i] > s[i, i]).sum())
        tied = int((s[i] == s[i, i]).sum())                         # the true one included
        exact += sum(1 for pos in range(tied) if above + pos < k) / tied
    assert r == pytest.approx(exact / n)
    if levels == 1:
        assert r == pytest.approx(min(k, n) / n)                    # collapsed: chance
    assert math.isfinite(r)
