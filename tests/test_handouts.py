"""Tests for vislab.handouts: the static exercise rule and the lecturers' handouts."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vislab import handouts
from vislab.book import load_book, main, notebook_from_py
from vislab.handouts import exercise_problems, exercises_only, with_solutions

QUESTIONS = "## Questionnaire\n\n" + "\n".join(f"{i}. Question {i}?" for i in range(1, 9))
ANSWERS = "**Answers**\n\n" + "\n".join(f"{i}. Answer {i}." for i in range(1, 9))


def code(source, *tags):
    cell = new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def md(source, *tags):
    cell = new_markdown_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def solution(source):
    cell = code(source, "solution")
    cell.metadata["jupyter"] = {"source_hidden": True}
    return cell


def good_cells():
    """Four exercises of four kinds, each with its exercise cell, check and solution; a questionnaire."""
    return [
        md("# A chapter"),
        code("from vislab import check\nimport torch"),
        md("**Exercise 1.** Build it."),
        code("def my_double(x):\n    # TODO: return 2x\n    raise NotImplementedError", "exercise"),
        code('check.exercise("Exercise 1: double", my_double, lambda x: 2 * x, [1, 2])'),
        solution('def solution_double(x):\n    return 2 * x\n\n\n'
                 'check.exercise("Exercise 1: double", solution_double, lambda x: 2 * x, [1, 2], solution=True)'),
        code("def my_softmax(x):\n    # TODO: fix the axis\n    return x.softmax(0)", "exercise"),
        code('check.debug("Exercise 2: softmax", my_softmax, lambda x: x.softmax(-1), [torch.ones(2, 3)],\n'
             '            symptom="rows do not sum to 1")'),
        solution('check.debug("Exercise 2: softmax", lambda x: x.softmax(-1), lambda x: x.softmax(-1),\n'
                 '            [torch.ones(2, 3)], solution=True)'),
        code("guess = None  # TODO: how many tokens?", "exercise"),
        code('%time n = 197\ncheck.predict(f"Exercise 3: tokens at {224} px", guess, n)'),
        solution('check.predict("Exercise 3 (solution)", 197, n)'),
        code("drop = None  # TODO: 'up' or 'down'?", "exercise"),
        code('vislab.check.answer("Exercise 4: no centering", drop, "down", kind="ablate")'),
        solution('check.answer("Exercise 4: no centering", "down", "down", solution=True)'),
        md(QUESTIONS),
        md(ANSWERS, "solution"),
    ]


def notebook(cells):
    return new_notebook(cells=cells)


def without(cells, index):
    return cells[:index] + cells[index + 1:]


# ---- the static rule -----------------------------------------------------------------------------

def test_a_good_chapter_has_no_problems():
    nb = notebook(good_cells())
    assert exercise_problems(nb) == []
    calls, problems = handouts.exercise_calls(nb)
    assert problems == []
    assert [(c["exercise"], c["kind"], c["solution"]) for c in calls] == [
        ("1", "build", False), ("1", "build", True), ("2", "debug", False), ("2", "debug", True),
        ("3", "predict", False), ("3", "predict", True), ("4", "ablate", False), ("4", "ablate", True)]


def test_kinds_come_from_the_calls():
    cells = good_cells()
    cells[4] = code('check.exercise("Exercise 1: double", my_double, lambda x: 2 * x, [1, 2], kind="ablate")')
    cells[5] = solution('check.exercise("Exercise 1: double", lambda x: 2 * x, lambda x: 2 * x, [1], '
                        'kind="ablate", solution=True)')
    cells[13] = code('check.answer("Exercise 4: no centering", drop, "down", kind="predict")')
    cells[14] = solution('check.answer("Exercise 4: no centering", "down", "down", kind="predict", solution=True)')
    nb = notebook(cells)
    kinds = {c["exercise"]: c["kind"] for c in handouts.exercise_calls(nb)[0]}
    assert kinds == {"1": "ablate", "2": "debug", "3": "predict", "4": "predict"}
    assert exercise_problems(nb) == []                                   # ablate, debug, predict: three kinds


def test_three_kinds_are_needed():
    cells = good_cells()
    cells[13] = code('check.predict("Exercise 4: no centering", drop, "down")')
    cells[14] = solution('check.predict("Exercise 4: no centering", "down", "down", solution=True)')
    assert exercise_problems(notebook(cells)) == []                      # build, debug, predict
    cells[7] = code('check.predict("Exercise 2: softmax", None, 1)')
    cells[8] = solution('check.predict("Exercise 2: softmax", 1, 1, solution=True)')
    problems = exercise_problems(notebook(cells))
    assert problems == ["exercises of 2 kind(s) (build, predict); at least 3 of build, debug, predict, ablate are "
                        "needed"]


def test_four_exercises_are_needed():
    cells = good_cells()[:12] + good_cells()[15:]                          # exercise 4 gone
    problems = exercise_problems(notebook(cells))
    assert problems == ["3 exercise(s) checked with vislab.check; at least 4 are needed"]


def test_exercise_cells_need_a_todo_and_a_following_solution():
    cells = good_cells()
    cells[3] = code("def my_double(x):\n    raise NotImplementedError", "exercise")
    assert exercise_problems(notebook(cells)) == ["cell 4: an exercise cell must say what to do with a TODO"]
    cells = without(good_cells(), 5)                                       # exercise 1's solution cell
    problems = exercise_problems(notebook(cells))
    assert "cell 4: an exercise cell must be followed by its solution cell (a code cell tagged 'solution') " \
           "before the " \
           "next exercise" in problems
    assert "Exercise 1 has no solution call (solution=True) to prove its check" in problems
    cells = good_cells()[:14] + good_cells()[15:]                          # the last exercise's solution
    assert any(p.startswith("cell 13: an exercise cell must be followed") for p in exercise_problems(notebook(cells)))


def test_bad_check_calls_are_reported():
    cells = good_cells()
    cells[4] = code('name = "Exercise 1: double"\ncheck.exercise(name, my_double, lambda x: 2 * x, [1])')
    assert "cell 5: check.exercise(...) must be named by a literal 'Exercise N: ...'" in \
        exercise_problems(notebook(cells))
    cells = good_cells()
    cells[13] = code('check.answer("Exercise 4: no centering", drop, "down", kind="choice")')
    assert "cell 14: kind 'choice' is not one of build, debug, predict, ablate" in exercise_problems(notebook(cells))
    cells = good_cells()
    cells[14] = solution('check.predict("Exercise 4: no centering", "down", "down", solution=True)')
    assert "Exercise 4 is checked as ablate and predict; one exercise has one kind" in \
        exercise_problems(notebook(cells))
    cells = good_cells()
    cells[4] = code('check.exercise("Exercise 1: double", my_double,')
    assert any(p.startswith("cell 5: cannot be parsed") for p in exercise_problems(notebook(cells)))


def test_a_cell_may_not_need_a_solution_cell():
    cells = good_cells()
    cells.insert(6, code("print(solution_double(3))"))
    assert exercise_problems(notebook(cells)) == [
        "cell 7: uses solution_double, which only solution cell 6 defines (the exercises handout would stop there)"]
    cells[6] = code("def solution_double(x):\n    return x + x\n\n\nprint(solution_double(3))")
    assert exercise_problems(notebook(cells)) == []                      # defined outside a solution cell too


@pytest.mark.parametrize("change, message", [
    (lambda c: c[:15], "no questionnaire"),
    (lambda c: c[:15] + [md(QUESTIONS + "\n" + "\n".join(f"{i}. Q?" for i in range(9, 14))),
                         md(ANSWERS + "\n" + "\n".join(f"{i}. A." for i in range(9, 14)), "solution")],
     "the questionnaire has 13 numbered questions; it needs 8-12"),
    (lambda c: c[:15] + [md("## Questionnaire\n\n1. Only one?"), md("**Answers**\n\n1. Yes.", "solution")],
     "the questionnaire has 1 numbered questions"),
    (lambda c: c[:16], "must be followed by a markdown cell tagged 'solution'"),
    (lambda c: c[:16] + [md(ANSWERS)], "must be followed by a markdown cell tagged 'solution'"),
    (lambda c: c[:16] + [md("Answers\n\n1. a", "solution")], "whose first line is **Answers**"),
    (lambda c: c[:16] + [md("**Answers**\n\n1. a\n2. b", "solution")], "2 numbered answers for 8 questions"),
    (lambda c: c[:15] + [md(QUESTIONS), code("x = 1"), c[16]], "must be followed by a markdown cell"),
    (lambda c: c + [md(QUESTIONS), md(ANSWERS, "solution")], "more than one '## Questionnaire'"),
])
def test_the_questionnaire_rule(change, message):
    problems = exercise_problems(notebook(change(good_cells())))
    assert len(problems) == 1 and message in problems[0], problems


def test_the_real_chapters_can_be_read():
    for ch in load_book()["chapters"]:
        nb = nbformat.read(ch.notebook, as_version=4)
        calls, problems = handouts.exercise_calls(nb)
        assert problems == [], (ch.id, problems)
        assert calls, ch.id


# ---- handouts ------------------------------------------------------------------------------------

def test_the_exercises_handout_has_no_solution_and_every_exercise():
    nb = notebook(good_cells())
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", text="… not attempted")]
    nb.cells[4].execution_count = 3
    out = exercises_only(nb)
    assert not [c for c in out.cells if "solution" in c.metadata.get("tags", [])]
    assert not [c for c in out.cells if c.source.startswith("**Answers**")]
    assert [c.source for c in out.cells if "exercise" in c.metadata.get("tags", [])] == \
        [c.source for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
    assert any(c.source.startswith("## Questionnaire") for c in out.cells)
    assert all(c.outputs == [] and c.execution_count is None for c in out.cells if c.cell_type == "code")
    assert len(out.cells) == len(nb.cells) - 5 and nb.cells[4].outputs            # the input is not changed
    nbformat.validate(out)


def test_an_untagged_answers_cell_is_removed_from_the_handout_too():
    cells = good_cells()
    cells[16] = md(ANSWERS)
    assert not any(c.source.startswith("**Answers**") for c in exercises_only(notebook(cells)).cells)


def test_the_solutions_version_shows_every_cell():
    nb = notebook(good_cells())
    nb.cells[2].metadata["jupyter"] = {"source_hidden": True}                # a non-solution hidden cell stays
    out = with_solutions(nb)
    assert [c.source for c in out.cells] == [c.source for c in nb.cells]
    solutions = [c for c in out.cells if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) == 5 and not any("jupyter" in c.metadata for c in solutions)
    assert out.cells[2].metadata["jupyter"] == {"source_hidden": True}
    assert nb.cells[5].metadata["jupyter"] == {"source_hidden": True}        # the input is not changed
    nbformat.validate(out)


def test_markdown_solution_cells_are_hidden_in_the_chapter_notebook(tmp_path):
    py = tmp_path / "99_demo.py"
    py.write_text('# %% [markdown]\n# ## Questionnaire\n#\n# 1. Why?\n\n'
                  '# %% [markdown] tags=["solution"]\n# **Answers**\n#\n# 1. Because.\n\n'
                  '# %% tags=["solution"]\nx = 1\n')
    nb = notebook_from_py(py)
    answers, code_solution = nb.cells[1], nb.cells[2]
    assert answers.cell_type == "markdown" and answers.source.splitlines()[0] == "**Answers**"
    assert answers.metadata["jupyter"] == {"source_hidden": True}            # JupyterLab 4 collapses it
    assert code_solution.metadata["jupyter"] == {"source_hidden": True}
    assert code_solution.metadata["cellView"] == "form"                      # Colab hides the code too
    assert "cellView" not in answers.metadata                                # (a code cell's setting only)


def test_handouts_of_the_real_chapters(tmp_path, capsys):
    book = load_book()
    assert main(["handouts", "--out", str(tmp_path)]) == 0
    assert "handouts: " in capsys.readouterr().out
    for ch in book["chapters"]:
        source = notebook_from_py(ch.file)
        ex = nbformat.read(tmp_path / f"{ch.file.stem}.exercises.ipynb", as_version=4)
        sol = nbformat.read(tmp_path / f"{ch.file.stem}.solutions.ipynb", as_version=4)
        tagged = lambda nb, tag: [c.source for c in nb.cells if tag in c.metadata.get("tags", [])]  # noqa: E731
        assert tagged(source, "solution") and not tagged(ex, "solution"), ch.id
        assert tagged(ex, "exercise") == tagged(source, "exercise") != [], ch.id
        assert tagged(sol, "solution") == tagged(source, "solution"), ch.id
        assert [c.source for c in sol.cells] == [c.source for c in source.cells], ch.id
        assert not any(c.metadata.get("jupyter", {}).get("source_hidden") or "cellView" in c.metadata
                       for c in sol.cells if "solution" in c.metadata.get("tags", [])), ch.id
        for nb in (ex, sol):
            assert all(not c.outputs for c in nb.cells if c.cell_type == "code"), ch.id


def test_handouts_of_chosen_chapters_and_unknown_ones(tmp_path):
    written = handouts.write_handouts(["01"], out=tmp_path)
    assert sorted(p.name for p in written) == ["01_patching.exercises.ipynb", "01_patching.solutions.ipynb"]
    assert json.loads(written[0].read_text())["nbformat"] == 4
    from vislab.book import BookError

    with pytest.raises(BookError, match="no chapter"):
        handouts.write_handouts(["99"], out=tmp_path)
