"""What every viewer shares: a static fallback picture, PNG rendering, the live loss curve.

Convention: a viewer is a function that builds a widget from core ipywidgets only (so it
runs on ipywidgets 7.7, which Colab ships, and on 8.x), calls :func:`show`, and returns
the widget. :func:`show` puts the interactive view *and* a PNG of the default state in the
same output: JupyterLab and Colab render the widget, while nbval, an HTML export without
widget state or GitHub's viewer fall back to the picture.
"""

from __future__ import annotations

import base64
import io
import time

__all__ = ["fig_to_png", "show", "in_notebook", "LossCurve", "uploaded_files", "uploaded_images", "upload_button"]


def fig_to_png(fig, dpi: int = 80) -> bytes:
    """Render a matplotlib figure to PNG bytes (and close it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def in_notebook() -> bool:
    """True when running inside an IPython kernel (Jupyter, Colab, nbval)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _model_id(widget) -> str:
    mid = getattr(widget, "model_id", None)
    if mid is None:                                     # ipywidgets 7 spells it _model_id
        mid = getattr(widget, "_model_id", None)
    if mid is None:
        raise TypeError(f"{type(widget).__name__} is not an ipywidgets widget")
    return mid


def show(widget, figure=None, png: bytes | None = None, title: str = "") -> None:
    """Display ``widget`` with a static PNG of its default state as the fallback.

    Args:
        widget: an ipywidgets widget.
        figure: a matplotlib figure of the default state (closed after rendering), or
        png: the same already rendered.
        title: text shown by plain-text frontends.
    """
    if figure is not None:
        png = fig_to_png(figure)
    if not in_notebook():
        return
    from IPython.display import display

    data = {
        "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                     "model_id": _model_id(widget)},
        "text/plain": title or f"{type(widget).__name__}: an interactive viewer (open in JupyterLab or Colab)",
    }
    if png is not None:
        data["image/png"] = base64.b64encode(png).decode("ascii")
    display(data, raw=True)


class LossCurve:
    """A live loss curve for :func:`vislab.train.fit`: updates in place, leaves a figure.

    In a notebook the curve is one display output that is redrawn at most every
    ``interval`` seconds and once at the end, so the saved notebook keeps the final
    static picture. Outside a notebook it does nothing.

    Args:
        metrics: training metrics to plot (default: "loss").
        evals: evaluation metrics to plot on a second panel (default: all that appear).
        title: the figure title.
        interval: minimum seconds between redraws.
        logy: logarithmic loss axis.
    """

    def __init__(self, metrics=("loss",), evals=None, title: str = "training", interval: float = 1.0,
                 logy: bool = False):
        self.metrics = tuple(metrics)
        self.evals = None if evals is None else tuple(evals)
        self.title = title
        self.interval = interval
        self.logy = logy
        self._handle = None
        self._last = float("-inf")                      # the first update always draws

    def figure(self, history):
        import matplotlib.pyplot as plt

        evals = [k for k in (history.evals if self.evals is None else self.evals) if history.evals.get(k)]
        fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(9 if evals else 5, 3), squeeze=False)
        ax = axes[0, 0]
        for name in self.metrics:
            vals = history.metrics.get(name)
            if not vals:
                continue
            line, = ax.plot(history.steps, vals, alpha=0.3)
            ax.plot(history.steps, history.smoothed(name), color=line.get_color(), label=name)
        ax.set_xlabel("step")
        ax.set_title(self.title)
        if self.logy:
            ax.set_yscale("log")
        ax.legend(loc="upper right")
        if evals:
            ax2 = axes[0, 1]
            for name in evals:
                ax2.plot(history.eval_steps, history.evals[name], marker="o", label=name)
            ax2.set_xlabel("step")
            ax2.set_title("evaluation")
            ax2.legend(loc="lower right")
        fig.tight_layout()
        return fig

    def _draw(self, history):
        if not in_notebook() or not history.steps:
            return
        from IPython.display import Image, display

        img = Image(data=fig_to_png(self.figure(history)), format="png")
        if self._handle is None:
            self._handle = display(img, display_id=True)
        else:
            self._handle.update(img)

    def update(self, history) -> None:
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self._draw(history)

    def close(self, history) -> None:
        self._draw(history)


# ------------------------------------------------------------------------------ uploads

def uploaded_files(value) -> list:
    """``[(name, bytes)]`` from a ``FileUpload`` widget's value, in either ipywidgets format.

    ipywidgets 8 gives a tuple of dicts ``{"name", "type", "size", "content": memoryview, ...}``;
    ipywidgets 7.x (Colab) gives a dict ``{name: {"metadata": {...}, "content": bytes}}``.
    """
    if isinstance(value, dict):                                   # ipywidgets 7
        return [(str(name), bytes(item["content"])) for name, item in value.items()]
    if isinstance(value, (tuple, list)):                          # ipywidgets 8
        return [(str(item["name"]), bytes(item["content"])) for item in value]
    raise TypeError(f"expected a FileUpload value (a tuple of dicts, or a dict on ipywidgets 7), "
                    f"got {type(value).__name__}")


def uploaded_images(value) -> tuple:
    """``({name: PIL.Image RGB}, [error messages])`` from a ``FileUpload`` value: every file
    Pillow can read becomes an image; every other file gives a message naming it."""
    import io

    from PIL import Image, UnidentifiedImageError

    images, errors = {}, []
    for name, data in uploaded_files(value):
        try:
            with Image.open(io.BytesIO(data)) as img:
                images[name] = img.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            errors.append(f"{name}: not an image Pillow can read ({type(err).__name__})")
    return images, errors


def upload_button(on_images, description: str = "upload"):
    """A ``FileUpload`` button for images that calls ``on_images({name: PIL.Image}, errors)``
    after each upload, on ipywidgets 7 and 8 alike. Returns the widget."""
    import ipywidgets as W

    button = W.FileUpload(accept="image/*", multiple=False, description=description)

    def changed(change):
        if change["new"]:
            on_images(*uploaded_images(change["new"]))

    button.observe(changed, names="value")
    return button
