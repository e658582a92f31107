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
  markdown cell is in an output, in the code, or in a ``(cited: ...)`` block. It needs the whole
  chapter: when a cell failed or was deselected it is skipped, saying so.
"""

from __future__ import annotations

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


def _memory_budgets() -> dict:
    from vislab.book import MEMORY_LIMIT_MB, load_book

    try:
        book = load_book()
    except Exception:  # no book (e.g. a temporary test tree): the default limit applies
        return defaultdict(lambda: MEMORY_LIMIT_MB)
    budgets = defaultdict(lambda: MEMORY_LIMIT_MB)
    for ch in book["chapters"]:
        budgets[ch.notebook.resolve()] = ch.memory_mb
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
