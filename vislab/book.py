"""The course's command line: ``python -m vislab.book check | run | sync``.

    python -m vislab.book check            # book.yml and the chapter pairs agree
    python -m vislab.book sync             # regenerate every chapters/*.ipynb from its .py
    python -m vislab.book sync --record 01 # ... and record the reference outputs nbval checks
    python -m vislab.book run              # execute every chapter offline: seconds, peak MB
    python -m vislab.book run 01 vit       # some chapters (by number, id or file name)
    python -m vislab.book run --setting portable   # ... under other CPU kernels and one thread
    python -m vislab.book claims 02        # every number in the prose is in an output, the code, or cited
    python -m vislab.book badges           # rewrite README's chapter table (Colab/Binder/slides)
    python -m vislab.book build            # _build/site: HTML pages and reveal.js slides

``book.yml`` is the one source of truth for chapter order, titles, files, objectives and
time budgets. The ``.py`` of each pair (Jupytext percent format) is what people edit; the
``.ipynb`` is generated from it without volatile headers, so that both stay byte-stable
across machines. The only outputs it stores are the references of the cells marked
``# NBVAL_CHECK_OUTPUT`` (shapes, counts, parameter numbers), which nbval compares with a
fresh run; ``sync --record`` executes the chapter to (re)write them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KNOWN_TAGS", "load_book", "check", "sync", "run", "main"]

KNOWN_TAGS = {
    "online",        # needs internet: skipped by nbval and by `run`
    "exercise",      # the learner's cell, with a TODO
    "solution",      # a hidden solution; runs under test so the self-check is proven
    "slide", "subslide", "fragment", "notes", "skip-slide",   # lecture export
    "hide-input",    # shown without its code in the HTML export
}
MEMORY_LIMIT_MB = 2048          # Binder's limit
# Named CPU kernel settings a chapter can be run under (``book run --setting NAME``). CI runs the
# chapters under "default" and "portable": PyTorch's generic (non-vectorised) ATen kernels, oneDNN
# capped at AVX2 and one OpenMP/MKL thread, so that an output that depends on the CPU's kernels
# shows up as a difference before it reaches a learner's machine.
KERNEL_SETTINGS = {
    "default": {},
    "portable": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2",
                 "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}
COURSE_CAP_S = 120              # no chapter may be budgeted above this
NOTEBOOK_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}
REQUIRED_CHAPTER_KEYS = ("id", "file", "title", "objectives", "budget_s")


@dataclass(frozen=True)
class Chapter:
    id: str
    file: Path          # the .py
    title: str
    objectives: tuple
    budget_s: float
    memory_mb: float = MEMORY_LIMIT_MB

    @property
    def notebook(self) -> Path:
        return self.file.with_suffix(".ipynb")

    @property
    def number(self) -> str:
        m = re.match(r"(\d+)_", self.file.name)
        return m.group(1) if m else ""


class BookError(ValueError):
    """book.yml is malformed."""


def _root(root=None) -> Path:
    if root is not None:
        return Path(root)
    from vislab.paths import repo_root

    return repo_root()


def load_book(root=None) -> dict:
    """Read book.yml into ``{"title", "repository", "branch", "chapters": [Chapter...]}``."""
    import yaml

    root = _root(root)
    path = root / "book.yml"
    if not path.exists():
        raise BookError(f"no book.yml in {root}")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise BookError("book.yml must be a mapping with title, repository, branch and chapters")
    problems = [f"book.yml: missing '{k}'" for k in ("title", "repository", "branch", "chapters") if k not in raw]
    if problems:
        raise BookError("\n".join(problems))
    chapters = []
    for i, entry in enumerate(raw["chapters"] or []):
        missing = [k for k in REQUIRED_CHAPTER_KEYS if k not in (entry or {})]
        if missing:
            raise BookError(f"book.yml: chapter #{i + 1} lacks {', '.join(missing)}")
        budget = entry["budget_s"]
        if not isinstance(budget, (int, float)) or budget <= 0:
            raise BookError(f"book.yml: chapter {entry['id']!r} budget_s must be a positive number, got {budget!r}")
        objectives = entry["objectives"]
        if not isinstance(objectives, list) or not objectives:
            raise BookError(f"book.yml: chapter {entry['id']!r} needs a non-empty list of objectives")
        chapters.append(Chapter(id=str(entry["id"]), file=root / entry["file"], title=str(entry["title"]),
                                objectives=tuple(str(o) for o in objectives), budget_s=float(budget),
                                memory_mb=float(entry.get("memory_mb", MEMORY_LIMIT_MB))))
    langs = raw.get("languages") or []
    if not isinstance(langs, list) or not all(isinstance(x, dict) and "code" in x for x in langs):
        raise BookError("book.yml: 'languages' must be a list of mappings with a 'code' (see the ko entry)")
    return {"title": raw["title"], "repository": raw["repository"], "branch": raw["branch"],
            "chapters": chapters, "root": root, "languages": langs}


# ----------------------------------------------------------------------------- Colab
COLAB_BEGIN = "# --- Colab bootstrap (written from book.yml by `python -m vislab.book sync`; does nothing elsewhere) ---"
COLAB_END = "# --- end of the Colab bootstrap ---"


def colab_bootstrap(book) -> str:
    """The first lines of every chapter: on Colab, fetch the course and install vislab with
    ``--no-deps`` so that Colab's own torch, numpy and ipywidgets stay as they are; turn on
    Colab's widget manager. Elsewhere the block only imports ``sys``."""
    from vislab.site import repo_slug

    _, repo = repo_slug(book["repository"])
    home = f"/content/{repo}"
    return "\n".join([
        COLAB_BEGIN,
        "import sys",
        "",
        'if "google.colab" in sys.modules:  # pragma: no cover - runs on Colab only',
        "    import os",
        "    import subprocess",
        "",
        f'    if not os.path.isdir("{home}"):',
        f'        subprocess.run(["git", "clone", "-q", "--depth", "1", "-b", "{book["branch"]}",',
        f'                        "{book["repository"]}", "{home}"], check=True)',
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", "{home}"], check=True)',
        f'    sys.path.insert(0, "{home}")',
        f'    os.chdir("{home}/chapters")',
        "    from google.colab import output",
        "",
        "    output.enable_custom_widget_manager()",
        COLAB_END,
    ])


def _with_bootstrap(text: str, block: str) -> str:
    """``text`` (a chapter .py) with its bootstrap block replaced by ``block``."""
    if COLAB_BEGIN not in text or COLAB_END not in text:
        return text
    head, rest = text.split(COLAB_BEGIN, 1)
    _, tail = rest.split(COLAB_END, 1)
    return head + block + tail


# ----------------------------------------------------------------------------- pairs
def _cell_id(index: int, cell) -> str:
    digest = hashlib.sha1(f"{index}:{cell.cell_type}:{cell.source}".encode()).hexdigest()[:12]
    return f"c{index:03d}-{digest}"


CHECK_MARK = "NBVAL_CHECK_OUTPUT"


def is_checked(cell) -> bool:
    """A code cell whose outputs nbval compares with the stored reference."""
    return cell.cell_type == "code" and CHECK_MARK in cell.source


def notebook_from_py(py: Path, reference=None):
    """The notebook that ``py`` describes, with deterministic ids and metadata.

    Outputs are empty except for checked cells, whose reference outputs are taken from
    ``reference`` (a notebook, usually the current .ipynb) where the same source has them.
    """
    import jupytext
    import nbformat

    nb = jupytext.read(py, fmt="py:percent")
    nb.metadata = nbformat.from_dict(json.loads(json.dumps(NOTEBOOK_METADATA)))
    nb.nbformat, nb.nbformat_minor = 4, 5
    for i, cell in enumerate(nb.cells):
        cell.id = _cell_id(i, cell)
        keep = {}
        if cell.metadata.get("tags"):
            keep["tags"] = list(cell.metadata["tags"])
        if "solution" in keep.get("tags", []):
            keep["jupyter"] = {"source_hidden": True}                # JupyterLab collapses the input
            if cell.cell_type == "code":
                keep["cellView"] = "form"                            # Colab shows "Show code" instead
        elif cell.metadata.get("jupyter"):
            keep["jupyter"] = dict(cell.metadata["jupyter"])
        cell.metadata = nbformat.from_dict(keep)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    if reference is not None:
        _copy_references(reference, nb)
    return nb


def _copy_references(source, target) -> None:
    """Copy the outputs of checked cells from ``source`` to ``target`` by identical source."""
    stored = {}
    for cell in source.cells:
        if is_checked(cell) and cell.get("outputs"):
            stored.setdefault(cell.source, cell.outputs)
    for i, cell in enumerate(target.cells):
        if is_checked(cell) and cell.source in stored:
            cell.outputs = _clean_outputs(stored[cell.source])
            cell.execution_count = i + 1


def _clean_outputs(outputs) -> list:
    import nbformat

    clean = []
    for out in outputs:
        out = nbformat.from_dict(json.loads(json.dumps(out)))
        if out.get("output_type") in ("display_data", "execute_result"):
            out["metadata"] = {}                       # drop volatile renderer metadata
        if out.get("output_type") == "execute_result":
            out["execution_count"] = None
        clean.append(out)
    return clean


def _current_notebook(ch):
    import nbformat

    return nbformat.read(ch.notebook, as_version=4) if ch.notebook.exists() else None


def _notebook_text(nb) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"


def sync(root=None, chapters=None, record: bool = False, timeout: int = 600) -> list:
    """Write every chapter's ``.ipynb`` from its ``.py``; returns the files that changed.

    Reference outputs of checked cells are kept where their source is unchanged; with
    ``record=True`` the chapter is executed offline and its checked outputs re-recorded.
    """
    book = load_book(root)
    changed = []
    block = colab_bootstrap(book)
    for ch in _select(book["chapters"], chapters):
        source = ch.file.read_text()
        if _with_bootstrap(source, block) != source:
            ch.file.write_text(_with_bootstrap(source, block))
            changed.append(ch.file)
        if record:
            executed, row = _execute(ch, timeout)
            if row["status"] == "error":
                raise BookError(f"{ch.file.name}: cannot record outputs, the chapter fails: {row['error']}")
            nb = notebook_from_py(ch.file, reference=executed)
        else:
            nb = notebook_from_py(ch.file, reference=_current_notebook(ch))
        text = _notebook_text(nb)
        if not ch.notebook.exists() or ch.notebook.read_text() != text:
            ch.notebook.write_text(text)
            changed.append(ch.notebook)
    return changed + _sync_editions(book, _select(book["chapters"], chapters))


def _write_if_changed(path: Path, text: str, changed: list) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(path)


def _sync_editions(book, chapters) -> list:
    """Generate each translated edition of ``chapters`` (see :mod:`vislab.i18n`): the .py from
    the English chapter and the translation file, its .ipynb paired like the English one (the
    checked cells' reference outputs are the English notebook's, the code being the same), and
    the edition's glossary page. Chapters without a translation file are left out."""
    from vislab import i18n

    changed = []
    for lang in i18n.languages(book):
        if lang.glossary is not None and lang.glossary.exists() and not i18n.glossary_problems(lang.glossary, lang.code):
            _write_if_changed(lang.chapters_dir / "glossary.md", i18n.glossary_markdown(lang, book), changed)
        for ch in chapters:
            if not i18n.translation_path(lang, ch).exists():
                continue
            py = i18n.edition_path(lang, ch)
            _write_if_changed(py, i18n.edition_text(lang, ch), changed)
            nb = notebook_from_py(py, reference=_current_notebook(ch))
            _write_if_changed(py.with_suffix(".ipynb"), _notebook_text(nb), changed)
    return changed


def _edition_problems(book) -> list:
    """The translated editions' drift: stale, todo or missing translations, code that differs
    from the English chapter, generated files out of date, the glossary."""
    from vislab import i18n

    root = Path(book["root"])
    problems = []
    try:
        langs = i18n.languages(book)
    except ValueError as err:
        return [str(err)]
    for lang in langs:
        if lang.glossary is None or not lang.glossary.exists():
            problems.append(f"book.yml: the {lang.code} edition needs a glossary file (glossary: i18n/glossary.yml)")
        else:
            glossary = i18n.glossary_problems(lang.glossary, lang.code)
            problems += glossary
            page = lang.chapters_dir / "glossary.md"
            if not glossary and (not page.exists() or page.read_text(encoding="utf-8") != i18n.glossary_markdown(lang, book)):
                problems.append(f"{page.relative_to(root)}: out of date with {lang.glossary.relative_to(root)}; "
                                "run `python -m vislab.book sync`")
        for ch in book["chapters"]:
            problems += i18n.edition_problems(lang, ch, root)
        known = {i18n.edition_path(lang, ch).name for ch in book["chapters"]}
        known |= {n.replace(".py", ".ipynb") for n in known}
        for path in sorted(lang.chapters_dir.glob("[0-9]*_*")) if lang.chapters_dir.exists() else []:
            if path.name not in known:
                problems.append(f"{path.relative_to(root)}: not an edition of a chapter in book.yml (remove it)")
        for path in sorted(lang.source_dir.glob("*.md")) if lang.source_dir.exists() else []:
            if path.stem not in {ch.file.stem for ch in book["chapters"]}:
                problems.append(f"{path.relative_to(root)}: translates no chapter in book.yml (remove it)")
    return problems


def check(root=None) -> list:
    """Every problem with book.yml and the chapters, as readable lines (empty = all good).

    Besides the manifest and the pairing, each chapter's exercises must follow
    :func:`vislab.handouts.exercise_problems` (four or more exercises of three or more kinds,
    hidden solutions, a questionnaire with hidden answers).
    """
    import nbformat

    from vislab.handouts import exercise_problems

    try:
        book = load_book(root)
    except BookError as err:
        return str(err).splitlines()
    root = book["root"]
    problems = []
    ids = [c.id for c in book["chapters"]]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"book.yml: chapter id {dup!r} appears more than once")
    listed = set()
    for ch in book["chapters"]:
        rel = ch.file.relative_to(root) if ch.file.is_relative_to(root) else ch.file
        listed.add(ch.file.resolve())
        if ch.file.suffix != ".py":
            problems.append(f"{rel}: book.yml must name the .py of the pair")
            continue
        if ch.budget_s > COURSE_CAP_S:
            problems.append(f"{rel}: budget_s {ch.budget_s:g} exceeds the course cap of {COURSE_CAP_S} s")
        if not ch.file.exists():
            problems.append(f"{rel}: listed in book.yml but missing")
            continue
        if not ch.notebook.exists():
            problems.append(f"{rel}: no paired {ch.notebook.name} (run `python -m vislab.book sync`)")
            continue
        actual = nbformat.read(ch.notebook, as_version=4)
        try:
            expected = notebook_from_py(ch.file, reference=actual)
        except Exception as err:  # a malformed .py is reported, not raised
            problems.append(f"{rel}: jupytext cannot read it: {err}")
            continue
        if _notebook_text(expected) != ch.notebook.read_text():
            diff = _first_difference(expected, actual)
            problems.append(f"{ch.notebook.relative_to(root)}: out of sync with {ch.file.name} ({diff}); "
                            "run `python -m vislab.book sync`")
        problems += [f"{rel}: {p}" for p in _cell_problems(expected)]
        problems += [f"{rel}: exercises: {p}" for p in exercise_problems(expected)]
        first_code = next((c.source for c in expected.cells if c.cell_type == "code"), "")
        if colab_bootstrap(book) not in first_code:
            problems.append(f"{rel}: the first code cell must start with the Colab bootstrap block "
                            f"({COLAB_BEGIN!r} ... {COLAB_END!r}); add the two marker lines and run "
                            "`python -m vislab.book sync`")
        unrecorded = [i for i, c in enumerate(expected.cells, 1) if is_checked(c) and not c.outputs]
        if unrecorded:
            problems.append(f"{rel}: checked cell(s) {unrecorded} have no recorded reference output "
                            f"(run `python -m vislab.book sync --record {ch.id}`)")
    for path in sorted((root / "chapters").glob("[0-9]*_*.py")):
        if path.resolve() not in listed:
            problems.append(f"chapters/{path.name}: not listed in book.yml")
    for path in sorted((root / "chapters").glob("[0-9]*_*.ipynb")):
        if path.with_suffix(".py").resolve() not in listed:
            problems.append(f"chapters/{path.name}: no .py source listed in book.yml")
    problems += _edition_problems(book)
    problems += _readme_problems(book)
    return problems


def _readme_problems(book) -> list:
    from vislab.site import update_readme

    if not (book["root"] / "README.md").exists():
        return ["README.md is missing"]
    try:
        drift, _ = update_readme(book, write=False)
    except ValueError as err:
        return [str(err)]
    return ["README.md: the chapter table is out of date with book.yml (run `python -m vislab.book badges`)"] if drift else []


def _first_difference(expected, actual) -> str:
    if len(expected.cells) != len(actual.cells):
        return f"{len(expected.cells)} cells in the .py, {len(actual.cells)} in the .ipynb"
    for i, (a, b) in enumerate(zip(expected.cells, actual.cells)):
        if a.cell_type != b.cell_type or a.source != b.source:
            return f"cell {i + 1} differs"
        if dict(a.metadata) != dict(b.metadata):
            return f"cell {i + 1} metadata differs"
        if a.cell_type == "code" and not is_checked(a) and (b.get("outputs") or b.get("execution_count")):
            return f"cell {i + 1} stores outputs but is not a checked cell"
    return "metadata or ids differ"


def _cell_problems(nb) -> list:
    problems = []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    if not code_cells or "setup(" not in code_cells[0].source:
        problems.append("the first code cell must call vislab.runtime.setup(...) (imports, seed, device line)")
    for i, cell in enumerate(nb.cells, 1):
        tags = cell.metadata.get("tags", [])
        unknown = [t for t in tags if t not in KNOWN_TAGS and not t.startswith("nbval-")]
        if unknown:
            problems.append(f"cell {i}: unknown tag(s) {unknown}; known: {sorted(KNOWN_TAGS)}")
        if "exercise" in tags and "TODO" not in cell.source:
            problems.append(f"cell {i}: an exercise cell must say what to do with a TODO")
        if "exercise" in tags and "solution" in tags:
            problems.append(f"cell {i}: a cell cannot be both exercise and solution")
        if cell.cell_type == "code" and re.search(r"^\s*from\s+\S+\s+import\s+\*", cell.source, re.M):
            problems.append(f"cell {i}: no star imports in chapters")
        if cell.cell_type == "code" and "online" in tags and not online_cell_is_guarded(cell.source):
            problems.append(f"cell {i}: an online cell must be imports and one `if hub_available(\"what it shows\"):` "
                            "block (vislab.online), so that Run All offline prints one line instead of failing")
    return problems


def online_cell_is_guarded(source: str) -> bool:
    """True when a cell is only imports and ``if hub_available(...):`` blocks (no ``else`` that
    could need the network), so that offline it prints one line and ends without error."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    guarded = False
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.If) and isinstance(node.test, ast.Call) and not node.orelse:
            func = node.test.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name == "hub_available":
                guarded = True
                continue
        return False
    return guarded


# ----------------------------------------------------------------------------- run
def _select(chapters, wanted):
    if not wanted:
        return list(chapters)
    out = []
    for w in wanted:
        w = str(w)
        hits = [c for c in chapters if w in (c.id, c.number, c.number.lstrip("0"), c.file.name, c.file.stem,
                                             c.notebook.name)]
        if not hits:
            raise BookError(f"no chapter {w!r}; known: {', '.join(c.id for c in chapters)}")
        out += [c for c in hits if c not in out]
    return out


_PEAK_CODE = """
import json as _j, resource as _r, sys as _s
_k = 1 if _s.platform == 'darwin' else 1024
print('__VISLAB_PEAK__' + _j.dumps({'self': _r.getrusage(_r.RUSAGE_SELF).ru_maxrss * _k,
                                    'children': _r.getrusage(_r.RUSAGE_CHILDREN).ru_maxrss * _k}))
"""


def offline_notebook(ch: Chapter):
    """The chapter as run offline: from its .py, cells tagged ``online`` removed."""
    nb = notebook_from_py(ch.file)
    nb.cells = [c for c in nb.cells if "online" not in c.metadata.get("tags", [])]
    return nb


def run_chapter(ch: Chapter, timeout: int = 600, save: Path | None = None, setting: str = "default") -> dict:
    """Execute one chapter in a fresh kernel, offline, under a named kernel setting.

    Returns seconds, peak MB and status, plus how the checked outputs differ from the
    recorded ones (``checked_diffs``) and the numbers its prose states that no cell backs
    (``claims``, see :mod:`vislab.claims`).
    """
    import nbformat

    nb, row = _execute(ch, timeout, setting=setting)
    if row["status"] != "error":
        row["checked_diffs"] = checked_differences(_current_notebook(ch), nb)
        from vislab.claims import claims_problems

        row["claims"] = claims_problems(nb)
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save)
    return row


def _sanitizers() -> list:
    """The substitutions nbval applies before comparing (tests/nbval_sanitize.cfg)."""
    import configparser

    cfg = Path(__file__).resolve().parents[1] / "tests" / "nbval_sanitize.cfg"
    if not cfg.exists():
        return []
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(cfg)
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def _comparable(outputs, subs) -> list:
    """The outputs of a cell as nbval compares them: text of streams and text/plain, sanitised."""
    texts = []
    for out in outputs or []:
        if out.get("output_type") == "stream":
            text = out.get("text", "")
        elif out.get("output_type") in ("display_data", "execute_result"):
            data = out.get("data", {})
            text = data.get("text/plain", "")
            text = text if isinstance(text, str) else "".join(text)
        elif out.get("output_type") == "error":
            text = f"{out.get('ename')}: {out.get('evalue')}"
        else:
            continue
        for pattern, replace in subs:
            text = pattern.sub(replace, text)
        texts.append(text.rstrip("\n"))
    return ["\n".join(texts)] if texts else []


def checked_differences(recorded, executed) -> list:
    """How each checked cell's fresh output differs from the recorded reference.

    Returns ``[{"cell": n, "recorded": text, "now": text}]`` for the checked cells whose
    sanitised text differs (cells matched by source, as ``sync`` matches them).
    """
    if recorded is None:
        return []
    subs = _sanitizers()
    stored = {c.source: c.get("outputs", []) for c in recorded.cells if is_checked(c)}
    diffs = []
    index = {c.source: i for i, c in enumerate(recorded.cells, 1)}
    for cell in executed.cells:
        if not is_checked(cell) or cell.source not in stored:
            continue
        before, now = _comparable(stored[cell.source], subs), _comparable(cell.get("outputs", []), subs)
        if before != now:
            diffs.append({"cell": index[cell.source], "recorded": "\n".join(before), "now": "\n".join(now)})
    return diffs


def _execute(ch: Chapter, timeout: int, setting: str = "default"):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = offline_notebook(ch)
    nb.cells.append(nbformat.v4.new_code_cell(_PEAK_CODE, id="vislab-peak"))
    if setting not in KERNEL_SETTINGS:
        raise BookError(f"unknown kernel setting {setting!r}; known: {', '.join(KERNEL_SETTINGS)}")
    extra_env = KERNEL_SETTINGS[setting]
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MPLBACKEND", *extra_env)
    env_backup = {k: os.environ.get(k) for k in names}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra_env})
    os.environ.pop("MPLBACKEND", None)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(ch.file.parent)}})
    status, error = "ok", ""
    from vislab.memwatch import TreePeak

    watcher = TreePeak().start()          # the kernel and every process it starts
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        status = "error"
        error = str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__
    except Exception as err:  # kernel died, timeout: reported in the table, not raised
        status = "error"
        error = f"{type(err).__name__}: {err}"[:200]
    finally:
        for k, v in env_backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    tree_mb = watcher.stop() / 2**20
    peak_mb = None
    for out in nb.cells[-1].get("outputs", []):
        text = out.get("text", "")
        if "__VISLAB_PEAK__" in text:
            peak = json.loads(text.split("__VISLAB_PEAK__", 1)[1].strip())
            peak_mb = max((peak["self"] + peak["children"]) / 2**20, tree_mb)
    if status == "ok":
        nb.cells.pop()
        if seconds > ch.budget_s:
            status = "over time"
        elif peak_mb is not None and peak_mb > ch.memory_mb:
            status = "over memory"
    return nb, {"chapter": ch.id, "file": ch.file.name, "setting": setting, "seconds": round(seconds, 1),
            "budget_s": ch.budget_s, "peak_mb": None if peak_mb is None else round(peak_mb),
            "memory_mb": ch.memory_mb, "status": status, "error": error}


def format_table(rows) -> str:
    """The run table; below it, each checked output that differs from its recorded reference
    and each unbacked number in the prose."""
    setting = rows[0].get("setting", "default") if rows else "default"
    head = f"{'chapter':<22}{'seconds':>9}{'budget':>8}{'peak MB':>9}{'checked':>9}{'claims':>8}  status"
    lines = [f"kernel setting: {setting} {KERNEL_SETTINGS.get(setting) or ''}".rstrip(), head, "-" * len(head)]
    notes = []
    for r in rows:
        peak = "?" if r["peak_mb"] is None else str(r["peak_mb"])
        diffs, claims = r.get("checked_diffs"), r.get("claims")
        checked = "?" if diffs is None else ("same" if not diffs else f"{len(diffs)} diff")
        claimed = "?" if claims is None else str(len(claims))
        lines.append(f"{r['chapter']:<22}{r['seconds']:>9.1f}{r['budget_s']:>8.0f}{peak:>9}{checked:>9}{claimed:>8}"
                     f"  {r['status']}" + (f" ({r['error']})" if r["error"] else ""))
        for d in diffs or []:
            notes.append(f"{r['file']} cell {d['cell']}: checked output differs from the recorded one\n"
                         f"    recorded: {d['recorded']!r}\n    now:      {d['now']!r}")
        for c in claims or []:
            notes.append(f"{r['file']} {c}")
    total = sum(r["seconds"] for r in rows)
    lines.append("-" * len(head))
    lines.append(f"{'total':<22}{total:>9.1f}")
    return "\n".join(lines + ([""] + notes if notes else []))


def run(chapters=None, root=None, json_path=None, save_dir=None, timeout: int = 600,
        setting: str = "default") -> list:
    """Run chapters (all by default) under a kernel setting, print the table, write it as JSON;
    returns the rows."""
    book = load_book(root)
    rows = []
    for ch in _select(book["chapters"], chapters):
        print(f"running {ch.file.name} ({setting}) ...", flush=True)
        save = Path(save_dir) / ch.notebook.name if save_dir else None
        rows.append(run_chapter(ch, timeout=timeout, save=save, setting=setting))
    print(format_table(rows))
    json_path = Path(json_path) if json_path else book["root"] / "_build" / "book-run.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"python": sys.version.split()[0], "setting": setting, "rows": rows},
                                    indent=2) + "\n")
    print(f"table written to {json_path}")
    return rows


def build(chapters=None, root=None, out=None, timeout: int = 600) -> Path:
    """Execute the chapters offline and write the static site and slides; returns the folder."""
    from vislab.site import build_site

    book = load_book(root)
    executed, rows = {}, {}
    for ch in _select(book["chapters"], chapters):
        print(f"executing {ch.file.name} ...", flush=True)
        nb, row = _execute(ch, timeout)
        if row["status"] == "error":
            raise BookError(f"{ch.file.name} fails, the site is not built: {row['error']}")
        executed[ch.id], rows[ch.id] = nb, row
    out = Path(out) if out else book["root"] / "_build" / "site"
    files = build_site(book, executed, out, rows)
    from vislab.handouts import write_handouts

    write_handouts(chapters, root=root)                # _build/handouts: exercises-only and solutions
    print(format_table(list(rows.values())))
    print(f"site: {len(files)} files in {out} (open {out / 'index.html'})")
    return out


# ----------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vislab.book", description="The course's command line.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="book.yml and the chapter pairs agree")
    p_sync = sub.add_parser("sync", help="regenerate the .ipynb of each chapter from its .py")
    p_sync.add_argument("chapters", nargs="*")
    p_sync.add_argument("--record", action="store_true",
                        help="execute the chapters offline and record the outputs of NBVAL_CHECK_OUTPUT cells")
    p_run = sub.add_parser("run", help="execute chapters offline; print seconds and peak memory")
    p_run.add_argument("chapters", nargs="*", help="numbers, ids or file names (default: all)")
    p_run.add_argument("--json", default=None, help="where to write the table (default: _build/book-run.json)")
    p_run.add_argument("--save", default=None, help="folder for the executed notebooks")
    p_run.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds")
    p_run.add_argument("--strict", action="store_true",
                       help="exit non-zero when a chapter is over time or memory, a checked output differs "
                            "from its recorded reference, or its prose states a number no cell backs")
    p_run.add_argument("--setting", default="default", choices=sorted(KERNEL_SETTINGS),
                       help="CPU kernel setting of the kernel's environment (portable: generic ATen kernels, "
                            "oneDNN AVX2, one thread)")
    p_claims = sub.add_parser("claims", help="check that every number in the prose is in an output, the code, or cited")
    p_claims.add_argument("chapters", nargs="*")
    p_claims.add_argument("--executed", default=None,
                          help="folder of executed notebooks (from `run --save`); default: execute the chapters")
    sub.add_parser("badges", help="rewrite README's chapter table from book.yml")
    p_build = sub.add_parser("build", help="static HTML site and reveal.js slides of the executed chapters")
    p_build.add_argument("chapters", nargs="*")
    p_build.add_argument("--out", default=None, help="output folder (default: _build/site)")
    p_hand = sub.add_parser("handouts", help="per chapter an exercises-only notebook and a solutions version")
    p_hand.add_argument("chapters", nargs="*", help="numbers, ids or file names (default: all)")
    p_hand.add_argument("--out", default=None, help="output folder (default: _build/handouts)")
    p_i18n = sub.add_parser("i18n", help="translated editions: stub | status | check")
    p_i18n.add_argument("action", choices=["stub", "status", "check"],
                        help="stub: write/refresh the translation files (new and changed cells become todo); "
                             "status: cells translated per chapter; check: the translations' problems")
    p_i18n.add_argument("lang", nargs="?", default=None, help="language code (default: every edition)")
    p_i18n.add_argument("chapters", nargs="*")
    args = parser.parse_args(argv)
    if args.cmd == "i18n":
        return i18n_command(args.action, args.lang, args.chapters)
    if args.cmd == "badges":
        from vislab.site import update_readme

        changed, _ = update_readme(load_book())
        print("README.md chapter table " + ("updated" if changed else "already up to date"))
        return 0
    if args.cmd == "handouts":
        from vislab.handouts import write_handouts

        write_handouts(args.chapters, out=args.out)
        return 0
    if args.cmd == "build":
        build(args.chapters, out=args.out)
        return 0
    if args.cmd == "check":
        problems = check()
        if problems:
            print(f"book check: {len(problems)} problem(s)")
            for p in problems:
                print(f"  - {p}")
            return 1
        print(f"book check: {len(load_book()['chapters'])} chapters, all consistent")
        return 0
    if args.cmd == "sync":
        changed = sync(chapters=args.chapters, record=args.record)
        for path in changed:
            print(f"wrote {path}")
        print(f"sync: {len(changed)} notebook(s) updated")
        return 0
    if args.cmd == "claims":
        return claims_command(args.chapters, executed=args.executed)
    rows = run(args.chapters, json_path=args.json, save_dir=args.save, timeout=args.timeout, setting=args.setting)
    bad = [r for r in rows if r["status"] == "error" or
           (args.strict and (r["status"] != "ok" or r.get("checked_diffs") or r.get("claims")))]
    return 1 if bad else 0


def i18n_command(action: str, lang=None, chapters=None, root=None) -> int:
    """``book i18n stub|status|check [LANG] [CHAPTERS]``."""
    from vislab import i18n

    book = load_book(root)
    langs = [l for l in i18n.languages(book) if lang in (None, l.code)]
    if not langs:
        raise BookError(f"no edition {lang!r} in book.yml; known: {', '.join(l.code for l in i18n.languages(book))}")
    chosen = _select(book["chapters"], chapters)
    bad = 0
    for l in langs:
        if action == "stub":
            for ch in chosen:
                counts = i18n.stub(l, ch, book["root"])
                print(f"{i18n.translation_path(l, ch).relative_to(book['root'])}: "
                      + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        elif action == "status":
            rows = i18n.status(l, chosen)
            print(f"{l.code} ({l.name}): {'chapter':<14}{'cells':>6}{'done':>6}{'todo':>6}{'stale':>6}{'missing':>8}")
            for r in rows:
                print(f"{'':>{len(l.code) + len(l.name) + 5}}{r['chapter']:<14}{r['cells']:>6}{r['translated']:>6}"
                      f"{r['todo']:>6}{r['stale']:>6}{r['missing']:>8}")
            print(f"total: {sum(r['translated'] for r in rows)} of {sum(r['cells'] for r in rows)} markdown cells translated")
        else:
            for ch in chosen:
                problems = i18n.edition_problems(l, ch, book["root"], generated=False)
                bad += len(problems)
                print(f"{l.code} {ch.file.stem}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
                for p in problems:
                    print(f"  - {p}")
    return 1 if bad else 0


def claims_command(chapters=None, executed=None, root=None) -> int:
    """``book claims``: print each unbacked number of each chapter's prose; 1 if any."""
    import nbformat
    from vislab.claims import claims_problems

    book = load_book(root)
    total = 0
    for ch in _select(book["chapters"], chapters):
        if executed:
            path = Path(executed) / ch.notebook.name
            if not path.exists():
                raise BookError(f"no executed {path}; run `python -m vislab.book run {ch.id} --save {executed}` first")
            nb = nbformat.read(path, as_version=4)
        else:
            nb, row = _execute(ch, 600)
            if row["status"] == "error":
                print(f"{ch.file.name}: the chapter fails, its claims cannot be checked: {row['error']}")
                total += 1
                continue
        problems = claims_problems(nb)
        total += len(problems)
        print(f"{ch.file.name}: " + ("every number backed" if not problems else f"{len(problems)} unbacked number(s)"))
        for p in problems:
            print(f"  - {p}")
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main())
