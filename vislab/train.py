"""A plain training loop: no framework, one screen of code.

The budget is a number of **steps**, so a chapter's checked outputs are the same on every
machine; ``max_seconds`` is only a guard that stops a run early (and says so) when a slow
machine would blow the chapter's time budget. Progress is shown with ``tqdm.auto`` (a
notebook bar in Jupyter, text elsewhere), and an optional ``callback`` (for example
``vislab.widgets.LossCurve()``) draws a live loss curve.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from vislab.validate import check_int, check_number

__all__ = ["History", "fit", "evaluate_accuracy"]


@dataclass
class History:
    """What happened during :func:`fit`.

    Attributes:
        steps: the step index of every logged training metric.
        metrics: name → list of values at ``steps`` (always has "loss").
        eval_steps: steps at which ``eval_fn`` ran.
        evals: name → list of values at ``eval_steps``.
        seconds: wall-clock seconds of the run.
        stopped_early: True when the wall-clock guard ended the run.
        steps_done: optimizer steps actually taken.
    """

    steps: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    eval_steps: list = field(default_factory=list)
    evals: dict = field(default_factory=dict)
    seconds: float = 0.0
    stopped_early: bool = False
    steps_done: int = 0

    def log(self, step: int, **values) -> None:
        self.steps.append(step)
        for k, v in values.items():
            self.metrics.setdefault(k, []).append(float(v))

    def log_eval(self, step: int, **values) -> None:
        self.eval_steps.append(step)
        for k, v in values.items():
            self.evals.setdefault(k, []).append(float(v))

    def last(self, name: str) -> float:
        """The latest value of a training metric or evaluation."""
        if name in self.evals and self.evals[name]:
            return self.evals[name][-1]
        if name in self.metrics and self.metrics[name]:
            return self.metrics[name][-1]
        raise KeyError(f"no metric {name!r}; have {sorted(set(self.metrics) | set(self.evals))}")

    def smoothed(self, name: str = "loss", window: int = 20) -> list:
        """Running mean of a training metric over ``window`` logged values."""
        vals = self.metrics.get(name, [])
        out, acc = [], 0.0
        for i, v in enumerate(vals):
            acc += v
            if i >= window:
                acc -= vals[i - window]
            out.append(acc / min(i + 1, window))
        return out


def _batch_source(batches) -> Callable[[int], object]:
    if callable(batches):
        return batches
    if isinstance(batches, (list, tuple)):
        if not batches:
            raise ValueError("batches is empty: pass at least one batch")
        it = itertools.cycle(batches)
        return lambda step: next(it)
    if isinstance(batches, Iterable):
        # a re-iterable (a DataLoader) starts a new epoch when one ends; a one-shot iterator
        # (a generator) cannot, and running out of it is reported clearly
        current = iter(batches)

        def next_batch(step):
            nonlocal current
            try:
                return next(current)
            except StopIteration:
                if current is not batches:
                    current = iter(batches)
                    for batch in current:
                        return batch
                raise ValueError(f"the batches ran out at step {step}: pass a list, a re-iterable such as a "
                                 "DataLoader, or a callable batches(step) -> batch") from None

        return next_batch
    raise TypeError("batches must be a callable batches(step) -> batch, or an iterable of batches")


def fit(model: torch.nn.Module, loss_fn: Callable, batches, optimizer: torch.optim.Optimizer, steps: int, *,
        callback=None, after_step: Callable | None = None, scheduler=None, grad_clip: float | None = None,
        eval_fn: Callable | None = None, eval_every: int | None = None, max_seconds: float | None = None,
        desc: str = "train", progress: bool = True, log_every: int = 1, history: History | None = None) -> History:
    """Train ``model`` for ``steps`` optimizer steps.

    Args:
        model: put in train mode for the loop (eval mode around ``eval_fn``).
        loss_fn: ``loss_fn(model, batch)`` → a scalar loss, or ``(loss, {"name": value})``
            to log more metrics.
        batches: ``batches(step)`` → batch, or an iterable of batches (a list is cycled).
        optimizer: any torch optimizer over the model's parameters.
        steps: the budget, in optimizer steps.
        callback: an object with ``update(history)`` (called as the run goes) and
            optionally ``close(history)``, e.g. ``vislab.widgets.LossCurve()``.
        after_step: ``after_step(model, step)`` after every optimizer step (EMA teacher
            updates, clamping CLIP's temperature, ...).
        scheduler: stepped once per step.
        grad_clip: clip the global gradient norm to this value.
        eval_fn: ``eval_fn(model)`` → dict of metrics, run every ``eval_every`` steps and
            at the end.
        max_seconds: wall-clock guard; the run stops early and says so when exceeded.
        history: continue logging into an existing History (steps keep counting).
    Returns:
        The :class:`History`.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int (the budget is counted in steps), got {steps!r}")
    if eval_every is not None and (not isinstance(eval_every, int) or eval_every < 1):
        raise ValueError(f"eval_every must be a positive int or None, got {eval_every!r}")
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise ValueError(f"log_every must be a positive int, got {log_every!r}")
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive or None, got {max_seconds!r}")
    _check_fit(model, loss_fn, optimizer, grad_clip, after_step, eval_fn, history)
    get_batch = _batch_source(batches)
    hist = history if history is not None else History()
    start_step = hist.steps_done
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=True)

    def run_eval(step):
        model.eval()
        with torch.no_grad():
            values = eval_fn(model)
        model.train()
        hist.log_eval(step, **values)

    model.train()
    try:
        for i in range(steps):
            step = start_step + i
            batch = get_batch(step)
            out = loss_fn(model, batch)
            loss, extra = (out if isinstance(out, tuple) else (out, {}))
            if "loss" in extra:
                raise ValueError("loss_fn returned a metrics dict with a 'loss' key, which would overwrite the "
                                 "training loss in the history; rename it (e.g. 'recon_loss')")
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}: lower the learning rate "
                                         "or clip gradients (grad_clip=1.0)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if after_step is not None:
                after_step(model, step)
            hist.steps_done = step + 1
            if i % log_every == 0 or i == steps - 1:
                hist.log(step, loss=loss.item(), **{k: float(v) for k, v in extra.items()})
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if eval_fn is not None and eval_every is not None and (i + 1) % eval_every == 0 and i != steps - 1:
                run_eval(step + 1)
            bar.update(1)
            if callback is not None:
                callback.update(hist)
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds and i < steps - 1:
                hist.stopped_early = True
                print(f"wall-clock guard: stopped after {time.perf_counter() - t0:.0f} s at step {i + 1} of {steps} "
                      f"(max_seconds={max_seconds}); results are those of a shorter run")
                break
        if eval_fn is not None:
            run_eval(hist.steps_done)
    finally:
        bar.close()
        hist.seconds += time.perf_counter() - t0
        if callback is not None and hasattr(callback, "close"):
            callback.close(hist)
    model.eval()
    return hist


def _check_fit(model, loss_fn, optimizer, grad_clip, after_step, eval_fn, history) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable loss_fn(model, batch) -> loss, got {type(loss_fn).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if grad_clip is not None:
        check_number("grad_clip", grad_clip, 0.0, strict_min=True)     # <= 0 would step along, or zero, the gradient
    for name, fn in (("after_step", after_step), ("eval_fn", eval_fn)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
    if history is not None and not isinstance(history, History):
        raise TypeError(f"history must be a vislab.train.History or None, got {type(history).__name__}")


def _check_accuracy_inputs(model, images, labels, batch_size) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, t in (("images", images), ("labels", labels)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if labels.dim() != 1:
        raise ValueError(f"labels must be (B,) class indices, got shape {tuple(labels.shape)}; "
                         "flatten them (labels.view(-1)) or take argmax of one-hot labels")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}; use labels.long()")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    check_int("batch_size", batch_size, minimum=1)


def _check_logits(logits, n: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model must return (B, K) = ({n}, K) logits, got {got}")


@torch.no_grad()
def evaluate_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model(images)`` logits ``(B, K)`` against ``labels`` ``(B,)``, in batches."""
    _check_accuracy_inputs(model, images, labels, batch_size)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, images.shape[0], batch_size):
        logits = model(images[i:i + batch_size].to(device))
        _check_logits(logits, images[i:i + batch_size].shape[0])
        correct += (logits.argmax(-1).cpu() == labels[i:i + batch_size].cpu()).sum().item()
    model.train(was_training)
    return correct / max(1, images.shape[0])
