"""The translated editions (vislab.i18n): generated code, recorded English hashes, drift caught.

Most tests build a tiny book in tmp_path with a Korean edition; the last ones check the
repository's own Korean edition (code identical to the English for all ten chapters, every
translation current) and the rotating sample that nbval executes."""

import datetime
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.nbval_plugin import edition_sample
from tests.test_book import chapter, write_book
from vislab import i18n
from vislab.book import _edition_problems, check, load_book, main, sync

ROOT = Path(__file__).resolve().parents[1]

LANGUAGES = [{"code": "en", "name": "English", "source": True},
             {"code": "ko", "name": "한국어", "chapters": "chapters/ko", "translations": "i18n/ko",
              "glossary": "i18n/glossary.yml",
              "labels": {"edition": "한국어판 (Korean edition)", "english": "영어 원문", "glossary": "용어집"}}]
GLOSSARY = {"terms": [{"en": "patch", "ko": "패치", "definition": "이미지를 나눈 정사각형 조각."},
                      {"en": "token", "ko": "토큰", "definition": "트랜스포머가 읽는 벡터 하나."}]}


def _ko(english: str) -> str:
    """A stand-in translation that keeps what must stay (math, code, numbers, cited markers)."""
    if english.startswith("# "):
        return "# 작은 장\n\n" + english.split("\n", 1)[1] if "\n" in english else "# 작은 장"
    return "번역: " + english


def make_edition(root: Path) -> Path:
    """A tiny book with a Korean edition, every cell translated, synced: check passes."""
    write_book(root, {"01_tiny": chapter("""
        # %% [markdown]
        # ## 1. Tokens
        #
        # A 224 px image at patch 16 gives 196 patches, $N = HW/P^2$, with `patchify(x, 16)`.
        # The paper reports 88.55% on ImageNet (cited: ViT, 2021).

        # %%
        x = sum(range(10))
        print(x)
    """)})
    raw = yaml.safe_load((root / "book.yml").read_text())
    raw["languages"] = LANGUAGES
    (root / "book.yml").write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    (root / "i18n").mkdir()
    (root / "i18n" / "glossary.yml").write_text(yaml.safe_dump(GLOSSARY, allow_unicode=True))
    book = load_book(root)
    lang, = i18n.languages(book)
    ch, = book["chapters"]
    i18n.stub(lang, ch, root)
    translate_all(lang, ch, root)
    sync(root=root)
    from vislab.site import update_readme

    update_readme(load_book(root))
    return root


def translate_all(lang, ch, root):
    english = i18n.english_cells(ch)
    entries = [i18n.Entry(e.cell, e.en, _ko(english[e.cell]) if e.todo else e.text)
               for e in i18n.read_entries(lang, ch)]
    i18n.translation_path(lang, ch).write_text(i18n.format_translation(entries, lang, ch, root))


@pytest.fixture
def edition(tmp_path):
    make_edition(tmp_path)
    book = load_book(tmp_path)
    lang, = i18n.languages(book)
    return tmp_path, book, lang, book["chapters"][0]


def test_a_translated_edition_is_consistent(edition):
    root, book, lang, ch = edition
    assert check(root) == []
    py = i18n.edition_path(lang, ch)
    assert py == root / "chapters" / "ko" / "01_tiny.py" and py.with_suffix(".ipynb").exists()
    en = nbformat.read(ch.notebook, as_version=4)
    ko = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
    assert [c.source for c in en.cells if c.cell_type == "code"] == [c.source for c in ko.cells if c.cell_type == "code"]
    md = [c.source for c in ko.cells if c.cell_type == "markdown"]
    assert md[0].startswith("# 작은 장") and "한국어판 (Korean edition)" in md[0] and "(../01_tiny.ipynb)" in md[0]
    assert all(i18n.HANGUL.search(m) for m in md)
    assert (root / "chapters" / "ko" / "glossary.md").read_text().count("|") > 10
    assert sync(root=root) == []                        # idempotent


def test_a_planted_stale_translation_is_caught_and_stub_repoints_it(edition):
    root, book, lang, ch = edition
    py = ch.file
    py.write_text(py.read_text().replace("gives 196 patches", "gives 196 patches of 768 values"))
    sync(root=root)
    problems = check(root)
    stale = [p for p in problems if "is stale" in p]
    assert len(stale) == 1 and "i18n/ko/01_tiny.md" in stale[0] and "i18n stub ko" in stale[0]
    assert main(["i18n", "check", "ko"]) in (0, 1)        # the CLI runs (on the repository)
    counts = i18n.stub(lang, ch, root)
    assert counts["stale"] == 1 and counts["kept"] >= 2
    entry = next(e for e in i18n.read_entries(lang, ch) if e.todo)
    assert "번역:" in entry.text and "English now" in entry.text and "768 values" in entry.text
    assert any("still marked todo" in p for p in check(root))
    english = i18n.english_cells(ch)
    entries = [i18n.Entry(e.cell, e.en, _ko(english[e.cell]) if e.todo else e.text)
               for e in i18n.read_entries(lang, ch)]
    i18n.translation_path(lang, ch).write_text(i18n.format_translation(entries, lang, ch, root))
    sync(root=root)
    assert check(root) == []


def test_stub_pairs_an_edited_cell_with_its_own_translation_after_an_insertion(edition):
    root, book, lang, ch = edition
    py = ch.file
    text = py.read_text()
    text = text.replace("# %% [markdown]\n# ## 1. Tokens", "# %% [markdown]\n# ## 0. A new first section\n\n"
                        "# %% [markdown]\n# ## 1. Tokens")
    py.write_text(text.replace("gives 196 patches", "gives 196 patches of 768 values"))
    sync(root=root)
    counts = i18n.stub(lang, ch, root)
    assert counts["new"] == 1 and counts["stale"] == 1
    todo = {e.cell: e for e in i18n.read_entries(lang, ch) if e.todo}
    inserted, edited = sorted(todo)
    assert "A new first section" in todo[inserted].text and not i18n.HANGUL.search(todo[inserted].text)
    assert todo[edited].text.startswith("번역: ## 1. Tokens") and "768 values" in todo[edited].text


def test_hand_edited_edition_code_is_refused(edition):
    root, book, lang, ch = edition
    py = i18n.edition_path(lang, ch)
    py.write_text(py.read_text().replace("x = sum(range(10))", "x = sum(range(11))"))
    problems = check(root)
    assert any("differs from what sync generates" in p and "never the edition" in p for p in problems)
    sync(root=root)
    assert check(root) == []
    nb_path = py.with_suffix(".ipynb")
    nb = nbformat.read(nb_path, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code" and "sum(range" in c.source)
    code.source = code.source.replace("range(10)", "range(12)")
    nbformat.write(nb, nb_path)
    assert any("source differs from 01_tiny.ipynb's" in p for p in check(root))
    sync(root=root)
    code = next(c for c in nbformat.read(nb_path, as_version=4).cells if c.cell_type == "code")
    code.metadata["tags"] = ["solution"]
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[[i for i, c in enumerate(nb.cells) if c.cell_type == "code"][0]].metadata["tags"] = ["online"]
    nbformat.write(nb, nb_path)
    assert any("code cell 1 metadata differs" in p for p in check(root))


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace("196", "197"), "number(s) not in the English cell: 197"),
    (lambda t: t.replace("88.55%", "88.6%"), "not in the English cell: 88.6"),
    (lambda t: t.replace(" (cited: ViT, 2021)", ""), "'(cited: ...)' marker"),
    (lambda t: t.replace("$N = HW/P^2$", "$N = HW / P^2$"), "math lost or changed"),
    (lambda t: t.replace("`patchify(x, 16)`", "patchify(x, 16)"), "code span lost or changed"),
    (lambda t: t.replace("번역: ", ""), "no Korean text"),
])
def test_a_translation_that_changes_what_must_stay_is_caught(edition, change, message):
    root, book, lang, ch = edition
    path = i18n.translation_path(lang, ch)
    entries = i18n.read_entries(lang, ch)
    target = next(e for e in entries if "196" in e.text)
    target.text = change(target.text)
    path.write_text(i18n.format_translation(entries, lang, ch, root))
    sync(root=root)
    problems = [p for p in check(root) if f"cell {target.cell}:" in p]
    assert any(message in p for p in problems), problems


def test_missing_orphan_and_malformed_translations_are_reported(edition):
    root, book, lang, ch = edition
    path = i18n.translation_path(lang, ch)
    text = path.read_text()
    path.write_text(text + "\n<!-- cell 99 · en 000000000000 -->\n고아 항목\n")
    assert any("entry for cell 99, which is no cell" in p for p in check(root))
    entries = i18n.parse_translation(text)
    path.write_text(i18n.format_translation(entries[1:], lang, ch, root))
    problems = check(root)
    assert any(f"English markdown cell {entries[0].cell} has no entry" in p for p in problems)
    path.write_text(re.sub(r"\n<!-- cell (\d+) · en ", r"\n<!-- cell \1 · en: ", text, count=1))
    assert any("malformed entry header" in p for p in check(root))
    path.unlink()
    assert any("no ko translation of 01_tiny.py" in p for p in check(root))
    (root / "i18n" / "ko" / "02_gone.md").write_text("")
    assert any("02_gone.md: translates no chapter" in p for p in check(root))


def test_parse_and_format_round_trip(edition):
    root, book, lang, ch = edition
    path = i18n.translation_path(lang, ch)
    entries = i18n.parse_translation(path.read_text())
    assert i18n.format_translation(entries, lang, ch, root) == path.read_text()
    with pytest.raises(ValueError, match="two entries"):
        i18n.parse_translation("<!-- cell 1 · en 0123456789ab -->\na\n<!-- cell 1 · en 0123456789ab -->\nb\n")
    with pytest.raises(ValueError, match="before the first"):
        i18n.parse_translation("stray text\n<!-- cell 1 · en 0123456789ab -->\na\n")


def test_glossary_problems_and_page(edition, tmp_path):
    root, book, lang, ch = edition
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"terms": [{"en": "patch", "ko": "패치"},
                                             {"en": "token", "ko": "토큰", "definition": "벡터"},
                                             {"en": "Token", "ko": "토큰", "definition": "벡터"}]},
                                  allow_unicode=True))
    problems = i18n.glossary_problems(bad)
    assert any("needs en, ko and definition" in p for p in problems) and any("appears twice" in p for p in problems)
    page = i18n.glossary_markdown(lang, book)
    assert page.startswith("# 용어집") and "| patch | 패치 |" in page
    (root / "chapters" / "ko" / "glossary.md").write_text("# stale\n")
    assert any("glossary.md: out of date" in p for p in check(root))


def test_translate_notebook_swaps_markdown_and_keeps_outputs(edition):
    root, book, lang, ch = edition
    nb = nbformat.read(ch.notebook, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code" and "sum(range" in c.source)
    code.outputs = [nbformat.v4.new_output("stream", text="45\n")]
    ko = i18n.translate_notebook(nb, lang, ch)
    assert [c.source for c in ko.cells if c.cell_type == "code"] == [c.source for c in nb.cells if c.cell_type == "code"]
    assert any(c.outputs for c in ko.cells if c.cell_type == "code")
    assert all(i18n.HANGUL.search(c.source) for c in ko.cells if c.cell_type == "markdown")
    assert i18n.edition_title(lang, ch) == "작은 장"


def test_korean_prose_numbers_are_claims():
    from vislab.claims import prose_numbers

    claims = prose_numbers("토큰은 197개다. 정확도는 94.6%이다 (cited: X). 파라미터는 86,567,656개다.")
    assert [c.text for c in claims] == ["197", "86,567,656"]      # the cited sentence alone is exempt


def test_edition_sample_rotates_through_every_chapter_in_five_days():
    days = [datetime.date(2026, 12, 1) + datetime.timedelta(d) for d in range(5)]
    picked = [edition_sample(10, today=d, env="") for d in days]
    assert all(len(p) == 2 for p in picked)
    assert set().union(*picked) == set(range(1, 11))
    assert edition_sample(10, env="all") == set(range(1, 11))
    assert edition_sample(10, env="none") == set()
    assert edition_sample(10, env="2, 7") == {2, 7}
    with pytest.raises(ValueError, match="VISLAB_EDITION_SAMPLE"):
        edition_sample(10, env="some")


# ---- the repository's Korean edition --------------------------------------------------------------

def test_every_chapter_has_a_korean_edition_with_the_english_code():
    """Code identity for all ten chapters (nbval executes only a rotating sample of them)."""
    import jupytext

    book = load_book(ROOT)
    lang, = [lang for lang in i18n.languages(book) if lang.code == "ko"]
    for ch in book["chapters"]:
        py = i18n.edition_path(lang, ch)
        assert py.exists(), f"{py} missing: run `python -m vislab.book sync`"
        en = jupytext.read(ch.file, fmt="py:percent")
        ko = jupytext.read(py, fmt="py:percent")
        assert [(c.cell_type, c.source, dict(c.metadata)) for c in en.cells if c.cell_type == "code"] == \
               [(c.cell_type, c.source, dict(c.metadata)) for c in ko.cells if c.cell_type == "code"], py.name
        en_nb = nbformat.read(ch.notebook, as_version=4)
        ko_nb = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
        assert [(c.source, c.get("outputs")) for c in en_nb.cells if c.cell_type == "code"] == \
               [(c.source, c.get("outputs")) for c in ko_nb.cells if c.cell_type == "code"], py.name
        translated = [c.source for c in ko.cells if c.cell_type == "markdown"]
        assert len(translated) == len([c for c in en.cells if c.cell_type == "markdown"])
        assert all(i18n.HANGUL.search(t) for t in translated), f"{py.name}: a cell left in English"


def test_the_korean_editions_are_up_to_date():
    assert _edition_problems(load_book(ROOT)) == []


def test_the_korean_glossary_is_complete():
    book = load_book(ROOT)
    lang, = [lang for lang in i18n.languages(book) if lang.code == "ko"]
    terms = i18n.load_glossary(lang.glossary)
    assert len(terms) >= 60 and i18n.glossary_problems(lang.glossary) == []
