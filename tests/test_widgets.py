"""Tests for vislab.widgets: show() and its static fallback, LossCurve, chapter 1's patch viewer."""

import base64
import datetime

import ipywidgets as W
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import vislab.widgets.core as core
from vislab.train import History
from vislab.widgets import LossCurve, fig_to_png, in_notebook, show
from vislab.widgets.patches import layer_cost, patch_figure, patch_viewer, token_summary, valid_patch_sizes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def notebook(monkeypatch):
    """Pretend to be a kernel: in_notebook() is True and display() records what it gets."""
    shown = []

    class Handle:
        def __init__(self):
            self.updates = []

        def update(self, obj):
            self.updates.append(obj)

    def fake_display(obj, raw=False, display_id=None):
        shown.append({"obj": obj, "raw": raw, "display_id": display_id})
        if display_id:
            handle = Handle()
            shown[-1]["handle"] = handle
            return handle
        return None

    import IPython.display

    monkeypatch.setattr(core, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", fake_display)
    return shown


def small_figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


# ---- core ------------------------------------------------------------------------------------------

def test_not_in_a_notebook_under_pytest():
    assert in_notebook() is False


def test_fig_to_png_renders_and_closes():
    fig = small_figure()
    png = fig_to_png(fig)
    assert png.startswith(PNG_MAGIC)
    assert not plt.fignum_exists(fig.number)


def test_show_builds_a_widget_view_with_a_png_fallback(notebook):
    box = W.VBox([W.IntSlider(value=3), W.Label("x")])
    fig = small_figure()
    show(box, fig, title="a viewer")
    assert len(notebook) == 1
    bundle = notebook[0]["obj"]
    assert notebook[0]["raw"] is True
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == box.model_id and view["version_major"] == 2
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
    assert bundle["text/plain"] == "a viewer"
    assert not plt.fignum_exists(fig.number)


def test_show_with_png_bytes_or_nothing(notebook):
    box = W.HBox([W.Dropdown(options=["a", "b"])])
    png = fig_to_png(small_figure())
    show(box, png=png)
    assert base64.b64decode(notebook[-1]["obj"]["image/png"]) == png
    assert "interactive viewer" in notebook[-1]["obj"]["text/plain"]
    show(box)
    assert "image/png" not in notebook[-1]["obj"]


def test_show_rejects_non_widgets_in_a_notebook(notebook):
    with pytest.raises(TypeError, match="not an ipywidgets widget"):
        show(object(), png=b"")


def test_show_outside_a_notebook_displays_nothing_but_closes_the_figure(monkeypatch):
    import IPython.display

    calls = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: calls.append(a))
    fig = small_figure()
    show(W.Label("x"), fig)
    assert calls == []
    assert not plt.fignum_exists(fig.number)


def history(evals=True):
    h = History()
    for step in range(30):
        h.log(step, loss=1.0 / (step + 1), acc=step / 30)
    if evals:
        for step in (10, 20, 30):
            h.log_eval(step, val_acc=step / 40)
    return h


def test_loss_curve_figure_on_a_history():
    fig = LossCurve().figure(history())
    assert len(fig.axes) == 2                                         # loss, and the evaluation panel
    loss_ax, eval_ax = fig.axes
    assert loss_ax.get_title() == "training" and eval_ax.get_title() == "evaluation"
    assert len(loss_ax.lines) == 2                                    # raw and smoothed
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), history().metrics["loss"])
    assert list(eval_ax.lines[0].get_xdata()) == [10, 20, 30]
    plt.close(fig)
    fig = LossCurve(metrics=("loss", "acc"), evals=(), title="t", logy=True).figure(history())
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 4
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_title() == "t"
    plt.close(fig)
    fig = LossCurve().figure(history(evals=False))
    assert len(fig.axes) == 1
    plt.close(fig)


def test_loss_curve_outside_a_notebook_is_silent():
    curve = LossCurve()
    curve.update(history())
    curve.close(history())
    assert curve._handle is None


def test_loss_curve_updates_one_output_in_place(notebook):
    open_figures = plt.get_fignums()
    curve = LossCurve(interval=0.0)
    h = history()
    curve.update(h)
    curve.update(h)
    curve.close(h)
    assert len(notebook) == 1                                         # one display output ...
    assert notebook[0]["display_id"] is True
    assert len(notebook[0]["handle"].updates) == 2                    # ... redrawn in place
    assert notebook[0]["obj"].data.startswith(PNG_MAGIC)
    assert plt.get_fignums() == open_figures                          # figures do not pile up


def test_loss_curve_throttles_and_skips_empty_histories(notebook):
    LossCurve(interval=0.0).update(History())                         # nothing logged yet: nothing drawn
    assert notebook == []
    curve = LossCurve(interval=3600)
    h = history()
    curve.update(h)
    curve.update(h)                                                   # within the interval: skipped
    assert len(notebook) == 1 and notebook[0]["handle"].updates == []
    curve.close(h)                                                    # the final picture is always drawn
    assert len(notebook[0]["handle"].updates) == 1


# ---- chapter 1: patches ------------------------------------------------------------------------------

def test_valid_patch_sizes():
    assert valid_patch_sizes(32) == [2, 4, 8, 16]
    assert valid_patch_sizes(224) == [2, 4, 7, 8, 14, 16, 28, 32, 56, 112]
    assert valid_patch_sizes(64, smallest=8) == [8, 16, 32]
    assert valid_patch_sizes(7) == []
    for size in (32, 224, (224, 336), (32, 48), (30, 45)):
        for p in valid_patch_sizes(size):
            h, w = (size, size) if isinstance(size, int) else size
            assert h % p == 0 and w % p == 0 and h // p >= 2 and w // p >= 2


def test_valid_patch_sizes_non_square_keeps_every_size_with_two_patches_a_side():
    assert valid_patch_sizes((32, 48)) == [2, 4, 8, 16]                # 16 gives a 2x3 grid
    assert 112 in valid_patch_sizes((224, 336))                        # 2x3 grid
    assert valid_patch_sizes((30, 45)) == [3, 5, 15]                   # 15 gives a 2x3 grid


def test_token_summary():
    s = token_summary(224, 16)
    assert "224×224" in s and "14×14 = 196 patches" in s and "+ 1 CLS = 197 tokens" in s
    assert "768 numbers" in s and "197² = 38,809 entries" in s
    s = token_summary((224, 336), 14, cls_token=False)
    assert "16×24 = 384 patches" in s and "= 384 tokens" in s and "CLS" not in s
    with pytest.raises(ValueError, match="nearest valid"):
        token_summary(225, 16)


def test_layer_cost():
    c = layer_cost(197, dim=768)
    assert c["linear"] == pytest.approx(197 * 768**2 * 12)            # qkv 3 + proj 1 + MLP 2*4
    assert c["attention"] == pytest.approx(2 * 197**2 * 768)
    c = layer_cost(np.array([10, 20]), dim=8, mlp_ratio=2.0)
    np.testing.assert_allclose(c["linear"], [10 * 64 * 8, 20 * 64 * 8])
    np.testing.assert_allclose(c["attention"], [2 * 100 * 8, 2 * 400 * 8])
    # attention overtakes the linear layers at N = (4 + 2r) D / 2 = 6 D for r = 4
    at = layer_cost(6 * 768, dim=768)
    assert at["attention"] == pytest.approx(at["linear"])


def test_patch_figure():
    img = torch.rand(3, 32, 48)
    fig = patch_figure(img, 8, n_show=5)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 4
    assert "4×6 grid" in fig.axes[0].get_title()
    assert "of 24" in fig.axes[1].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        patch_figure(img[None], 8)
    with pytest.raises(ValueError, match="nearest valid"):
        patch_figure(img, 5)


def test_patch_viewer_is_built_from_core_widgets():
    open_figures = plt.get_fignums()
    images = {"a": torch.rand(3, 32, 32), "b": torch.rand(3, 24, 48)}
    box = patch_viewer(images, patch_size=8, dim=64)
    assert isinstance(box, W.VBox)
    top, info, picture = box.children
    pick, slider = top.children
    assert isinstance(pick, W.Dropdown) and isinstance(slider, W.SelectionSlider)
    assert isinstance(info, W.HTML) and isinstance(picture, W.Image)
    assert list(pick.options) == ["a", "b"] and slider.value == 8
    assert list(slider.options) == [2, 4, 8, 16]
    assert bytes(picture.value).startswith(PNG_MAGIC)
    assert "4×4 = 16 patches" in info.value
    # moving the slider redraws; changing the image changes the valid sizes and keeps P if valid
    first = bytes(picture.value)
    slider.value = 4
    assert "8×8 = 64 patches" in info.value and bytes(picture.value) != first
    pick.value = "b"
    assert list(slider.options) == valid_patch_sizes((24, 48)) and slider.value == 4
    assert "6×12 = 72 patches" in info.value
    assert plt.get_fignums() == open_figures


def test_patch_viewer_bad_input():
    with pytest.raises(ValueError, match="non-empty dict"):
        patch_viewer({})
    with pytest.raises(ValueError, match="non-empty dict"):
        patch_viewer([torch.rand(3, 8, 8)])
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        patch_viewer({"x": torch.rand(1, 32, 32)})
    with pytest.raises(ValueError, match="no valid patch size"):
        patch_viewer({"x": torch.rand(3, 7, 7)})


def test_patch_viewer_in_a_notebook_shows_the_widget_and_its_picture(notebook):
    box = patch_viewer({"x": torch.rand(3, 32, 32)}, dim=32)
    assert box.children[0].children[1].value == 8                     # default: the middle of [2, 4, 8, 16]
    bundle = notebook[-1]["obj"]
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id
    assert base64.b64decode(bundle["image/png"]) == bytes(box.children[2].value)
    assert "32×32" in bundle["text/plain"]


# ------------------------------------------------------------------------------ uploads

def _png_bytes(size=(120, 80), color=(200, 30, 30)):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _upload_value(name, data):
    """A FileUpload value as the installed ipywidgets writes it (7: dict, 8: tuple of dicts)."""
    if int(W.__version__.split(".")[0]) >= 8:
        return ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
                 "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},)
    return {name: {"metadata": {"name": name, "type": "image/png", "size": len(data)}, "content": data}}


def test_uploaded_files_reads_both_ipywidgets_formats():
    data = _png_bytes()
    v8 = ({"name": "a.png", "type": "image/png", "size": len(data), "content": memoryview(data)},)
    v7 = {"a.png": {"metadata": {"name": "a.png"}, "content": data}}
    assert core.uploaded_files(v8) == [("a.png", data)] == core.uploaded_files(v7)
    with pytest.raises(TypeError, match="FileUpload value"):
        core.uploaded_files("a.png")


def test_uploaded_images_names_files_that_are_not_images():
    value = {"ok.png": {"content": _png_bytes()}, "notes.txt": {"content": b"hello"}}
    images, errors = core.uploaded_images(value)
    assert list(images) == ["ok.png"] and images["ok.png"].size == (120, 80)
    assert len(errors) == 1 and errors[0].startswith("notes.txt: not an image")


@pytest.mark.parametrize("viewer", ["tiling_viewer", "anyres_viewer"])
def test_tiling_viewers_take_an_uploaded_image(viewer):
    from PIL import Image

    from vislab.widgets import tiling

    box = getattr(tiling, viewer)({"grey": Image.new("RGB", (448, 448), (128, 128, 128))})
    controls = [c for row in box.children if isinstance(row, W.HBox) for c in row.children]
    pick = next(c for c in controls if isinstance(c, W.Dropdown))
    upload = next(c for c in controls if isinstance(c, W.FileUpload))
    sliders = [c for c in controls if isinstance(c, W.IntSlider) and c.description in ("width", "height")]
    picture = next(c for c in box.children if isinstance(c, W.Image))
    before = picture.value
    # what the frontend does after a pick (ipywidgets 7 makes `value` read-only for Python code)
    upload.set_trait("value", _upload_value("wide.png", _png_bytes(size=(1000, 300))))
    assert pick.value == "wide.png" and list(pick.options) == ["grey", "wide.png"]
    got = {s.description: s.value for s in sliders}       # the sliders move to the upload's size
    assert abs(got["width"] - 1000) <= 16 and abs(got["height"] - 300) <= 16, got
    assert picture.value != before
