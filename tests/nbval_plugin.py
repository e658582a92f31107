"""pytest plugin for the chapters under nbval (loaded with ``-p tests.nbval_plugin``).

- Cells tagged ``online`` need internet (real checkpoints from the hub): they are skipped.
- After the last cell of every chapter, one more item asks the chapter's kernel for its peak
  memory and fails when it exceeds the chapter's ``memory_mb`` in book.yml (Binder's 2 GB by
  default): memory is a budget CI enforces. The peak is the larger of the kernel's own rusage
  peak (itself and reaped children) and the summed PSS of the whole kernel process tree, sampled
  from this process while the chapter runs (``vislab.memwatch.TreePeak``), so that worker
  processes (chapter 4's ranks) count too.
- Just before it, an item "exercises proven" asks the kernel for ``vislab.check.proof_problems()``:
  every exercise whose solution ran must have been checked untouched first, failed there, and
  passed with its solution (it sits before "peak memory", which ends the chapter's sampler).
- With ``--nbval-claims`` (on in pyproject's addopts), a last item "claims" checks the chapter's
  prose against what its cells printed in this very run (``vislab.claims``): every number in a
  markdown cell is in an output, in the code, or in a ``(cited: ...)`` block. The English
  chapter's item checks its translated editions' prose against the same outputs (same code). It needs the whole
  chapter: when a cell failed or was deselected it is skipped, saying so.
- Translated editions (``chapters/ko/``) have the English code by construction, which
  ``tests/test_i18n.py`` proves for every chapter; nbval executes a rotating sample of two of
  them a day (:func:`edition_sample`), so that CI time grows by two chapters, not ten, and every
  edition runs within five days. ``VISLAB_EDITION_SAMPLE=all`` runs them all, ``none`` none,
  ``2,7`` those chapters.
"""

from __future__ import annotations

import datetime
import os
from collections import defaultdict
from pathlib import Path

import pytest

from vislab.memwatch import TreePeak

_watchers: dict = {}            # notebook file item -> TreePeak sampling its kernel's process tree
_outputs: dict = defaultdict(list)   # notebook file item -> the outputs of each of its cells that ran
EXTRA_ITEMS = ("peak memory", "exercises proven")


def pytest_addoption(parser):
    parser.addoption("--nbval-claims", action="store_true", default=False,
                     help="after each chapter, check its prose's numbers against the outputs of this run "
                          "(vislab.claims)")


class ClaimsItem(pytest.Item):
    """The claims check of one chapter, on the outputs nbval just collected from its kernel."""

    def runtest(self):
        import nbformat

        from vislab.claims import claims_problems

        nb = nbformat.read(str(self.parent.fspath), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code" and "online" not in c.metadata.get("tags", [])]
        ran = _outputs.pop(self.parent, [])
        if len(ran) != len(code):
            pytest.skip(f"claims need the whole chapter: {len(ran)} of its {len(code)} offline code cells ran")
        problems = claims_problems(nb, outputs_by_cell=ran)
        # The translated editions run the same code, so this run's outputs back their prose too:
        # every edition's numbers are checked here, not only the sampled ones nbval executes.
        for edition in _editions_of(Path(str(self.parent.fspath))):
            translated = nbformat.read(str(edition), as_version=4)
            problems += [f"{edition.parent.name}/{edition.name} {p}"
                         for p in claims_problems(translated, outputs_by_cell=ran)]
        if problems:
            raise AssertionError(f"{Path(str(self.parent.fspath)).name}: {len(problems)} number(s) in the prose that "
                                 "no output, no code and no (cited: ...) backs (render results from variables; "
                                 "mark paper figures `(cited: SOURCE)`):\n  " + "\n  ".join(problems))

    def reportinfo(self):
        return self.parent.fspath, None, f"{self.parent.name}::claims"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.passed and getattr(item, "cell", None) is not None \
            and item.name not in EXTRA_ITEMS and item.parent is not None:
        _outputs[item.parent].append(getattr(item, "test_outputs", None) or [])

PEAK_CHECK = """\
import resource as _r, sys as _s
_k = 1 if _s.platform == "darwin" else 1024
_own_mb = (_r.getrusage(_r.RUSAGE_SELF).ru_maxrss + _r.getrusage(_r.RUSAGE_CHILDREN).ru_maxrss) * _k / 2**20
_tree_mb = TREE_MB
_peak_mb = max(_own_mb, _tree_mb)
print(f"peak memory {_peak_mb:.0f} MB (kernel {_own_mb:.0f} MB, process tree {_tree_mb:.0f} MB; budget {LIMIT_MB:.0f} MB)")
assert _peak_mb <= LIMIT_MB, f"{NAME}: peak memory {_peak_mb:.0f} MB exceeds its budget of {LIMIT_MB:.0f} MB"
"""

PROOF_CHECK = """\
from vislab import check as _check
_problems = _check.proof_problems()
assert not _problems, NAME + ": exercises not proven:\\n  " + "\\n  ".join(_problems)
print(f"exercises proven: {len({c.exercise for c in _check.recorded()})}")
"""


def edition_sample(count: int, today: datetime.date | None = None, env: str | None = None) -> set:
    """The 1-based positions of the edition chapters nbval runs today: two chapters five apart,
    moving by one each UTC day (so ten chapters are all covered in five days)."""
    env = os.environ.get("VISLAB_EDITION_SAMPLE", "") if env is None else env
    env = env.strip().lower()
    if env == "all":
        return set(range(1, count + 1))
    if env == "none":
        return set()
    if env:
        try:
            return {int(x) for x in env.split(",") if x.strip()}
        except ValueError:
            raise ValueError(f"VISLAB_EDITION_SAMPLE must be 'all', 'none' or chapter numbers like '2,7', got {env!r}")
    if count <= 0:
        return set()
    day = (today or datetime.datetime.now(datetime.timezone.utc).date()).toordinal()
    return {day % count + 1, (day + count // 2) % count + 1}


def _edition_notebooks() -> dict:
    """Resolved path of every edition notebook -> (1-based chapter position, English notebook)."""
    from vislab import i18n
    from vislab.book import load_book

    try:
        book = load_book()
        langs = i18n.languages(book)
    except Exception:  # no book (a temporary test tree)
        return {}
    return {i18n.edition_path(lang, ch).with_suffix(".ipynb").resolve(): (n, ch.notebook.resolve())
            for lang in langs for n, ch in enumerate(book["chapters"], 1)}


_EDITIONS = None


def pytest_ignore_collect(collection_path, config):
    """Leave out the edition notebooks that are not in today's sample."""
    global _EDITIONS
    if collection_path.suffix != ".ipynb":
        return None
    if _EDITIONS is None:
        _EDITIONS = _edition_notebooks()
    hit = _EDITIONS.get(Path(collection_path).resolve())
    if hit is None:
        return None
    count = len({n for n, _ in _EDITIONS.values()})
    return True if hit[0] not in edition_sample(count) else None


def _editions_of(notebook: Path) -> list:
    """The edition notebooks generated from an English chapter notebook (none for an edition)."""
    global _EDITIONS
    if _EDITIONS is None:
        _EDITIONS = _edition_notebooks()
    english = notebook.resolve()
    return [ed for ed, (_, en) in sorted(_EDITIONS.items()) if en == english and ed.exists()]


def _memory_budgets() -> dict:
    from vislab.book import MEMORY_LIMIT_MB, load_book

    try:
        book = load_book()
    except Exception:  # no book (e.g. a temporary test tree): the default limit applies
        return defaultdict(lambda: MEMORY_LIMIT_MB)
    budgets = defaultdict(lambda: MEMORY_LIMIT_MB)
    for ch in book["chapters"]:
        budgets[ch.notebook.resolve()] = ch.memory_mb
    for edition, (_, english) in _edition_notebooks().items():
        budgets[edition] = budgets[english]                 # same code, same budget
    return budgets


def pytest_collection_modifyitems(config, items):
    skip_online = pytest.mark.skip(reason="cell tagged 'online' (needs internet)")
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and "online" in cell.get("metadata", {}).get("tags", []):
            item.add_marker(skip_online)

    try:
        import nbformat
        from nbval.plugin import IPyNbCell, IPyNbFile
    except ImportError:
        return
    budgets = None
    last_of = {}
    for index, item in enumerate(items):
        if isinstance(item, IPyNbCell):
            last_of[item.parent] = index
    for parent, index in sorted(last_of.items(), key=lambda kv: -kv[1]):
        if not isinstance(parent, IPyNbFile):
            continue
        budgets = budgets or _memory_budgets()
        path = Path(str(parent.fspath)).resolve()
        code = PEAK_CHECK.replace("LIMIT_MB", repr(float(budgets[path]))).replace("NAME", repr(path.name))
        cell = nbformat.v4.new_code_cell(code)
        options = defaultdict(bool)
        options["check"] = False
        extra = IPyNbCell.from_parent(parent, name="peak memory", cell_num=10_000, cell=cell, options=options)
        items.insert(index + 1, extra)
        proof = nbformat.v4.new_code_cell(PROOF_CHECK.replace("NAME", repr(path.name)))
        items.insert(index + 1, IPyNbCell.from_parent(parent, name="exercises proven", cell_num=9_999,
                                                      cell=proof, options=options))
        if config.getoption("nbval_claims", default=False):
            items.insert(index + 3, ClaimsItem.from_parent(parent, name="claims"))


def pytest_runtest_setup(item):
    """Start sampling the process tree at a notebook's first cell; hand the peak to its last item."""
    parent = getattr(item, "parent", None)
    if getattr(item, "cell", None) is None or parent is None:
        return
    if item.name == "peak memory":
        watcher = _watchers.pop(parent, None)
        peak_mb = 0.0 if watcher is None else watcher.stop() / 2**20
        item.cell.source = item.cell.source.replace("TREE_MB", f"{peak_mb:.1f}")
    elif parent not in _watchers:
        _watchers[parent] = TreePeak().start()
