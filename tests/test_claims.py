"""The claims check (vislab.claims): prose numbers must come from outputs, code or a citation."""

import nbformat
import pytest

from vislab.claims import claims_problems, prose_numbers


def _chapter(markdown: str, printed: str = "", code: str = "print(result)"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)] if printed else []
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), cell]
    return nb


def test_a_planted_typed_number_fails_and_the_printed_one_passes():
    nb = _chapter("The tiny ViT reaches 94.6% after the run.", printed="test accuracy 0.946\n")
    assert claims_problems(nb) == []
    planted = _chapter("The tiny ViT reaches 93.7% after the run.", printed="test accuracy 0.946\n")
    problems = claims_problems(planted)
    assert len(problems) == 1 and "'93.7%'" in problems[0] and "cell 1" in problems[0]


def test_precision_is_the_prose_precision():
    assert claims_problems(_chapter("About 95% of shapes.", printed="acc 0.9462\n")) == []
    assert claims_problems(_chapter("Exactly 94.60% of shapes.", printed="acc 0.9462\n"))   # 94.62 != 94.60


def test_citations_cover_their_sentence_row_or_table_only():
    md = ("ViT-L/14 has 304M parameters here. The paper reports 87.76% on ImageNet (cited: ViT paper, Table 2).\n\n"
          "Paper figures (cited: SigLIP paper, Table 1):\n\n| batch | zero-shot |\n|---|---|\n| 32k | 73.4 |\n\n"
          "- one item with 51.2% (cited: CLIP, Table 11)\n- another with 66.6%\n")
    problems = claims_problems(_chapter(md, printed="params 304,203,752\n"))
    assert len(problems) == 1 and "'66.6%'" in problems[0]


def test_exempt_forms_are_not_claims():
    md = ("ViT-B/16 and DINOv2 read a 2D grid of 4x4 patches; `lr=3e-4`; $N = HW/P^2 = 196$ tokens; "
          "see [the paper](https://arxiv.org/abs/2010.11929) and arXiv:2303.15343 (Zhai et al., 2023). "
          "Section 3 has 2 plots.")
    assert prose_numbers(md) == []


def test_numbers_in_code_are_settings_and_scaled_units_match():
    nb = _chapter("We train for 400 steps; B/16 has 86.6M parameters, 1,024 tokens.",
                  printed="params 86567656 tokens 1024\n", code="steps = 400\nprint(result)")
    assert claims_problems(nb) == []


def test_online_markdown_is_not_checked_offline():
    nb = _chapter("Real CLIP gives 98.7% here.")
    nb.cells[0].metadata["tags"] = ["online"]
    assert claims_problems(nb) == []


@pytest.mark.parametrize("html", ["<b>94.6</b>%", "94.6"])
def test_html_and_markdown_outputs_count(html):
    nb = _chapter("It reaches 94.6 points.")
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={"text/html": html, "text/plain": "<obj>"})]
    assert claims_problems(nb) == []
