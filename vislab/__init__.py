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


def _is_check(stmt) -> bool:
    """An argument check: a call to a ``check_*``/``_check*`` validator, or an ``if`` that only raises."""
    import ast

    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        f = stmt.value.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        return name.startswith(("check_", "_check"))
    if isinstance(stmt, ast.If):
        branches = [stmt.body] + ([stmt.orelse] if stmt.orelse else [])
        return all(all(isinstance(s, ast.Raise) or _is_check(s) for s in b) for b in branches)
    return False


def _check_lines(source: str) -> dict:
    """``{first line: (last line, indent)}`` (1-based) of every argument check at the top level of a
    function body in ``source``; nested checks (inside loops, branches) are left in place."""
    import ast
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return {}
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for stmt in node.body:
                if _is_check(stmt):
                    found[stmt.lineno] = (stmt.end_lineno, stmt.col_offset)
    return found


def _fold_checks(source: str, keep=None) -> str:
    """``source`` without its argument checks; each run of folded lines becomes one comment.
    ``keep``: optional ``(first, last)`` lines (1-based, of the whole source) to show."""
    lines = source.splitlines()
    indent_of = len(lines[0]) - len(lines[0].lstrip()) if lines else 0
    drop, marks = set(), {}
    for first, (last, col) in _check_lines(source).items():
        drop.update(range(first, last + 1))
        marks[first] = col + indent_of
    out, folding = [], False
    first, last = keep if keep is not None else (1, len(lines))
    for i, line in enumerate(lines, start=1):
        if not first <= i <= last:
            continue
        if i in drop:
            if not folding:
                out.append(" " * marks.get(i, 0) + "# ... argument checks folded (show_source(..., checks=True) shows them)")
            folding = True
            continue
        if folding and not line.strip():
            continue                                  # a blank line inside a run of checks
        folding = False
        out.append(line)
    return "\n".join(out) + "\n"


def show_source(obj, lines: tuple | None = None, checks: bool = False) -> None:
    """Print the source of a vislab function, class or module with syntax highlighting.

    In a notebook it renders as highlighted HTML (with a plain-text twin for nbval and
    terminals); elsewhere it prints plain text.

    Args:
        obj: a function, class, method or module.
        lines: optional ``(first, last)`` line numbers (1-based, inclusive) within it.
        checks: show the argument checks. By default they are folded away, so the lines a
            chapter shows are the paper's: every top-level statement of a function body that
            calls a ``check_*`` validator or is an ``if`` that only raises is dropped, and each
            run of them is replaced by one comment line saying so.
    """
    if not isinstance(checks, bool):
        raise TypeError(f"checks must be True or False, got {checks!r}")
    if lines is not None and not (isinstance(lines, (tuple, list)) and len(lines) == 2
                                  and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in lines)):
        raise TypeError(f"lines must be a (first, last) pair of line numbers >= 1, got {lines!r}")
    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise TypeError(f"cannot show the source of {obj!r}: {err}") from err
    if not checks:
        source = _fold_checks(source, lines)          # line numbers count in the unfolded source
    elif lines is not None:
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
