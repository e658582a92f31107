"""Exercise handouts for lecturers, and the static rule for a chapter's exercises.

``python -m vislab.book handouts [chapters] [--out DIR]`` (also run by ``book build``) writes,
per chapter, from its ``.py`` source alone (offline, nothing executed):

- ``NN_name.exercises.ipynb``: every cell tagged ``solution`` removed (solution code and the
  questionnaire's answers), outputs empty: the notebook to hand out;
- ``NN_name.solutions.ipynb``: every cell, the solution cells shown (no ``source_hidden`` and,
  for Colab, no ``cellView: form``),
  outputs empty: the lecturer's copy.

``exercise_problems(nb)`` is the rule a chapter's exercises follow (for ``book check``): at least
four exercises of at least three kinds, read from the ``vislab.check`` calls in the cells; every
``exercise`` cell says what to do with a TODO and is followed by a ``solution`` cell; a
questionnaire (a markdown cell headed ``## Questionnaire`` with 8-12 numbered questions)
followed by a markdown cell tagged ``solution`` whose first line is ``**Answers**``; and no
cell uses a name that only a solution cell defines (the handout would stop there).
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

from vislab.check import KINDS

__all__ = ["exercise_calls", "exercise_problems", "exercises_only", "with_solutions", "write_handouts"]

CHECKS = ("exercise", "debug", "predict", "answer")               # vislab.check's self-checks
DEFAULT_KIND = {"exercise": "build", "debug": "debug", "predict": "predict", "answer": "ablate"}
MIN_EXERCISES, MIN_KINDS = 4, 3
QUESTIONS = (8, 12)
ANSWERS = "**Answers**"

_ID = re.compile(r"^Exercise (\d+[a-z]?)\b")
_QUESTIONNAIRE = re.compile(r"^##\s+Questionnaire\s*$", re.M)
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S", re.M)


def _tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []))


def _python(source: str) -> str:
    """A cell's source as plain Python (IPython's own transformer turns magics into calls)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _literal_start(node):
    """The text of a string literal, or the literal start of an f-string; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value
    return None


def _is_check(func) -> str | None:
    """'predict' for ``check.predict`` or ``vislab.check.predict``; None for anything else."""
    if not isinstance(func, ast.Attribute) or func.attr not in CHECKS:
        return None
    owner = func.value
    name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else None
    return func.attr if name == "check" else None


def exercise_calls(nb) -> tuple:
    """The self-check calls in a notebook's code cells, and the problems reading them.

    Returns ``(calls, problems)``; each call is a dict with ``cell`` (1-based), ``function``,
    ``exercise`` (the id, "3b"), ``kind`` and ``solution`` (a solution call: ``solution=True``
    or "(solution)" in the name, as ``vislab.check`` reads it).
    """
    calls, problems = [], []
    for i, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code" or "check." not in cell.source:
            continue
        try:
            tree = ast.parse(_python(cell.source))
        except SyntaxError as err:
            problems.append(f"cell {i}: cannot be parsed to find its checks ({err.msg}, line {err.lineno})")
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not (fn := _is_check(node.func)):
                continue
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            what_node = node.args[0] if node.args else kw.get("what")
            what = _literal_start(what_node) if what_node is not None else None
            m = _ID.match(what or "")
            if not m:
                problems.append(f"cell {i}: check.{fn}(...) must be named by a literal 'Exercise N: ...'")
                continue
            kind = DEFAULT_KIND[fn]
            if fn in ("exercise", "answer") and "kind" in kw:
                if not (isinstance(kw["kind"], ast.Constant) and isinstance(kw["kind"].value, str)):
                    problems.append(f"cell {i}: the kind of check.{fn}(...) must be a literal string")
                    continue
                kind = kw["kind"].value
                if kind not in KINDS:
                    problems.append(f"cell {i}: kind {kind!r} is not one of {', '.join(KINDS)}")
                    continue
            sol = kw.get("solution")
            solution = "(solution)" in what or (isinstance(sol, ast.Constant) and sol.value is True)
            calls.append({"cell": i, "function": fn, "exercise": m.group(1), "kind": kind, "solution": solution})
    return calls, problems


def _first_line(cell) -> str:
    lines = [line.strip() for line in cell.source.strip().splitlines()]
    return lines[0] if lines else ""


def _is_answers(cell) -> bool:
    return cell.cell_type == "markdown" and _first_line(cell) == ANSWERS


def _questionnaire_problems(nb) -> list:
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and _QUESTIONNAIRE.search(c.source)]
    if not found:
        return ["no questionnaire: a markdown cell headed '## Questionnaire' with "
                f"{QUESTIONS[0]}-{QUESTIONS[1]} numbered questions"]
    if len(found) > 1:
        return [f"cells {', '.join(str(i + 1) for i in found)}: more than one '## Questionnaire'"]
    i = found[0]
    problems = []
    questions = len(_NUMBERED.findall(nb.cells[i].source.split("## Questionnaire", 1)[-1]))
    if not QUESTIONS[0] <= questions <= QUESTIONS[1]:
        problems.append(f"cell {i + 1}: the questionnaire has {questions} numbered questions; "
                        f"it needs {QUESTIONS[0]}-{QUESTIONS[1]}")
    nxt = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
    if nxt is None or nxt.cell_type != "markdown" or "solution" not in _tags(nxt) or not _is_answers(nxt):
        problems.append(f"cell {i + 1}: the questionnaire must be followed by a markdown cell tagged "
                        f"'solution' whose first line is {ANSWERS}")
    else:
        answers = len(_NUMBERED.findall(nxt.source))
        if answers != questions:
            problems.append(f"cell {i + 2}: {answers} numbered answers for {questions} questions")
    return problems


def exercise_problems(nb) -> list:
    """What a chapter notebook's exercises and questionnaire lack; an empty list means none."""
    calls, problems = exercise_calls(nb)
    kinds: dict = {}
    for c in calls:
        kinds.setdefault(c["exercise"], set()).add(c["kind"])
    for ex, ks in kinds.items():
        if len(ks) > 1:
            problems.append(f"Exercise {ex} is checked as {' and '.join(sorted(ks))}; one exercise has one kind")
        if not any(c["solution"] for c in calls if c["exercise"] == ex):
            problems.append(f"Exercise {ex} has no solution call (solution=True) to prove its check")
    if len(kinds) < MIN_EXERCISES:
        problems.append(f"{len(kinds)} exercise(s) checked with vislab.check; at least {MIN_EXERCISES} are needed")
    found = sorted(set().union(*kinds.values())) if kinds else []
    if len(found) < MIN_KINDS:
        problems.append(f"exercises of {len(found)} kind(s) ({', '.join(found) or 'none'}); at least {MIN_KINDS} "
                        f"of {', '.join(KINDS)} are needed")
    cells = nb.cells
    for i, cell in enumerate(cells):
        if "exercise" not in _tags(cell):
            continue
        if "TODO" not in cell.source:
            problems.append(f"cell {i + 1}: an exercise cell must say what to do with a TODO")
        following = next((j for j in range(i + 1, len(cells)) if "exercise" in _tags(cells[j])
                          or ("solution" in _tags(cells[j]) and cells[j].cell_type == "code")), None)
        if following is None or "solution" not in _tags(cells[following]):
            problems.append(f"cell {i + 1}: an exercise cell must be followed by its solution cell "
                            "(a code cell tagged 'solution') before the next exercise")
    return problems + _handout_problems(nb) + _questionnaire_problems(nb)


def _defined(tree) -> set:
    """The names a cell binds at its top level (defs, classes, assignments, imports)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        else:
            names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names


def _handout_problems(nb) -> list:
    """Names that only a solution cell defines but a later cell uses: without the solution
    cells (the exercises handout) that cell would stop "Run All" with a NameError."""
    problems, from_solution, elsewhere = [], {}, set()
    for i, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_python(cell.source))
        except SyntaxError:
            continue                                  # reported by exercise_calls when it holds a check
        if "solution" in _tags(cell):
            for name in _defined(tree) - elsewhere:
                from_solution.setdefault(name, i)
            continue
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        elsewhere |= _defined(tree)
        for name in sorted(used & set(from_solution) - elsewhere):
            problems.append(f"cell {i}: uses {name}, which only solution cell {from_solution[name]} defines "
                            "(the exercises handout would stop there)")
    return problems


def _blank_outputs(nb) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None


def exercises_only(nb):
    """The learners' handout: no solution cells, no questionnaire answers, empty outputs."""
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if "solution" not in _tags(c) and not _is_answers(c)]
    _blank_outputs(out)
    return out


def with_solutions(nb):
    """The lecturer's copy: every cell, the solution cells not hidden, empty outputs."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        jupyter = cell.metadata.get("jupyter")
        if "solution" in _tags(cell) and jupyter is not None:
            jupyter.pop("source_hidden", None)
            if not jupyter:
                del cell.metadata["jupyter"]
        if "solution" in _tags(cell):
            cell.metadata.pop("cellView", None)                          # Colab: the code shown
    _blank_outputs(out)
    return out


def write_handouts(chapters=None, root=None, out=None) -> list:
    """Write both handouts of each chosen chapter (default: all) to ``out`` (default
    ``_build/handouts``); returns the files written."""
    import nbformat

    from vislab.book import _select, load_book, notebook_from_py

    book = load_book(root)
    out = Path(out) if out else book["root"] / "_build" / "handouts"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ch in _select(book["chapters"], chapters):
        nb = notebook_from_py(ch.file)
        for suffix, version in (("exercises", exercises_only(nb)), ("solutions", with_solutions(nb))):
            nbformat.validate(version)
            path = out / f"{ch.file.stem}.{suffix}.ipynb"
            nbformat.write(version, path)
            written.append(path)
        removed = len(nb.cells) - len(exercises_only(nb).cells)
        print(f"{ch.file.stem}: {ch.file.stem}.exercises.ipynb ({removed} solution cell(s) removed), "
              f"{ch.file.stem}.solutions.ipynb")
    print(f"handouts: {len(written)} notebooks in {out}")
    return written
