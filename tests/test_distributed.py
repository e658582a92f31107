"""Tests of vislab.distributed: real worker processes (gloo on 127.0.0.1), checked against one process."""

import multiprocessing
import time

import pytest
import torch

from vislab import distributed as D

C, E = 6, 8          # pairs per rank, embedding width: small, so the tests spend their time starting ranks


def _no_ranks_left():
    return not [p for p in multiprocessing.active_children() if p.name.startswith("vislab-rank")]


@pytest.mark.parametrize("world_size", [2, 4])
def test_losses_and_every_ranks_gradients_equal_one_process(world_size):
    rows = D.launch(D.loss_report, world_size, C, E, seed=world_size, timeout=180)
    ref = D.reference_report(C * world_size, E, seed=world_size)
    tol = dict(rtol=1e-5, atol=1e-7)
    for method in D.METHODS:
        r = ref["clip" if method.startswith("clip") else "sigmoid"]
        for rank, row in enumerate(rows):
            got = row[method]
            sl = slice(rank * C, (rank + 1) * C)
            assert got["total_loss"] == pytest.approx(r["loss"], rel=1e-5), (method, rank)
            torch.testing.assert_close(got["grad_image"], r["grad_image"][sl], **tol, msg=f"{method} rank {rank} images")
            torch.testing.assert_close(got["grad_text"], r["grad_text"][sl], **tol, msg=f"{method} rank {rank} texts")
        if method == "clip_allgather":   # every rank computes the whole loss: its value and dL/dt
            for row in rows:
                assert row[method]["loss"] == pytest.approx(r["loss"], rel=1e-5)
                assert row[method]["grad_scale"] == pytest.approx(r["grad_scale"], rel=1e-4, abs=1e-7)
        else:                            # shares: they add up to the loss and to dL/dt, dL/db
            assert sum(row[method]["loss"] for row in rows) == pytest.approx(r["loss"], rel=1e-5)
            assert sum(row[method]["grad_scale"] for row in rows) == pytest.approx(r["grad_scale"], rel=1e-4, abs=1e-7)
            if method.startswith("sigmoid"):
                assert sum(row[method]["grad_bias"] for row in rows) == pytest.approx(r["grad_bias"], rel=1e-4,
                                                                                      abs=1e-7)
    # bytes, as counted: float32 chunks of C x E, W - 1 hops
    chunk, hops = C * E * 4, world_size - 1
    kinds = rows[0]
    assert kinds["clip_allgather"]["by_kind"]["features"] == (2 * hops * chunk, 2 * hops * chunk)
    assert "features_grad" not in kinds["clip_allgather"]["by_kind"]          # no gradient through the gather
    assert kinds["clip_allgather_local"]["by_kind"]["features"] == (2 * hops * chunk, 2 * hops * chunk)
    assert kinds["clip_allgather_local"]["by_kind"]["features_grad"] == (4 * hops * chunk, 4 * hops * chunk)
    assert kinds["sigmoid_ring"]["by_kind"]["ring"] == (hops * chunk, hops * chunk)
    assert kinds["sigmoid_ring"]["by_kind"]["ring_grad"] == (hops * chunk, hops * chunk)
    assert kinds["sigmoid_ring_recompute"]["by_kind"]["ring"] == (3 * hops * chunk, 3 * hops * chunk)
    assert kinds["sigmoid_ring_recompute"]["by_kind"]["ring_grad"] == (chunk, chunk)
    assert _no_ranks_left()


def test_uneven_split_is_a_clear_error():
    with pytest.raises(D.RankFailedError, match=r"different sizes \[4, 3\]"):
        D.launch(D.loss_report, 2, [4, 3], E, methods=("sigmoid_ring",), timeout=120)
    assert _no_ranks_left()
    with pytest.raises(ValueError, match="does not split evenly over 4 ranks"):
        D.split_batch(torch.zeros(10, 3), 4, 0)
    torch.testing.assert_close(D.split_batch(torch.arange(12.0), 4, 2), torch.tensor([6.0, 7.0, 8.0]))


def test_a_raising_rank_fails_the_call_fast_with_its_message():
    D.launch(D._sleep_on_rank, 2, 0, 0.0, timeout=120)        # warm the fork server (first start imports torch)
    tic = time.monotonic()
    with pytest.raises(D.RankFailedError, match="boom 42") as info:
        D.launch(D.demo_failure, 3, failing_rank=1, message="boom 42", timeout=120)
    assert info.value.rank == 1 and "RuntimeError" in info.value.message
    assert time.monotonic() - tic < 60             # not the timeout: the failure is reported at once
    assert _no_ranks_left()


def test_timeout_terminates_the_ranks():
    D.launch(D._sleep_on_rank, 2, 0, 0.0, timeout=120)        # warm the fork server
    tic = time.monotonic()
    with pytest.raises(D.LaunchTimeoutError, match=r"rank\(s\) \[(0, )?1\] of 2 did not finish within 10 s"):
        D.launch(D._sleep_on_rank, 2, 1, 600.0, timeout=10)
    assert time.monotonic() - tic < 40
    assert _no_ranks_left()


def test_launch_bad_arguments():
    def local(ctx):
        return ctx.rank

    with pytest.raises(ValueError, match="top level of a module"):
        D.launch(local, 2)
    with pytest.raises(ValueError, match="world_size"):
        D.launch(D.demo_failure, 0)
    with pytest.raises(ValueError, match="backend"):
        D.launch(D.demo_failure, 2, backend="mpi")
    with pytest.raises(TypeError):
        D.launch("not a function", 2)
    assert D.default_backend(2) in ("gloo", "nccl")


def test_counter_and_peak_memory_in_process():
    c = D.CommCounter()
    c.add("ring", 10, 12)
    c.add("ring", 1, 2)
    c.add("sizes", 8, 8)
    assert (c.sent, c.received, c.by_kind["ring"]) == (19, 22, (11, 14))
    c.reset()
    assert c.sent == c.received == 0 and c.by_kind == {}
    with D.PeakMemory() as mem:
        x = torch.ones(64 * 2**20 // 4)      # 64 MB
        del x
    if D.PeakMemory.available():
        assert mem.peak_bytes is not None and 40 * 2**20 < mem.peak_bytes < 200 * 2**20
    else:
        assert mem.peak_bytes is None


def test_process_memory_helpers():
    assert D.peak_rss_bytes() > 10 * 2**20
    D.launch(D._sleep_on_rank, 1, 0, 0.0, timeout=120)        # leaves the fork server running
    kids = D.child_rss_bytes()
    assert isinstance(kids, dict)
    if kids:
        assert all(isinstance(pid, int) and rss > 0 for pid, rss in kids.items())
        pss = D.child_rss_bytes("pss")
        assert set(pss) <= set(kids) and all(0 < pss[p] <= kids[p] * 1.05 for p in pss)
    with pytest.raises(ValueError, match="kind"):
        D.child_rss_bytes("vss")
    mine = D.pss_bytes()
    assert mine is None or mine > 10 * 2**20
