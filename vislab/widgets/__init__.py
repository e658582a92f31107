"""Viewers for the chapters, built from core ipywidgets only.

``core`` holds what they share (:func:`show` with a static fallback, :class:`LossCurve`);
each chapter's viewers live in a module of their own (``patches``, ``attention``, ...),
imported by the chapter that uses them.
"""

from vislab.widgets.core import LossCurve, fig_to_png, in_notebook, show

__all__ = ["LossCurve", "fig_to_png", "in_notebook", "show"]
