"""Tests for vislab.train: the fit loop (budget, history, hooks, guards, batch sources) and accuracy."""

import time

import pytest
import torch
from torch import nn

from vislab.train import History, evaluate_accuracy, fit


def regression_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    return x, y


def mse(model, batch):
    x, y = batch
    return ((model(x).squeeze(-1) - y) ** 2).mean()


def setup(lr=0.05, seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(4, 1)
    return model, torch.optim.SGD(model.parameters(), lr=lr)


# ---- budget and history -----------------------------------------------------------------------

def test_fit_takes_exactly_the_step_budget_and_learns():
    model, opt = setup()
    data = regression_data()
    seen = []
    hist = fit(model, mse, lambda step: data, opt, steps=60, after_step=lambda m, s: seen.append(s), progress=False)
    assert isinstance(hist, History)
    assert hist.steps_done == 60 and seen == list(range(60))
    assert hist.steps == list(range(60)) and len(hist.metrics["loss"]) == 60
    assert hist.metrics["loss"][-1] < 0.1 * hist.metrics["loss"][0]
    assert hist.last("loss") == hist.metrics["loss"][-1]
    assert hist.seconds > 0 and hist.stopped_early is False
    assert not model.training                                      # left in eval mode


def test_zero_steps_is_a_no_op():
    model, opt = setup()
    before = [p.clone() for p in model.parameters()]
    hist = fit(model, mse, lambda s: regression_data(), opt, steps=0, progress=False)
    assert hist.steps_done == 0 and hist.steps == []
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_log_every_keeps_the_last_step():
    model, opt = setup()
    hist = fit(model, mse, lambda s: regression_data(), opt, steps=10, log_every=3, progress=False)
    assert hist.steps == [0, 3, 6, 9]
    hist = fit(model, mse, lambda s: regression_data(), opt, steps=8, log_every=3, progress=False)
    assert hist.steps == [0, 3, 6, 7]


def test_extra_metrics_from_a_tuple():
    model, opt = setup()

    def loss_fn(model, batch):
        loss = mse(model, batch)
        return loss, {"half": loss.item() / 2, "tensor_metric": torch.tensor(1.5)}

    hist = fit(model, loss_fn, lambda s: regression_data(), opt, steps=5, progress=False)
    assert hist.metrics["half"] == pytest.approx([v / 2 for v in hist.metrics["loss"]])
    assert hist.metrics["tensor_metric"] == [1.5] * 5
    assert all(isinstance(v, float) for v in hist.metrics["tensor_metric"])


def test_history_continues():
    model, opt = setup()
    hist = fit(model, mse, lambda s: regression_data(), opt, steps=4, progress=False)
    steps = []
    hist2 = fit(model, mse, lambda s: steps.append(s) or regression_data(), opt, steps=3, history=hist,
                progress=False)
    assert hist2 is hist
    assert steps == [4, 5, 6]
    assert hist.steps == list(range(7)) and hist.steps_done == 7


def test_history_helpers():
    h = History()
    for i, v in enumerate([4.0, 2.0, 6.0, 0.0]):
        h.log(i, loss=v, acc=i / 10)
    h.log_eval(4, acc=0.9)
    assert h.last("loss") == 0.0
    assert h.last("acc") == 0.9                                  # evaluations win over training metrics
    assert h.smoothed("loss", window=2) == [4.0, 3.0, 4.0, 3.0]
    assert h.smoothed("loss", window=100) == [4.0, 3.0, 4.0, 3.0]
    assert h.smoothed("missing") == []
    with pytest.raises(KeyError, match="have \\['acc', 'loss'\\]"):
        h.last("accuracy")


# ---- hooks: after_step, eval_fn, callback, scheduler, grad_clip --------------------------------

def test_eval_fn_runs_every_eval_every_steps_and_at_the_end_in_eval_mode():
    model, opt = setup()
    calls = []

    def eval_fn(m):
        calls.append((m.training, torch.is_grad_enabled()))
        return {"score": float(len(calls))}

    hist = fit(model, mse, lambda s: regression_data(), opt, steps=10, eval_fn=eval_fn, eval_every=4, progress=False)
    assert hist.eval_steps == [4, 8, 10]
    assert hist.evals["score"] == [1.0, 2.0, 3.0]
    assert all(training is False and grad is False for training, grad in calls)
    hist = fit(model, mse, lambda s: regression_data(), opt, steps=10, eval_fn=eval_fn, eval_every=5, progress=False)
    assert hist.eval_steps == [5, 10]                           # no duplicate evaluation at the end
    hist = fit(model, mse, lambda s: regression_data(), opt, steps=3, eval_fn=eval_fn, progress=False)
    assert hist.eval_steps == [3]                               # without eval_every: once, at the end


def test_model_is_in_train_mode_during_training():
    model, opt = setup()
    modes = []
    fit(model, lambda m, b: modes.append(m.training) or mse(m, b), lambda s: regression_data(), opt, steps=3,
        eval_fn=lambda m: {}, eval_every=1, progress=False)
    assert modes == [True, True, True]


class Recorder:
    def __init__(self):
        self.updates, self.closed = 0, None

    def update(self, history):
        self.updates += 1

    def close(self, history):
        self.closed = history.steps_done


def test_callback_updates_and_closes():
    model, opt = setup()
    cb = Recorder()
    fit(model, mse, lambda s: regression_data(), opt, steps=5, callback=cb, progress=False)
    assert cb.updates == 5 and cb.closed == 5


def test_callback_without_close_and_loss_curve():
    from vislab.widgets import LossCurve

    class UpdateOnly:
        n = 0

        def update(self, history):
            self.n += 1

    model, opt = setup()
    cb = UpdateOnly()
    fit(model, mse, lambda s: regression_data(), opt, steps=2, callback=cb, progress=False)
    assert cb.n == 2
    fit(model, mse, lambda s: regression_data(), opt, steps=2, callback=LossCurve(), progress=False)


def test_scheduler_is_stepped_once_per_step():
    model, opt = setup(lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    fit(model, mse, lambda s: regression_data(), opt, steps=3, scheduler=sched, progress=False)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.125)


def test_grad_clip_bounds_the_update():
    model, opt = setup(lr=1.0)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    fit(model, lambda m, b: 1000 * mse(m, b), lambda s: regression_data(), opt, steps=1, grad_clip=1e-3,
        progress=False)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm() <= 1e-3 + 1e-7


# ---- guards ---------------------------------------------------------------------------------------

def test_max_seconds_guard_stops_early_and_says_so(capsys):
    model, opt = setup()
    cb = Recorder()

    def slow_loss(model, batch):
        time.sleep(0.03)
        return mse(model, batch)

    hist = fit(model, slow_loss, lambda s: regression_data(), opt, steps=1000, max_seconds=0.15, callback=cb,
               eval_fn=lambda m: {"done": 1.0}, progress=False)
    assert hist.stopped_early is True
    assert 1 <= hist.steps_done < 1000
    assert hist.steps[-1] == hist.steps_done - 1
    assert hist.eval_steps == [hist.steps_done]                 # the final evaluation still runs
    assert cb.closed == hist.steps_done
    out = capsys.readouterr().out
    assert "wall-clock guard" in out and "of 1000" in out


def test_max_seconds_not_reached_does_not_stop():
    model, opt = setup()
    hist = fit(model, mse, lambda s: regression_data(), opt, steps=5, max_seconds=600, progress=False)
    assert hist.stopped_early is False and hist.steps_done == 5


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_raises(bad):
    model, opt = setup()
    cb = Recorder()

    def loss_fn(model, batch):
        loss = mse(model, batch)
        return loss * bad if len(seen) >= 3 else loss      # steps 0, 1 fine; step 2 not

    seen = []
    with pytest.raises(FloatingPointError, match="at step 2"):
        fit(model, loss_fn, lambda s: seen.append(s) or regression_data(), opt, steps=10, callback=cb,
            progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())   # no step was taken with it
    assert cb.closed == 2                                             # the callback is still closed


# ---- batch sources ------------------------------------------------------------------------------

def test_callable_batches_get_the_step():
    model, opt = setup()
    got = []
    fit(model, mse, lambda step: got.append(step) or regression_data(), opt, steps=4, progress=False)
    assert got == [0, 1, 2, 3]


def test_list_and_tuple_batches_are_cycled():
    model, opt = setup()
    data = [regression_data(8, seed=i) for i in range(3)]
    order = []

    def loss_fn(model, batch):
        order.append(next(i for i, d in enumerate(data) if d is batch))
        return mse(model, batch)

    fit(model, loss_fn, data, opt, steps=7, progress=False)
    assert order == [0, 1, 2, 0, 1, 2, 0]
    order.clear()
    fit(model, loss_fn, tuple(data), opt, steps=4, progress=False)
    assert order == [0, 1, 2, 0]


def test_dataloader_is_restarted_each_epoch():
    model, opt = setup()
    x, y = regression_data(32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)  # 2 batches
    hist = fit(model, mse, loader, opt, steps=5, progress=False)
    assert hist.steps_done == 5


def test_generator_batches_and_running_out():
    model, opt = setup()
    gen = (regression_data(8, seed=i) for i in range(3))
    hist = fit(model, mse, gen, opt, steps=3, progress=False)
    assert hist.steps_done == 3
    gen = (regression_data(8, seed=i) for i in range(2))
    with pytest.raises(ValueError, match="ran out"):
        fit(model, mse, gen, opt, steps=3, progress=False)


def test_empty_batches():
    model, opt = setup()
    for empty in ([], ()):
        with pytest.raises(ValueError, match="empty"):
            fit(model, mse, empty, opt, steps=1, progress=False)


# ---- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,err,match", [
    (dict(steps=-1), ValueError, "steps"), (dict(steps=2.0), ValueError, "steps"),
    (dict(steps=True), ValueError, "steps"), (dict(eval_every=0), ValueError, "eval_every"),
    (dict(max_seconds=0), ValueError, "max_seconds"), (dict(max_seconds=-1.0), ValueError, "max_seconds"),
    (dict(log_every=0), ValueError, "log_every"), (dict(batches=5), TypeError, "batches"),
])
def test_fit_bad_input(kwargs, err, match):
    model, opt = setup()
    args = dict(model=model, loss_fn=mse, batches=lambda s: regression_data(), optimizer=opt, steps=3,
                progress=False)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        fit(**args)


def test_progress_bar_runs(capsys):
    model, opt = setup()
    hist = fit(model, mse, lambda s: regression_data(), opt, steps=3, desc="tiny", progress=True)
    assert hist.steps_done == 3
    assert "tiny" in capsys.readouterr().err


# ---- evaluate_accuracy ----------------------------------------------------------------------------

class Lookup(nn.Module):
    """Logits that predict class (x[:, 0] rounded), to know the accuracy in advance."""

    def __init__(self, classes=3):
        super().__init__()
        self.classes = classes
        self.dummy = nn.Parameter(torch.zeros(()))
        self.batches = 0

    def forward(self, x):
        self.batches += 1
        assert not self.training
        return nn.functional.one_hot(x[:, 0].round().long(), self.classes).float() + self.dummy


def test_evaluate_accuracy():
    model = Lookup()
    images = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0, 2.0, 1.0])[:, None].repeat(1, 4)
    labels = torch.tensor([0, 1, 2, 0, 0, 1, 1])
    model.train()
    acc = evaluate_accuracy(model, images, labels, batch_size=3)
    assert acc == pytest.approx(5 / 7)
    assert model.batches == 3                                    # 3 + 3 + 1
    assert model.training                                        # mode restored
    model.eval()
    evaluate_accuracy(model, images, labels)
    assert not model.training
    assert evaluate_accuracy(model, images, labels.new_tensor([0, 1, 2, 1, 0, 2, 1])) == 1.0


def test_evaluate_accuracy_bad_input():
    with pytest.raises(ValueError, match="7 images but 6 labels"):
        evaluate_accuracy(Lookup(), torch.zeros(7, 4), torch.zeros(6, dtype=torch.long))


def test_metric_named_loss_is_refused_clearly():
    import pytest
    import torch

    from vislab.train import fit

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss_fn(m, batch):
        loss = m(batch).pow(2).mean()
        return loss, {"loss": loss.item()}

    with pytest.raises(ValueError, match="'loss' key"):
        fit(model, loss_fn, [torch.ones(4, 2)], opt, steps=2, progress=False)
