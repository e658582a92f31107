"""Launch links, the README table, slide metadata and the static site."""

from pathlib import Path

import nbformat
import pytest

from vislab.book import load_book
from vislab.site import (README_END, README_START, binder_url, build_site, chapter_table, colab_url, repo_slug,
                         slideshow_metadata, update_readme)


@pytest.fixture(scope="module")
def book():
    return load_book()


def test_repo_slug():
    assert repo_slug("https://github.com/owner/repo") == ("owner", "repo")
    assert repo_slug("https://github.com/owner/repo.git") == ("owner", "repo")
    with pytest.raises(ValueError, match="GitHub URL"):
        repo_slug("git@example.org:owner/repo")


def test_launch_urls_follow_book_yml(book):
    owner, repo = repo_slug(book["repository"])
    nb = "chapters/01_patching.ipynb"
    assert colab_url(book, nb) == f"https://colab.research.google.com/github/{owner}/{repo}/blob/{book['branch']}/{nb}"
    assert binder_url(book, nb) == f"https://mybinder.org/v2/gh/{owner}/{repo}/{book['branch']}?urlpath=lab/tree/{nb}"


def test_chapter_table_lists_every_chapter_with_links(book):
    table = chapter_table(book)
    rows = table.splitlines()[2:]
    assert len(rows) == len(book["chapters"])
    for row, ch in zip(rows, book["chapters"]):
        assert ch.title in row and "colab.research.google.com" in row and "mybinder.org" in row
        assert f"{ch.notebook.stem}.slides.html" in row and f"{ch.budget_s:.0f} s" in row
        ko = f"chapters/ko/{ch.notebook.name}"             # the Korean edition: notebook, Colab, Binder, slides
        assert f"]({ko})" in row and f"blob/{book['branch']}/{ko}" in row and f"lab/tree/{ko}" in row
        assert f"/ko/slides/{ch.notebook.stem}.slides.html" in row
    assert "한국어 (ko)" in table.splitlines()[0]


def test_readme_table_is_current(book):
    changed, text = update_readme(book, write=False)
    assert not changed, "run `python -m vislab.book badges`"
    assert README_START in text and README_END in text


def test_slideshow_metadata_from_tags_and_sections():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_markdown_cell("## Part", metadata={"tags": ["slide"]}),
                nbformat.v4.new_code_cell("y = 2", metadata={"tags": ["solution"]})]
    slideshow_metadata(nb)
    kinds = [c.metadata["slideshow"]["slide_type"] for c in nb.cells]
    assert kinds == ["slide", "-", "slide", "skip"]
    untagged = nbformat.v4.new_notebook()
    untagged.cells = [nbformat.v4.new_markdown_cell("intro"), nbformat.v4.new_markdown_cell("## A section"),
                      nbformat.v4.new_code_cell("z = 3")]
    slideshow_metadata(untagged)
    assert [c.metadata["slideshow"]["slide_type"] for c in untagged.cells] == ["slide", "slide", "-"]


def test_build_site_writes_pages_slides_and_index(book, tmp_path):
    ch = book["chapters"][0]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Hello\n\nSome $x^2$ math."),
                nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")],
                                          execution_count=1)]
    files = build_site(book, {ch.id: nb}, tmp_path, rows={ch.id: {"seconds": 1.0, "peak_mb": 10, "status": "ok"}})
    names = {f.relative_to(tmp_path).as_posix() for f in files}
    assert {"index.html", f"chapters/{ch.notebook.stem}.html", f"slides/{ch.notebook.stem}.slides.html"} <= names
    page = (tmp_path / "chapters" / f"{ch.notebook.stem}.html").read_text()
    assert "Hello" in page and "<pre>1" in page          # markdown and the stored output
    slides = (tmp_path / "slides" / f"{ch.notebook.stem}.slides.html").read_text()
    assert "reveal" in slides.lower() and "<section" in slides
    index = (tmp_path / "index.html").read_text()
    for c in book["chapters"]:
        assert c.title in index
    # the Korean edition: same pages under ko/, a switch on every page, the glossary
    from vislab import i18n

    lang, = i18n.languages(book)
    assert {f"ko/chapters/{ch.notebook.stem}.html", f"ko/slides/{ch.notebook.stem}.slides.html",
            "ko/index.html", "ko/glossary.html"} <= names
    ko_page = (tmp_path / "ko" / "chapters" / f"{ch.notebook.stem}.html").read_text()
    assert "<pre>1" in ko_page and "vislab-lang" in ko_page
    assert f"href='../../chapters/{ch.notebook.stem}.html'" in ko_page          # to the English page
    assert f"href='../ko/chapters/{ch.notebook.stem}.html'" in page              # and back
    ko_index = (tmp_path / "ko" / "index.html").read_text()
    assert all(i18n.edition_title(lang, c) in ko_index for c in book["chapters"])
    glossary = (tmp_path / "ko" / "glossary.html").read_text()
    assert glossary.count("<tr>") == len(i18n.load_glossary(lang.glossary)) + 1


def test_build_site_translates_the_executed_chapter(book, tmp_path):
    """A real chapter's executed notebook: the Korean page carries the translated prose and the
    English run's outputs."""
    from vislab import i18n

    lang, = i18n.languages(book)
    ch = book["chapters"][0]
    nb = nbformat.read(ch.notebook, as_version=4)               # the stored checked outputs stand in
    build_site(book, {ch.id: nb}, tmp_path)
    ko_page = (tmp_path / "ko" / "chapters" / f"{ch.notebook.stem}.html").read_text()
    first = i18n.translations(lang, ch)[min(i18n.english_cells(ch))]
    heading = first.splitlines()[0].lstrip("# ").strip()
    assert heading and heading.split()[0] in ko_page
    assert lang.label("edition") in ko_page


def test_colab_bootstrap_is_a_noop_here_and_keeps_colabs_packages(book):
    import sys

    from vislab.book import COLAB_BEGIN, COLAB_END, colab_bootstrap

    block = colab_bootstrap(book)
    assert block.startswith(COLAB_BEGIN) and block.endswith(COLAB_END)
    assert book["repository"] in block and f'"-b", "{book["branch"]}"' in block
    assert '"--no-deps"' in block, "installing vislab must not replace Colab's torch, numpy or ipywidgets"
    assert "enable_custom_widget_manager" in block
    assert "google.colab" not in sys.modules
    namespace = {}
    exec(compile(block, "<bootstrap>", "exec"), namespace)          # outside Colab: only imports sys
    assert set(namespace) - {"__builtins__"} == {"sys"}


def test_every_chapter_starts_with_the_current_bootstrap(book):
    from vislab.book import colab_bootstrap, notebook_from_py

    block = colab_bootstrap(book)
    for ch in book["chapters"]:
        first = next(c.source for c in notebook_from_py(ch.file).cells if c.cell_type == "code")
        assert first.startswith(block), f"{ch.file.name}: run `python -m vislab.book sync`"


def test_binder_environment_installs_the_course_with_cpu_torch():
    """Binder builds from .binder/: the CPU torch index, then the root requirements (which end with
    the editable course package), on a Python the package supports."""
    import re

    root = Path(__file__).resolve().parents[1]
    lines = [ln.strip() for ln in (root / ".binder" / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "-r ../requirements.txt" in lines
    assert (root / ".binder" / "../requirements.txt").resolve() == root / "requirements.txt"
    assert "-e ." in (root / "requirements.txt").read_text().splitlines()
    version = (root / ".binder" / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-3\.(\d+)", version)
    assert match, version
    requires = re.search(r'requires-python\s*=\s*">=3\.(\d+)"', (root / "pyproject.toml").read_text())
    assert requires and int(match.group(1)) >= int(requires.group(1))
