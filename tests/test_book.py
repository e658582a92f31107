"""Tests for vislab.book: the repository's book passes its check; sync, check and run on
small temporary books built in tmp_path (each with its own book.yml and README)."""

import json
import os
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

from vislab import book
from vislab.book import COLAB_BEGIN, COLAB_END, BookError, check, load_book, run, sync

REPOSITORY = "https://github.com/example-org/tiny-course"

FIRST_CELL = f"""# %%
{COLAB_BEGIN}
{COLAB_END}
def setup():
    return "cpu"


device = setup()
"""


EXERCISES = """# %% [markdown]
# **Exercise 1 (build).** Double a number.

# %% tags=["exercise"]
def my_double(x):
    # TODO: return 2x
    raise NotImplementedError

# %%
from vislab import check

_ = check.exercise("Exercise 1: double", my_double, lambda x: 2 * x, [1, 2])

# %% tags=["solution"] jupyter={"source_hidden": true}
_ = check.exercise("Exercise 1: double", lambda x: 2 * x, lambda x: 2 * x, [1, 2], solution=True)

# %% tags=["exercise"]
my_tokens = None  # TODO: tokens of a 224 px image at patch 16, with CLS

# %%
_ = check.predict("Exercise 2: tokens", my_tokens, 197)

# %% tags=["solution"] jupyter={"source_hidden": true}
_ = check.predict("Exercise 2: tokens", 197, 197, solution=True)

# %% tags=["exercise"]
def my_fixed_abs(x):
    return x  # TODO: find and fix the bug

# %%
_ = check.debug("Exercise 3: abs", my_fixed_abs, abs, [-1, 2], symptom="negative inputs stay negative")

# %% tags=["solution"] jupyter={"source_hidden": true}
_ = check.debug("Exercise 3: abs", abs, abs, [-1, 2], solution=True)

# %% tags=["exercise"]
my_answer = None  # TODO: 'up' or 'down'?

# %%
_ = check.answer("Exercise 4: direction", my_answer, "down")

# %% tags=["solution"] jupyter={"source_hidden": true}
_ = check.answer("Exercise 4: direction", "down", "down", solution=True)

# %% [markdown]
# ## Questionnaire
#
""" + "\n".join(f"# {i}. Question {i}?" for i in range(1, 9)) + """

# %% [markdown] tags=["solution"]
# **Answers**
#
""" + "\n".join(f"# {i}. Answer {i}." for i in range(1, 9)) + "\n"


def chapter(*cells: str, exercises: bool = True) -> str:
    """A chapter .py: the standard first code cell, then ``cells`` (each a percent-format cell),
    then (unless ``exercises=False``) the four exercises and questionnaire that ``book check``
    asks of every chapter."""
    body = "\n\n".join(textwrap.dedent(c).strip("\n") for c in cells)
    tail = "\n\n" + EXERCISES if exercises else ""
    return ("# %% [markdown]\n# # A tiny chapter\n\n" + FIRST_CELL + ("\n\n" + body if body else "") + "\n"
            + tail)


def write_book(root, chapters: dict, entries=None, sync_now=True):
    """Write book.yml, README.md and ``chapters/NAME.py`` for each ``{NAME: source}``, then sync.

    ``entries`` overrides the book.yml entries (a list of dicts); by default one per chapter.
    """
    import yaml

    (root / "chapters").mkdir(parents=True, exist_ok=True)
    for name, source in chapters.items():
        (root / "chapters" / f"{name}.py").write_text(source)
    if entries is None:
        entries = [{"id": name.split("_", 1)[1], "file": f"chapters/{name}.py", "title": name,
                    "objectives": ["learn something"], "budget_s": 100} for name in chapters]
    (root / "book.yml").write_text(yaml.safe_dump({"title": "Tiny", "repository": REPOSITORY, "branch": "main",
                                                   "chapters": entries}, sort_keys=False))
    (root / "README.md").write_text(f"# Tiny\n\n{_readme_markers()}\n")
    if sync_now:
        from vislab.site import update_readme

        update_readme(load_book(root))
        sync(root=root)
    return root


def _readme_markers():
    from vislab.site import README_END, README_START

    return f"{README_START}\n{README_END}"


@pytest.fixture
def tiny(tmp_path):
    """A valid one-chapter book."""
    write_book(tmp_path, {"01_tiny": chapter("""
        # %% [markdown]
        # Some prose.

        # %%
        x = sum(range(10))
        print(x)
    """)})
    return tmp_path


# ---- the repository's own book ------------------------------------------------------------------

def test_repository_book_passes_its_check():
    problems = check()
    assert problems == [], "\n".join(problems)


def test_cli_check_on_the_repository(capsys):
    assert book.main(["check"]) == 0
    assert "all consistent" in capsys.readouterr().out


def test_sync_is_idempotent_on_a_copy_of_the_repository(tmp_path):
    real = load_book()
    flagged = "\n".join(check())                      # pairs that other work has left unsynced, if any
    shutil.copy(real["root"] / "book.yml", tmp_path / "book.yml")
    shutil.copy(real["root"] / "README.md", tmp_path / "README.md")
    (tmp_path / "chapters").mkdir()
    for folder in ("i18n", "chapters/ko"):                # the translated editions and their sources
        if (real["root"] / folder).exists():
            shutil.copytree(real["root"] / folder, tmp_path / folder)
    clean = {}
    for ch in real["chapters"]:
        for path in (ch.file, ch.notebook):
            if path.exists():
                shutil.copy(path, tmp_path / "chapters" / path.name)
        if ch.notebook.exists() and ch.file.name not in flagged and ch.notebook.name not in flagged:
            clean[ch.file.name] = ch.file.read_bytes()
            clean[ch.notebook.name] = ch.notebook.read_bytes()
    assert clean, "no chapter of the repository passes book check"
    sync(root=tmp_path)
    assert sync(root=tmp_path) == []
    for name, data in clean.items():                # in-sync pairs are left byte for byte, references kept
        assert (tmp_path / "chapters" / name).read_bytes() == data, name
    # an edit of the .py is carried over once, then nothing changes
    first = next(ch for ch in real["chapters"] if ch.file.name in clean)
    py = tmp_path / "chapters" / first.file.name
    py.write_text(py.read_text() + "\n# %% [markdown]\n# One more cell.\n")
    names = [p.relative_to(tmp_path).as_posix() for p in sync(root=tmp_path)]
    assert names[0] == f"chapters/{first.notebook.name}"      # then its editions, the new cell untranslated
    assert set(names[1:]) <= {f"chapters/ko/{first.file.name}", f"chapters/ko/{first.notebook.name}"}
    assert sync(root=tmp_path) == []
    left = [p for p in check(tmp_path) if first.file.stem in p]
    assert all("has no entry" in p and "i18n stub ko" in p for p in left), left   # the edition lags, and says so


# ---- check on temporary books ---------------------------------------------------------------------

def test_check_asks_every_chapter_for_exercises(tmp_path):
    write_book(tmp_path, {"01_tiny": chapter(exercises=False)})
    problems = check(tmp_path)
    assert any("exercises: 0 exercise(s) checked with vislab.check; at least 4 are needed" in p for p in problems)
    assert any("exercises: no questionnaire" in p for p in problems)


def test_a_valid_tiny_book_passes(tiny):
    assert check(tiny) == []
    nb = nbformat.read(tiny / "chapters" / "01_tiny.ipynb", as_version=4)
    assert [c.cell_type for c in nb.cells][:4] == ["markdown", "code", "markdown", "code"]
    assert sum("solution" in c.metadata.get("tags", []) for c in nb.cells) == 5   # 4 exercises + answers
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    assert "kernelspec" in nb.metadata and "jupytext" not in nb.metadata
    # the sync filled in the Colab bootstrap between the markers, in the .py too
    assert "git" in (tiny / "chapters" / "01_tiny.py").read_text()
    assert sync(root=tiny) == []


def test_check_detects_an_unlisted_chapter(tiny):
    (tiny / "chapters" / "02_extra.py").write_text(chapter())
    assert check(tiny) == ["chapters/02_extra.py: not listed in book.yml"]
    (tiny / "chapters" / "02_extra.ipynb").write_text("{}")
    assert "chapters/02_extra.ipynb: no .py source listed in book.yml" in check(tiny)


def test_check_detects_an_out_of_sync_notebook(tiny):
    py = tiny / "chapters" / "01_tiny.py"
    py.write_text(py.read_text().replace("sum(range(10))", "sum(range(11))"))
    problems = check(tiny)
    assert len(problems) == 1
    assert "chapters/01_tiny.ipynb: out of sync with 01_tiny.py (cell 4 differs)" in problems[0]
    sync(root=tiny)
    assert check(tiny) == []


def test_check_detects_a_hand_edited_notebook(tiny):
    path = tiny / "chapters" / "01_tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="45\n")]
    nbformat.write(nb, path)
    problems = check(tiny)
    assert len(problems) == 1 and "stores outputs but is not a checked cell" in problems[0]


def test_check_detects_unknown_tags(tmp_path):
    write_book(tmp_path, {"01_tiny": chapter("""
        # %% tags=["notes", "homework"]
        # TODO: do it
        y = 1
    """)})
    problems = check(tmp_path)
    assert len(problems) == 1
    assert "chapters/01_tiny.py: cell 3: unknown tag(s) ['homework']" in problems[0]


def test_check_accepts_every_known_tag(tmp_path):
    cells = [f'# %% tags=["{tag}"]\n# TODO\n' + ('from vislab.online import hub_available\nif hub_available("x"):\n    z = 0'
                                                 if tag == "online" else 'z = 0') for tag in sorted(book.KNOWN_TAGS)]
    write_book(tmp_path, {"01_tiny": chapter(*cells, '# %% tags=["nbval-skip"]\nz = 1')})
    assert check(tmp_path) == []


def test_check_detects_exercise_and_cell_problems(tmp_path):
    write_book(tmp_path, {"01_tiny": chapter("""
        # %% tags=["exercise"]
        y = 1
    """, """
        # %% tags=["exercise", "solution"]
        # TODO
        y = 2
    """, """
        # %%
        from math import *
    """)})
    problems = "\n".join(check(tmp_path))
    assert "cell 3: an exercise cell must say what to do with a TODO" in problems
    assert "cell 4: a cell cannot be both exercise and solution" in problems
    assert "cell 5: no star imports in chapters" in problems


def test_solution_cells_are_hidden_in_the_notebook(tmp_path):
    write_book(tmp_path, {"01_tiny": chapter("""
        # %% tags=["solution"]
        y = 2
    """)})
    nb = nbformat.read(tmp_path / "chapters" / "01_tiny.ipynb", as_version=4)
    assert nb.cells[2].metadata == {"tags": ["solution"], "jupyter": {"source_hidden": True}, "cellView": "form"}
    assert check(tmp_path) == []


@pytest.mark.parametrize("key", ["budget_s", "objectives", "title", "id", "file"])
def test_check_detects_a_missing_chapter_key(tmp_path, key):
    entry = {"id": "tiny", "file": "chapters/01_tiny.py", "title": "Tiny", "objectives": ["o"], "budget_s": 10}
    del entry[key]
    write_book(tmp_path, {"01_tiny": chapter()}, entries=[entry], sync_now=False)
    assert check(tmp_path) == [f"book.yml: chapter #1 lacks {key}"]


@pytest.mark.parametrize("budget", [0, -5, "fast", None])
def test_check_detects_a_bad_budget(tmp_path, budget):
    entry = {"id": "tiny", "file": "chapters/01_tiny.py", "title": "Tiny", "objectives": ["o"], "budget_s": budget}
    write_book(tmp_path, {"01_tiny": chapter()}, entries=[entry], sync_now=False)
    problems = check(tmp_path)
    assert len(problems) == 1 and "budget_s must be a positive number" in problems[0]


def test_check_detects_a_budget_over_the_course_cap(tmp_path):
    entry = {"id": "tiny", "file": "chapters/01_tiny.py", "title": "Tiny", "objectives": ["o"],
             "budget_s": book.COURSE_CAP_S + 1}
    write_book(tmp_path, {"01_tiny": chapter()}, entries=[entry])
    assert check(tmp_path) == [f"chapters/01_tiny.py: budget_s {book.COURSE_CAP_S + 1} exceeds the course cap "
                               f"of {book.COURSE_CAP_S} s"]


def test_check_detects_a_checked_cell_without_recorded_output(tmp_path):
    write_book(tmp_path, {"01_tiny": chapter("""
        # %%
        # NBVAL_CHECK_OUTPUT
        print(2 + 2)
    """)})
    problems = check(tmp_path)
    assert len(problems) == 1
    assert "chapters/01_tiny.py: checked cell(s) [3] have no recorded reference output" in problems[0]
    assert "sync --record tiny" in problems[0]


def test_check_detects_missing_files_and_setup(tmp_path):
    write_book(tmp_path, {"01_tiny": chapter(), "02_two": chapter()})
    (tmp_path / "chapters" / "02_two.ipynb").unlink()
    (tmp_path / "chapters" / "01_tiny.py").unlink()
    problems = check(tmp_path)
    assert "chapters/01_tiny.py: listed in book.yml but missing" in problems
    assert any(p.startswith("chapters/02_two.py: no paired 02_two.ipynb") for p in problems)


def test_check_detects_a_first_cell_without_setup_or_bootstrap(tmp_path):
    write_book(tmp_path, {"01_tiny": "# %%\nx = 1\n"})
    problems = "\n".join(check(tmp_path))
    assert "the first code cell must call vislab.runtime.setup" in problems
    assert "Colab bootstrap" in problems


def test_check_detects_duplicate_ids_and_a_stale_readme(tmp_path):
    entry = {"id": "same", "file": "chapters/01_tiny.py", "title": "Tiny", "objectives": ["o"], "budget_s": 10}
    write_book(tmp_path, {"01_tiny": chapter(), "02_two": chapter()},
               entries=[entry, {**entry, "file": "chapters/02_two.py"}])
    assert check(tmp_path) == ["book.yml: chapter id 'same' appears more than once"]
    (tmp_path / "README.md").write_text(f"# Tiny\n\n{_readme_markers()}\n")
    assert any("README.md" in p and "out of date" in p for p in check(tmp_path))


def test_load_book_errors(tmp_path):
    with pytest.raises(BookError, match="no book.yml"):
        load_book(tmp_path)
    (tmp_path / "book.yml").write_text("- just a list\n")
    with pytest.raises(BookError, match="must be a mapping"):
        load_book(tmp_path)
    (tmp_path / "book.yml").write_text("title: t\nchapters: []\n")
    with pytest.raises(BookError, match="missing 'repository'"):
        load_book(tmp_path)
    assert check(tmp_path) == ["book.yml: missing 'repository'", "book.yml: missing 'branch'"]
    (tmp_path / "book.yml").write_text(f"title: t\nrepository: {REPOSITORY}\nbranch: main\nchapters:\n"
                                       "  - {id: a, file: chapters/01_a.py, title: A, objectives: [], budget_s: 5}\n")
    with pytest.raises(BookError, match="non-empty list of objectives"):
        load_book(tmp_path)


def test_load_book_reads_chapters(tiny):
    b = load_book(tiny)
    assert b["title"] == "Tiny" and b["repository"] == REPOSITORY and b["branch"] == "main"
    (ch,) = b["chapters"]
    assert ch.id == "tiny" and ch.number == "01" and ch.file == tiny / "chapters" / "01_tiny.py"
    assert ch.notebook.name == "01_tiny.ipynb" and ch.budget_s == 100.0 and ch.objectives == ("learn something",)
    assert ch.memory_mb == book.MEMORY_LIMIT_MB


def test_select_chapters_by_number_id_or_file(tmp_path):
    write_book(tmp_path, {"01_tiny": chapter(), "02_two": chapter()}, sync_now=False)
    chapters = load_book(tmp_path)["chapters"]
    for wanted in (["02"], ["2"], ["two"], ["02_two.py"], ["02_two"], ["02_two.ipynb"]):
        assert [c.id for c in book._select(chapters, wanted)] == ["two"]
    assert [c.id for c in book._select(chapters, ["two", "01", "two"])] == ["two", "tiny"]
    assert [c.id for c in book._select(chapters, [])] == ["tiny", "two"]
    with pytest.raises(BookError, match="no chapter 'nine'; known: tiny, two"):
        book._select(chapters, ["nine"])


def test_format_table():
    rows = [{"chapter": "tiny", "file": "01_tiny.py", "seconds": 1.25, "budget_s": 60, "peak_mb": 120, "status": "ok",
             "error": "", "setting": "portable", "checked_diffs": [], "claims": []},
            {"chapter": "bad", "file": "02_bad.py", "seconds": 2.0, "budget_s": 60, "peak_mb": None, "status": "error",
             "error": "RuntimeError: boom", "setting": "portable"},
            {"chapter": "drift", "file": "03_drift.py", "seconds": 1.0, "budget_s": 60, "peak_mb": 100, "status": "ok",
             "error": "", "setting": "portable",
             "checked_diffs": [{"cell": 5, "recorded": "2.15e-06", "now": "2.26e-06"}],
             "claims": ["cell 3: '93.7%' is in no output"]}]
    table = book.format_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("kernel setting: portable") and "ATEN_CPU_CAPABILITY" in lines[0]
    assert lines[1].split() == ["chapter", "seconds", "budget", "peak", "MB", "checked", "claims", "status"]
    assert lines[3].split() == ["tiny", "1.2", "60", "120", "same", "0", "ok"] or \
        lines[3].split() == ["tiny", "1.3", "60", "120", "same", "0", "ok"]
    assert "?" in lines[4] and "error (RuntimeError: boom)" in lines[4]
    assert lines[5].split() == ["drift", "1.0", "60", "100", "1", "diff", "1", "ok"]
    assert any(line.split()[:2] == ["total", "4.2"] or line.split()[:2] == ["total", "4.3"] for line in lines)
    assert "03_drift.py cell 5: checked output differs" in table and "'2.26e-06'" in table
    assert "03_drift.py cell 3: '93.7%'" in table


def test_checked_differences_compare_sanitised_text(tmp_path):
    import nbformat

    def nb(text):
        n = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(x)")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        n.cells = [nbformat.v4.new_code_cell("x = 1"), cell]
        return n

    assert book.checked_differences(nb("took 1.5 s, shape (2, 3)\n"), nb("took 2.7 s, shape (2, 3)\n")) == []
    diffs = book.checked_differences(nb("max 2.15e-06\n"), nb("max 2.26e-06\n"))
    assert diffs == [{"cell": 2, "recorded": "max 2.15e-06", "now": "max 2.26e-06"}]


def test_run_rejects_an_unknown_kernel_setting(tmp_path):
    write_book(tmp_path, {"01_tiny": chapter("""
        # %%
        print(1)
    """)})
    with pytest.raises(book.BookError, match="unknown kernel setting 'fast'.*portable"):
        book.run(root=tmp_path, setting="fast", json_path=tmp_path / "r.json")


def test_run_under_the_portable_setting_sets_the_kernels_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    write_book(tmp_path, {"01_env": chapter("""
        # %%
        import os
        print("isa", os.environ.get("ATEN_CPU_CAPABILITY"), os.environ.get("OMP_NUM_THREADS"))
    """)})
    (row,) = run(root=tmp_path, save_dir=tmp_path / "executed", timeout=120, setting="portable",
                 json_path=tmp_path / "r.json")
    assert row["status"] == "ok" and row["setting"] == "portable" and row["checked_diffs"] == []
    nb = nbformat.read(tmp_path / "executed" / "01_env.ipynb", as_version=4)
    assert "isa default 1" in "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "ATEN_CPU_CAPABILITY" not in os.environ          # restored after the run


# ---- run: fresh kernels, offline ---------------------------------------------------------------------

def test_run_reports_seconds_peak_memory_and_errors(tmp_path, capsys):
    write_book(tmp_path, {
        "01_good": chapter("""
            # %%
            import os
            print(sum(range(10)), os.environ.get("HF_HUB_OFFLINE"))
        """, """
            # %% tags=["online"]
            raise RuntimeError("online cells are skipped")
        """),
        "02_bad": chapter("""
            # %%
            raise RuntimeError("boom")
        """),
    })
    rows = run(root=tmp_path, save_dir=tmp_path / "executed", timeout=120)
    good, bad = rows
    assert good["chapter"] == "good" and good["status"] == "ok" and good["error"] == ""
    assert good["seconds"] > 0 and isinstance(good["peak_mb"], int) and good["peak_mb"] > 10
    assert bad["chapter"] == "bad" and bad["status"] == "error" and "boom" in bad["error"]
    out = capsys.readouterr().out
    assert "running 01_good.py" in out and "total" in out
    # the table is written as JSON too
    saved = json.loads((tmp_path / "_build" / "book-run.json").read_text())
    assert saved["rows"] == rows
    # the executed notebook: offline (hub switched off), the online cell removed
    nb = nbformat.read(tmp_path / "executed" / "01_good.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "45 1" in outputs
    assert all("online" not in c.metadata.get("tags", []) for c in nb.cells)


def test_sync_record_stores_the_reference_outputs_of_checked_cells(tmp_path):
    write_book(tmp_path, {"01_tiny": chapter("""
        # %%
        # NBVAL_CHECK_OUTPUT
        print(2 + 2)
    """, """
        # %%
        print("not checked")
    """)})
    assert len(check(tmp_path)) == 1                                   # nothing recorded yet
    changed = sync(root=tmp_path, record=True, timeout=120)
    assert [p.name for p in changed] == ["01_tiny.ipynb"]
    nb = nbformat.read(tmp_path / "chapters" / "01_tiny.ipynb", as_version=4)
    checked, unchecked = nb.cells[2], nb.cells[3]
    assert [o.get("text") for o in checked.outputs] == ["4\n"]
    assert unchecked.outputs == []                                     # only checked cells keep outputs
    assert check(tmp_path) == []
    assert sync(root=tmp_path) == []                                   # a plain sync keeps the reference


def test_ci_runs_the_readme_command_under_the_portable_setting_too():
    """.ci/run's second pass uses exactly the variables of KERNEL_SETTINGS['portable'], and the
    README shows the same command."""
    root = Path(__file__).resolve().parents[1]
    variables = " ".join(f"{k}={v}" for k, v in book.KERNEL_SETTINGS["portable"].items())
    assert f"{variables} .venv/bin/python -m pytest" in (root / ".ci" / "run").read_text()
    assert f"{variables} .venv/bin/python -m pytest" in (root / "README.md").read_text()


@pytest.mark.parametrize("source, ok", [
    ('from vislab.online import hub_available\nif hub_available("real CLIP"):\n    x = 1\n', True),
    ('import torch\nfrom vislab.online import hub_available\n\nif hub_available("a"):\n    y = 2\nif hub_available("b"):\n    z = 3\n', True),
    ('from transformers import CLIPModel\nmodel = CLIPModel.from_pretrained("openai/clip")\n', False),
    ('if hub_available("a"):\n    x = 1\nelse:\n    x = download()\n', False),
    ('x = 1\nif hub_available("a"):\n    y = x\n', False),
    ('import os\n', False),
    ('if hub_available(:\n', False),
])
def test_online_cells_must_be_guarded(source, ok):
    assert book.online_cell_is_guarded(source) is ok


def test_check_reports_an_unguarded_online_cell(tmp_path):
    write_book(tmp_path, {"01_net": chapter("""
        # %% tags=["online"]
        from transformers import CLIPModel
        model = CLIPModel.from_pretrained("openai/clip-vit-base-patch32")
    """)})
    assert any("an online cell must be imports and one `if hub_available" in p for p in check(tmp_path))
