"""vislab: the readable implementations behind the vision-encoders course.

One module per idea, named after the chapter that teaches it (``patching``, ``vit``,
``clip``, ``siglip``, ``dino``, ``mae``/``eva``, ``internvit``, ``vq``, ``anyres``), around a
small core (``runtime``, ``shapes``, ``images``, ``train``, ``checkpoints``, ``probes``,
``check``, ``widgets``, ``pretrained``, ``pretrain``, ``book``). Importing vislab sets no
global state.
"""

from __future__ import annotations

import inspect

__version__ = "0.1.0"
__all__ = ["show_source", "__version__"]


def show_source(obj, lines: tuple | None = None) -> None:
    """Print the source of a vislab function, class or module with syntax highlighting.

    In a notebook it renders as highlighted HTML (with a plain-text twin for nbval and
    terminals); elsewhere it prints plain text.

    Args:
        obj: a function, class, method or module.
        lines: optional ``(first, last)`` line numbers (1-based, inclusive) within it.
    """
    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise TypeError(f"cannot show the source of {obj!r}: {err}") from err
    if lines is not None:
        first, last = lines
        source = "\n".join(source.splitlines()[first - 1:last]) + "\n"
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
    module = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
    header = f"# {module}.{name}" if module and module != name else f"# {name}"
    from vislab.widgets.core import in_notebook

    if not in_notebook():
        print(header)
        print(source)
        return
    from IPython.display import display
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    html = highlight(source, PythonLexer(), HtmlFormatter(noclasses=True, style="default"))
    display({"text/html": f"<div style='font-size:12px'><b>{header[2:]}</b>{html}</div>",
             "text/plain": f"{header}\n{source}"}, raw=True)
