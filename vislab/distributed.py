"""Contrastive losses across real processes: CLIP's all-gather and SigLIP's ring, with torch.distributed.

Data-parallel training puts a chunk of c = B/W pairs on each of W ranks. The two losses need
different amounts of the other ranks' embeddings:

- **CLIP** (softmax over a row of B captions) needs every caption of the batch on every rank:
  :func:`clip_loss_allgather` all-gathers image and text features, as open_clip does by
  default (``gather_with_grad=False``, ``local_loss=False``): the gathered copies carry no
  gradient except the rank's own slot, which is put back as the live tensor, so that
  ``backward`` reaches this rank's encoders. Every rank computes the whole ``(B, B)`` loss.
  With ``local_loss=True`` (open_clip's ``--local-loss --gather-with-grad``) a rank computes
  only its c rows and c columns, ``(c, B)`` each, and the gather passes gradients back.
- **SigLIP** (sigmoid per pair) needs only one chunk of captions at a time:
  :func:`sigmoid_loss_ring` computes the ``(c, c)`` block of its images against the captions
  it holds, sends those captions to rank r + 1 and receives rank r - 1's, W - 1 times, with
  point-to-point ``isend``/``irecv`` (paper sec. 3.3). The exchange is differentiable: in the
  backward pass each received chunk's gradient goes back the way it came.
  ``recompute=True`` keeps no block for the backward pass: it recomputes each block and lets
  the text gradient travel around the ring with its chunk (one more hop brings it home).

What each rank gets back (checked against one process in ``tests/test_distributed.py``):

==========================  =========================  ======================================
loss                        value returned on rank r   gradients after ``backward`` on rank r
==========================  =========================  ======================================
``clip_loss_allgather``     the full loss L            own features: exactly dL/d(own slice);
                                                       ``logit_scale``: the full dL/dt
``clip_loss_allgather``     rank r's share L_r,        own features: exactly dL/d(own slice);
(``local_loss=True``)       with sum_r L_r = L         ``logit_scale``: rank r's share
``sigmoid_loss_ring``       rank r's share L_r,        own features: exactly dL/d(own slice);
                            with sum_r L_r = L         ``logit_scale``, ``logit_bias``: rank r's
                                                       share (their sum over ranks is dL/dt)
==========================  =========================  ======================================

(DDP then *averages* parameter gradients over ranks. For the ring the sum of shares is the
gradient, so a trainer multiplies the loss by W or all-reduces with SUM; for open_clip's
all-gather the average of per-rank tower gradients is 1/W of the single-process gradient, a
rescaling Adam does not notice.)

:func:`launch` runs a function on 2-4 worker processes on 127.0.0.1 (``gloo`` on CPU,
``nccl`` when every rank has its own GPU), started with ``torch.multiprocessing``'s
``forkserver`` (``spawn`` where there is none), always torn down, with a timeout, and raising
:class:`RankFailedError` with the failing rank's traceback as soon as one rank fails.
:class:`CommCounter` counts the bytes each rank sends and receives; :class:`PeakMemory`
measures a rank's peak resident memory.

Shape legend: B global batch, W ranks (world size), c = B/W pairs per rank, E embedding width.
"""

from __future__ import annotations

import ctypes
import datetime
import gc
import io
import os
import pickle
import queue as queue_module
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vislab.clip import clip_loss
from vislab.memwatch import pss_bytes
from vislab.siglip import sigmoid_loss
from vislab.validate import check_scale

__all__ = ["RankContext", "RankFailedError", "LaunchTimeoutError", "CommCounter", "PeakMemory", "launch",
           "default_backend", "split_batch", "check_even_split", "all_gather_features", "clip_loss_allgather",
           "neighbour_exchange", "sigmoid_loss_ring", "make_global_batch", "loss_report", "reference_report",
           "demo_failure", "peak_rss_bytes", "child_rss_bytes", "pss_bytes", "METHODS"]

METHODS = ("clip_allgather", "clip_allgather_local", "sigmoid_ring", "sigmoid_ring_recompute")


# ----------------------------------------------------------------------------- bookkeeping
@dataclass(frozen=True)
class RankContext:
    """What a launched function learns about its place: ``rank``, ``world_size``, the ``device``
    its tensors belong on and the ``backend`` ("gloo" or "nccl")."""

    rank: int
    world_size: int
    device: torch.device
    backend: str


@dataclass
class CommCounter:
    """Bytes one rank sends and receives, counted at every call that moves tensors.

    ``by_kind`` splits the totals by purpose ("features", "ring", "ring_grad", "sizes").
    For an all-gather the counted payload is what must arrive at this rank ((W - 1) chunks);
    a ring all-gather also sends that much, which is what is counted as sent.
    """

    sent: int = 0
    received: int = 0
    by_kind: dict = field(default_factory=dict)

    def add(self, kind: str, sent: int, received: int) -> None:
        self.sent += int(sent)
        self.received += int(received)
        s, r = self.by_kind.get(kind, (0, 0))
        self.by_kind[kind] = (s + int(sent), r + int(received))

    def reset(self) -> None:
        self.sent = self.received = 0
        self.by_kind = {}


class PeakMemory:
    """Peak resident memory of this process above its level at entry (Linux), as a context manager.

    On entry: collect garbage, hand freed heap memory back to the system (``malloc_trim``) and
    reset the kernel's high-water mark (``/proc/self/clear_refs``); on exit read the new mark
    (``VmHWM``). ``peak_bytes`` is the difference, ``None`` where the kernel offers no such
    counters (macOS, Windows). Tensors above 64 KB are then mapped and unmapped one by one
    (:meth:`tame_malloc`), so the mark follows what the tensors need, not what the allocator cached.
    """

    _libc = None

    def __init__(self):
        self.peak_bytes = None
        self.base_bytes = None

    @staticmethod
    def _status(key: str):
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    @classmethod
    def _libc_handle(cls):
        if cls._libc is None:
            try:
                cls._libc = ctypes.CDLL("libc.so.6")
            except OSError:
                cls._libc = False
        return cls._libc

    @classmethod
    def tame_malloc(cls, threshold: int = 64 * 1024) -> bool:
        """glibc: allocate blocks of ``threshold`` bytes and more with mmap, and return them at free.
        Returns False where glibc is not the allocator (nothing is changed then)."""
        libc = cls._libc_handle()
        if not libc:
            return False
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, threshold))

    @staticmethod
    def available() -> bool:
        return os.path.exists("/proc/self/clear_refs") and PeakMemory._status("VmHWM") is not None

    def __enter__(self):
        gc.collect()
        libc = self._libc_handle()
        if libc:
            libc.malloc_trim(0)
        if self.available():
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")                      # 5: reset the peak RSS to the current RSS
                self.base_bytes = self._status("VmRSS")
            except OSError:
                self.base_bytes = None
        return self

    def __exit__(self, *exc):
        if self.base_bytes is not None:
            peak = self._status("VmHWM")
            self.peak_bytes = None if peak is None else max(0, peak - self.base_bytes)
        return False


class RankFailedError(RuntimeError):
    """A launched rank raised (or died); ``rank`` and ``message`` (its traceback) say which and why."""

    def __init__(self, rank: int, message: str):
        self.rank, self.message = rank, message
        super().__init__(f"rank {rank} failed:\n{message}")


class LaunchTimeoutError(TimeoutError):
    """Some ranks did not finish within the launcher's timeout (they were terminated)."""


# ----------------------------------------------------------------------------- launcher
def default_backend(world_size: int) -> str:
    """"nccl" when every rank can have its own CUDA device, else "gloo" (CPU)."""
    if torch.cuda.is_available() and dist.is_nccl_available() and torch.cuda.device_count() >= world_size:
        return "nccl"
    return "gloo"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, backend, fn, args, kwargs, results, threads, timeout):
    try:
        torch.set_num_threads(threads)
        PeakMemory.tame_malloc()
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout))
        device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
        if backend == "nccl":
            torch.cuda.set_device(device)
        out = fn(RankContext(rank, world_size, device, backend), *args, **kwargs)
        buf = io.BytesIO()
        pickle.dump(out, buf)          # plain pickle: tensors are copied, not shared with a dying process
        results.put(("ok", rank, buf.getvalue()))
    except BaseException as err:  # report every failure, including KeyboardInterrupt and SystemExit
        results.put(("error", rank, f"{type(err).__name__}: {err}\n\n{traceback.format_exc()}"))
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def launch(fn, world_size: int, *args, backend: str | None = None, timeout: float = 120.0, threads: int = 1,
           start_method: str | None = None, **kwargs) -> list:
    """Run ``fn(ctx, *args, **kwargs)`` on ``world_size`` processes and return their results, by rank.

    Each process joins a process group on 127.0.0.1 (a free port), with ``backend`` ("gloo";
    "nccl" when every rank has a GPU; default :func:`default_backend`), and gets a
    :class:`RankContext`. The call returns when every rank has returned, and never leaves a
    process behind:

    - a rank that raises (or dies) makes the call raise :class:`RankFailedError` at once with
      that rank's traceback, and the other ranks (possibly waiting for it in a collective)
      are terminated;
    - ranks still running after ``timeout`` seconds are terminated and
      :class:`LaunchTimeoutError` names them.

    Args:
        fn: a function defined in an importable module (``vislab.distributed.loss_report``):
            worker processes import it by name, so a function typed into a notebook cannot be sent.
        world_size: W, 1 to 16 (the course uses 2-4 on a laptop).
        threads: torch threads per rank (1: W ranks share the cores).
        start_method: "forkserver" (default where available: the server imports torch once, every
            launch after the first forks in a fraction of a second) or "spawn".
    Returns:
        ``[result of rank 0, ..., result of rank W-1]`` (each unpickled from the worker).
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or not 1 <= world_size <= 16:
        raise ValueError(f"world_size must be an int from 1 to 16, got {world_size!r}")
    if not callable(fn):
        raise TypeError(f"fn must be a function, got {type(fn).__name__}")
    if getattr(fn, "__module__", None) == "__main__" or "<locals>" in getattr(fn, "__qualname__", ""):
        raise ValueError(f"{getattr(fn, '__qualname__', fn)!r} is defined in __main__ or inside a function: worker "
                         "processes import the function by name, so it must live at the top level of a module "
                         "(a .py file on the path, e.g. vislab.distributed.loss_report)")
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed")
    backend = backend or default_backend(world_size)
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    import torch.multiprocessing as mp

    methods = mp.get_all_start_methods()
    method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
    if method not in methods:
        raise ValueError(f"start_method {method!r} is not available here; available: {methods}")
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["torch", "torch.distributed", "vislab.distributed"])
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, daemon=True, name=f"vislab-rank{r}",
                         args=(r, world_size, port, backend, fn, args, kwargs, results, threads, timeout))
             for r in range(world_size)]
    out, pending = [None] * world_size, set(range(world_size))
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.start()
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LaunchTimeoutError(f"rank(s) {sorted(pending)} of {world_size} did not finish within {timeout:g} s "
                                         "and were terminated (a rank waiting for a collective that another rank never "
                                         "joined waits until this timeout)")
            try:
                status, rank, payload = results.get(timeout=min(left, 0.25))
            except queue_module.Empty:
                dead = [r for r in sorted(pending) if procs[r].exitcode not in (None, 0)]
                if dead:
                    try:                              # its last words may still be in the pipe
                        status, rank, payload = results.get(timeout=1.0)
                    except queue_module.Empty:
                        r = dead[0]
                        raise RankFailedError(r, f"process exited with code {procs[r].exitcode} without reporting "
                                                 "(killed by a signal? out of memory? From a script, start the "
                                                 "ranks under `if __name__ == '__main__':`, as workers import "
                                                 "the script again)") from None
                else:
                    continue
            if status == "error":
                raise RankFailedError(rank, payload)
            out[rank] = pickle.loads(payload)
            pending.discard(rank)
        for p in procs:
            p.join(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
                    p.join()
        results.cancel_join_thread()
        results.close()
    return out


# ----------------------------------------------------------------------------- splitting
def split_batch(tensor: torch.Tensor, world_size: int, rank: int) -> torch.Tensor:
    """Rank ``rank``'s chunk ``(c, ...)`` of a global batch ``(B, ...)``; B must be a multiple of W."""
    B = tensor.shape[0]
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}")
    if B % world_size:
        raise ValueError(f"a global batch of {B} does not split evenly over {world_size} ranks "
                         f"({B} = {world_size} x {B // world_size} + {B % world_size}); use a multiple of {world_size}")
    c = B // world_size
    return tensor[rank * c:(rank + 1) * c]


def check_even_split(local_batch: int, counter: CommCounter | None = None) -> int:
    """All-gather every rank's batch size and raise ValueError (on every rank) unless they are equal.

    Returns c, the common chunk. Costs one tiny collective; without it, ranks with different
    chunks would exchange tensors of different shapes and hang or fail with an obscure error.
    """
    W = dist.get_world_size()
    mine = torch.tensor([int(local_batch)], dtype=torch.long)
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(W)]
    dist.all_gather(sizes, mine)
    if counter is not None:
        counter.add("sizes", mine.nbytes * (W - 1), mine.nbytes * (W - 1))
    sizes = [int(s) for s in sizes]
    if len(set(sizes)) != 1:
        raise ValueError(f"the ranks hold batches of different sizes {sizes} (rank: size): the contrastive loss "
                         f"needs the global batch of {sum(sizes)} to split evenly, {W} ranks x the same chunk. "
                         "Drop the last incomplete batch (drop_last=True) or use a multiple of the world size.")
    return sizes[0]


def _on(tensor, device):
    return tensor if device is None else tensor.to(device)


# ----------------------------------------------------------------------------- CLIP: all-gather
def all_gather_features(features: torch.Tensor, counter: CommCounter | None = None, kind: str = "features"):
    """``(c, E)`` on each rank → ``(B, E)`` everywhere, rank order; only the own slot carries a gradient.

    open_clip's ``gather_features(gather_with_grad=False, local_loss=False)``: the gathered
    copies are plain tensors, and the rank's own slice is replaced by the live ``features`` so
    that the loss's gradient reaches this rank's encoder.
    """
    W, rank = dist.get_world_size(), dist.get_rank()
    chunks = [torch.empty_like(features) for _ in range(W)]                   # W x (c, E)
    dist.all_gather(chunks, features.detach().contiguous())
    if counter is not None:
        n = features.nelement() * features.element_size() * (W - 1)
        counter.add(kind, n, n)
    chunks[rank] = features                                                    # live: gradient flows here
    return torch.cat(chunks, dim=0)                                            # (B, E)


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient for our rows (open_clip's
    ``gather_with_grad=True``). gloo has no reduce-scatter, so the backward all-reduces the
    ``(B, E)`` gradient and keeps this rank's slice."""

    @staticmethod
    def forward(ctx, features, counter):
        ctx.counter = counter
        W = dist.get_world_size()
        chunks = [torch.empty_like(features) for _ in range(W)]               # W x (c, E)
        dist.all_gather(chunks, features.contiguous())
        if counter is not None:
            n = features.nbytes * (W - 1)
            counter.add("features", n, n)
        return torch.cat(chunks, dim=0)                                        # (B, E)

    @staticmethod
    def backward(ctx, grad):
        W, rank = dist.get_world_size(), dist.get_rank()
        grad = grad.contiguous().clone()                                       # (B, E)
        dist.all_reduce(grad)
        if ctx.counter is not None:          # a ring all-reduce: W - 1 chunks out and in, twice
            n = 2 * (W - 1) * grad.nbytes // W
            ctx.counter.add("features_grad", n, n)
        c = grad.shape[0] // W
        return grad[rank * c:(rank + 1) * c], None


def clip_loss_allgather(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale,
                        counter: CommCounter | None = None, local_loss: bool = False) -> torch.Tensor:
    """CLIP's loss over the global batch with all-gathered features (open_clip's distributed loss).

    ``local_loss=False`` (open_clip's default): gather without gradient, put the own slice back
    live, compute the whole ``(B, B)`` loss on every rank; returns the full loss L.
    ``local_loss=True`` (open_clip's ``--local-loss --gather-with-grad``): rank r computes only
    its c rows against all B captions and its c columns against all B images, a ``(c, B)``
    matrix each way; the gather is differentiable, and the rank returns its share
    L_r = (sum of its rows' and columns' cross-entropies) / (2B), with sum_r L_r = L.

    Args:
        image_features, text_features: this rank's ``(c, E)`` (normalised inside).
        logit_scale: the multiplier exp(t).
        counter: optional :class:`CommCounter`.
    """
    c = check_even_split(image_features.shape[0], counter)
    if not local_loss:
        all_img = all_gather_features(image_features, counter)                 # (B, E)
        all_txt = all_gather_features(text_features, counter)                  # (B, E)
        return clip_loss(all_img, all_txt, logit_scale)
    W, rank = dist.get_world_size(), dist.get_rank()
    img = F.normalize(image_features, dim=-1)                                  # (c, E)
    txt = F.normalize(text_features, dim=-1)                                   # (c, E)
    all_img = _AllGatherWithGrad.apply(img, counter)                           # (B, E)
    all_txt = _AllGatherWithGrad.apply(txt, counter)                           # (B, E)
    check_scale("logit_scale", logit_scale)
    s = torch.as_tensor(logit_scale, dtype=img.dtype, device=img.device).reshape(())
    labels = torch.arange(rank * c, (rank + 1) * c, device=img.device)         # (c,) our pairs' columns
    per_image = s * img @ all_txt.t()                                          # (c, B)
    per_text = s * txt @ all_img.t()                                           # (c, B)
    total = F.cross_entropy(per_image, labels, reduction="sum") + F.cross_entropy(per_text, labels, reduction="sum")
    return total / (2 * c * W)


# ----------------------------------------------------------------------------- SigLIP: the ring
def _exchange(tensor: torch.Tensor, step: int, counter: CommCounter | None, kind: str) -> torch.Tensor:
    """Send ``tensor`` to rank r + step and receive the same shape from rank r - step."""
    W, rank = dist.get_world_size(), dist.get_rank()
    tensor = tensor.contiguous()
    out = torch.empty_like(tensor)
    ops = [dist.P2POp(dist.isend, tensor, (rank + step) % W), dist.P2POp(dist.irecv, out, (rank - step) % W)]
    for req in dist.batch_isend_irecv(ops):
        req.wait()
    if counter is not None:
        counter.add(kind, tensor.nbytes, out.nbytes)
    return out


class _NeighbourExchange(torch.autograd.Function):
    """Forward: pass a chunk to the right neighbour, receive the left one's. Backward: the
    received chunk's gradient goes back to the left neighbour; ours comes back from the right."""

    @staticmethod
    def forward(ctx, tensor, counter):
        ctx.counter = counter
        return _exchange(tensor, +1, counter, "ring")

    @staticmethod
    def backward(ctx, grad):
        return _exchange(grad, -1, ctx.counter, "ring_grad"), None


def neighbour_exchange(tensor: torch.Tensor, counter: CommCounter | None = None) -> torch.Tensor:
    """Differentiable ring step: ``(c, E)`` to rank r + 1, ``(c, E)`` from rank r - 1."""
    return _NeighbourExchange.apply(tensor, counter)


def _block_sum(x, y, t, b, positive: bool):
    logits = t * x @ y.t() + b                                                 # (c, c)
    if positive:
        z = 2 * torch.eye(x.shape[0], device=x.device, dtype=x.dtype) - 1     # (c, c)
    else:
        z = -torch.ones((), device=x.device, dtype=x.dtype)
    return logits, z, -F.logsigmoid(z * logits).sum()


class _RingRecompute(torch.autograd.Function):
    """The ring that keeps one ``(c, c)`` block at a time, forward and backward."""

    @staticmethod
    def forward(ctx, x, y, t, b, counter):
        W = dist.get_world_size()
        B = x.shape[0] * W
        total = _block_sum(x, y, t, b, positive=True)[2]
        y_cur = y
        for _ in range(W - 1):
            y_cur = _exchange(y_cur, +1, counter, "ring")
            total = total + _block_sum(x, y_cur, t, b, positive=False)[2]
        ctx.save_for_backward(x, y, t, b)
        ctx.counter = counter
        return total / B

    @staticmethod
    def backward(ctx, grad):
        x, y, t, b = ctx.saved_tensors
        W = dist.get_world_size()
        c = x.shape[0]
        B = c * W
        gx, gt, gb = torch.zeros_like(x), torch.zeros_like(t), torch.zeros_like(b)
        y_cur, gy_cur = y, torch.zeros_like(y)               # the visiting chunk and its travelling gradient
        for k in range(W):
            if k:
                both = _exchange(torch.cat([y_cur, gy_cur]), +1, ctx.counter, "ring")   # (2c, E)
                y_cur, gy_cur = both[:c], both[c:]
            logits, z, _ = _block_sum(x, y_cur, t, b, positive=(k == 0))
            G = -z * torch.sigmoid(-z * logits) / B                                     # (c, c)
            gx += t * G @ y_cur                                                         # (c, E)
            gy_cur = gy_cur + t * G.t() @ x                                             # (c, E)
            gt += (G * (x @ y_cur.t())).sum()
            gb += G.sum()
        # the chunk held now belongs to rank r + 1 and has visited every rank: one hop takes it home
        gy = _exchange(gy_cur, +1, ctx.counter, "ring_grad") if W > 1 else gy_cur
        return gx * grad, gy * grad, gt * grad, gb * grad, None


def sigmoid_loss_ring(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale, logit_bias,
                      counter: CommCounter | None = None, recompute: bool = False) -> torch.Tensor:
    """SigLIP's loss with text chunks passed around the ring (paper sec. 3.3, fig. 1).

    Rank r computes the blocks of its c images against its own captions (the positives on
    the diagonal) and, after each of W - 1 exchanges, against the captions of rank r - k (all
    negatives). Every block of the ``(B, B)`` matrix is computed exactly once, on the rank
    that holds its images.

    Args:
        image_features, text_features: this rank's ``(c, E)`` (normalised inside).
        logit_scale: t = exp(t').  logit_bias: b.
        counter: optional :class:`CommCounter`.
        recompute: keep no block for the backward pass (see :class:`_RingRecompute`).
    Returns:
        rank r's share L_r = -1/B sum over its blocks; ``dist.all_reduce`` (SUM) gives the loss.
    """
    check_even_split(image_features.shape[0], counter)
    W = dist.get_world_size()
    x = F.normalize(image_features, dim=-1)                                    # (c, E)
    y = F.normalize(text_features, dim=-1)                                     # (c, E)
    check_scale("logit_scale", logit_scale)
    check_scale("logit_bias", logit_bias, positive=False)
    t = torch.as_tensor(logit_scale, dtype=x.dtype, device=x.device).reshape(())
    b = torch.as_tensor(logit_bias, dtype=x.dtype, device=x.device).reshape(())
    if recompute:
        return _RingRecompute.apply(x, y, t, b, counter)
    B = x.shape[0] * W
    total = _block_sum(x, y, t, b, positive=True)[2]
    y_cur = y
    for _ in range(W - 1):
        y_cur = neighbour_exchange(y_cur, counter)                             # (c, E) from rank r - 1
        total = total + _block_sum(x, y_cur, t, b, positive=False)[2]
    return total / B


def peak_rss_bytes() -> int:
    """This process's peak resident memory since it started (``getrusage``), in bytes."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def child_rss_bytes(kind: str = "rss") -> dict:
    """``{pid: bytes}`` of this process's live child processes (e.g. the fork server that
    :func:`launch` starts and keeps for the next launch): resident memory (``kind="rss"``) or
    proportional set size (``kind="pss"``). Linux only; ``{}`` elsewhere."""
    if kind not in ("rss", "pss"):
        raise ValueError(f"kind must be 'rss' or 'pss', got {kind!r}")
    me, out = os.getpid(), {}
    if not os.path.isdir("/proc"):
        return out
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) != me:                     # field 4 of stat: the parent's pid
                continue
            if kind == "pss":
                value = pss_bytes(entry)
                if value is not None:
                    out[int(entry)] = value
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out[int(entry)] = int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):        # a process that ended while we read it
            continue
    return out


# ----------------------------------------------------------------------------- experiments
def make_global_batch(batch_size: int, embed_dim: int, seed: int = 0, dtype=torch.float32):
    """The same random global batch on every rank: image and text features ``(B, E)`` (text =
    image + noise, so that pairs are alike), a scale t and a bias b."""
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(batch_size, embed_dim, generator=g, dtype=dtype)         # (B, E)
    txt = img + 0.8 * torch.randn(batch_size, embed_dim, generator=g, dtype=dtype)   # (B, E)
    return img, txt, torch.tensor(10.0, dtype=dtype), torch.tensor(-10.0, dtype=dtype)


def _run_method(method, img, txt, t, b, counter):
    if method == "clip_allgather":
        return clip_loss_allgather(img, txt, t, counter)
    if method == "clip_allgather_local":
        return clip_loss_allgather(img, txt, t, counter, local_loss=True)
    if method == "sigmoid_ring":
        return sigmoid_loss_ring(img, txt, t, b, counter)
    if method == "sigmoid_ring_recompute":
        return sigmoid_loss_ring(img, txt, t, b, counter, recompute=True)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def loss_report(ctx: RankContext, batch_per_rank, embed_dim: int, seed: int = 0, dtype: str = "float32",
                methods=METHODS, keep_grads: bool = True, warmup: bool = True) -> dict:
    """Run on every rank by :func:`launch`: each loss, forward and backward, on this rank's chunk.

    Args:
        batch_per_rank: c, or a list with one chunk size per rank (to show the uneven-split error).
        embed_dim: E.  seed: the global batch (:func:`make_global_batch`).  dtype: "float32" / "float64".
        methods: some of :data:`METHODS`.
        keep_grads: return the gradients (for checks); False returns only numbers.
        warmup: run each loss once on 2 pairs per rank before measuring it (first calls allocate
            buffers once).
    Returns:
        ``{method: {"loss", "total_loss", "grad_image", "grad_text", "grad_scale", "grad_bias",
        "sent", "received", "by_kind", "peak_bytes", "seconds"}}`` plus ``"rss_peak_bytes"`` (the
        process's peak resident memory, shared pages included) and ``"pss_peak_bytes"`` (its
        proportional share at that peak: :func:`pss_bytes` now plus its peak above the present level).
        ``peak_bytes`` is host memory (:class:`PeakMemory`) on CPU ranks and the CUDA allocator's
        peak above its level before the step on GPU ranks.
    """
    sizes = list(batch_per_rank) if isinstance(batch_per_rank, (list, tuple)) else [batch_per_rank] * ctx.world_size
    if len(sizes) != ctx.world_size:
        raise ValueError(f"batch_per_rank lists {len(sizes)} sizes for {ctx.world_size} ranks")
    dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    img_all, txt_all, t0, b0 = make_global_batch(sum(sizes), embed_dim, seed, dt)
    start = sum(sizes[:ctx.rank])
    c = sizes[ctx.rank]
    out, rss_peak = {}, 0

    def leaves():
        return (img_all[start:start + c].clone().to(ctx.device).requires_grad_(True),     # (c, E)
                txt_all[start:start + c].clone().to(ctx.device).requires_grad_(True),     # (c, E)
                t0.clone().to(ctx.device).requires_grad_(True), b0.clone().to(ctx.device).requires_grad_(True))

    for method in methods:
        if warmup:        # first calls allocate once-only buffers (autograd, gloo): keep them out of the peak
            img, txt, t, b = (v[:2].detach().clone().requires_grad_(True) if v.dim() else v.detach().clone()
                              .requires_grad_(True) for v in leaves())
            _run_method(method, img, txt, t, b, None).backward()
        img, txt, t, b = leaves()
        counter = CommCounter()
        dist.barrier()
        tic = time.perf_counter()
        if ctx.device.type == "cuda":          # GPU ranks: the allocator's own high-water mark
            torch.cuda.synchronize(ctx.device)
            base = torch.cuda.memory_allocated(ctx.device)
            torch.cuda.reset_peak_memory_stats(ctx.device)
        with PeakMemory() as mem:
            loss = _run_method(method, img, txt, t, b, counter)
            loss.backward()
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
            mem.peak_bytes = torch.cuda.max_memory_allocated(ctx.device) - base
        seconds = time.perf_counter() - tic
        total = loss.detach().clone()
        if method != "clip_allgather":
            dist.all_reduce(total)                                             # sum of the shares
        rss_peak = max(rss_peak, PeakMemory._status("VmHWM") or 0)
        row = {"loss": loss.item(), "total_loss": total.item(), "sent": counter.sent, "received": counter.received,
               "by_kind": dict(counter.by_kind), "peak_bytes": mem.peak_bytes, "seconds": seconds}
        if keep_grads:
            row.update(grad_image=img.grad.cpu(), grad_text=txt.grad.cpu(), grad_scale=t.grad.item(),
                       grad_bias=b.grad.item() if b.grad is not None else None)
        out[method] = row
        del img, txt, loss
    out["rss_peak_bytes"] = rss_peak
    # this rank's share of memory at its peak: its proportional set size now (pages shared with the
    # fork server and the other ranks counted once overall) plus what it held above its present level
    pss, rss_now = pss_bytes(), PeakMemory._status("VmRSS")
    out["pss_peak_bytes"] = None if pss is None or rss_now is None else pss + max(0, rss_peak - rss_now)
    return out


def reference_report(batch_size: int, embed_dim: int, seed: int = 0, dtype: str = "float32") -> dict:
    """The same losses in one process on the whole batch: ``{"clip": ..., "sigmoid": ...}`` with
    ``loss``, ``grad_image``, ``grad_text`` ``(B, E)``, ``grad_scale`` and ``grad_bias``."""
    dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    img_all, txt_all, t0, b0 = make_global_batch(batch_size, embed_dim, seed, dt)
    out = {}
    for name in ("clip", "sigmoid"):
        img, txt = img_all.clone().requires_grad_(True), txt_all.clone().requires_grad_(True)
        t, b = t0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        loss = clip_loss(img, txt, t) if name == "clip" else sigmoid_loss(img, txt, t, b)
        loss.backward()
        out[name] = {"loss": loss.item(), "grad_image": img.grad, "grad_text": txt.grad, "grad_scale": t.grad.item(),
                     "grad_bias": b.grad.item() if b.grad is not None else None}
    return out


def demo_failure(ctx: RankContext, failing_rank: int = 1, message: str = "this rank ran out of data") -> str:
    """Rank ``failing_rank`` raises; the others wait in a barrier it will never reach.

    Without a launcher that watches every rank, the waiting ranks (and a notebook waiting for
    them) would hang until the process group's timeout, 30 minutes by default.
    """
    if ctx.rank == failing_rank:
        raise RuntimeError(message)
    dist.barrier()
    return "unreachable: the barrier needs every rank"


def _sleep_on_rank(ctx: RankContext, rank: int, seconds: float) -> int:
    """Rank ``rank`` sleeps ``seconds`` (to test the launcher's timeout)."""
    if ctx.rank == rank:
        time.sleep(seconds)
    return ctx.rank


if __name__ == "__main__":  # pragma: no cover - a quick manual check: python -m vislab.distributed
    for W in (2, 4):
        rows = launch(loss_report, W, 64, 32, keep_grads=False)
        print(W, {m: round(rows[0][m]["total_loss"], 6) for m in METHODS}, file=sys.stderr)
