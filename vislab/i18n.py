"""Translated editions of the course from one source: the English chapters.

A translated edition never copies code. For each chapter and language there is one file of
translations, ``i18n/<lang>/NN_name.md``, with one entry per markdown cell of the English
chapter::

    <!-- cell 3 · en 1f0c2a9b44de -->
    ## 1. 패치 (patch) 자르기
    ...

``cell 3`` is the cell's 1-based position in the English notebook and ``en 1f0c...`` the first
twelve hex digits of the SHA-256 of the English markdown it was translated from. ``· todo``
after the hash marks an entry that still needs (re)translation. From these files,
``python -m vislab.book sync`` *generates* ``chapters/<lang>/NN_name.py`` and its ``.ipynb``:
the English chapter with its markdown replaced, so that every code cell is the English one by
construction. ``python -m vislab.book check`` then fails when

- an English cell changed since it was translated (the recorded hash is stale),
- an entry is still ``todo``, missing, or points at a cell that is no longer markdown,
- a translation lost or changed something that must stay byte-identical: a number, a math
  span, a code span, a link target, a ``(cited: ...)`` marker, or is not translated at all,
- a generated edition file differs from what sync writes (it was edited by hand, or the
  English code changed and sync was not run).

``python -m vislab.book i18n stub ko 05`` writes or refreshes the translation file: entries
whose English is unchanged are kept, new and changed cells become ``todo`` entries (a changed
one keeps its previous translation under the new English, for the translator to update).

The chapter code runs in English whatever the edition: messages printed by vislab (the check
helper's ✓/✗ lines, widget labels, rendered result paragraphs) stay English throughout.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Language", "Entry", "languages", "source_hash", "english_cells", "translation_path",
           "edition_path", "parse_translation", "format_translation", "stub", "status",
           "edition_notebook", "edition_text", "edition_problems", "edition_title", "translate_notebook",
           "load_glossary", "glossary_problems", "glossary_markdown", "HANGUL"]

HASH_DIGITS = 12
HEADER_RE = re.compile(r"^<!-- cell (\d+) · en ([0-9a-f]{12})( · todo)? -->\s*$")
HANGUL = re.compile(r"[\uac00-\ud7a3]")
FILE_INTRO = ("<!-- vislab i18n: {name} translation of {source}, one entry per markdown cell.\n"
              "     Each entry starts with a header `cell N · en HASH` in an HTML comment: N is the cell's position in the English\n"
              "     notebook, HASH the start of the SHA-256 of the English text it was translated from.\n"
              "     `· todo` marks an entry that still needs translating. Edit the text below each header;\n"
              "     `python -m vislab.book sync` generates {edition} from this file and the English code. -->\n")


@dataclass(frozen=True)
class Language:
    """One translated edition, from book.yml's ``languages`` block."""
    code: str
    name: str
    chapters_dir: Path              # where the generated notebooks go (chapters/ko)
    source_dir: Path                # where the translation files live (i18n/ko)
    glossary: Path | None
    labels: dict = field(default_factory=dict)

    def label(self, key: str, default: str = "") -> str:
        return str(self.labels.get(key, default))


@dataclass
class Entry:
    cell: int          # 1-based cell position in the English notebook
    en: str            # hash of the English markdown it was made from
    text: str          # the translation
    todo: bool = False


def languages(book) -> list:
    """The translated editions that book.yml lists (the source language is not one of them)."""
    root = Path(book["root"])
    out = []
    for raw in book.get("languages") or []:
        if raw.get("source"):
            continue
        for key in ("code", "name", "chapters", "translations"):
            if key not in raw:
                raise ValueError(f"book.yml: language {raw!r} lacks '{key}' (code, name, chapters, translations)")
        out.append(Language(code=str(raw["code"]), name=str(raw["name"]), chapters_dir=root / raw["chapters"],
                            source_dir=root / raw["translations"],
                            glossary=root / raw["glossary"] if raw.get("glossary") else None,
                            labels=dict(raw.get("labels") or {})))
    return out


def source_hash(text: str) -> str:
    """The first twelve hex digits of the SHA-256 of a cell's English markdown."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_DIGITS]


def translation_path(lang: Language, ch) -> Path:
    return lang.source_dir / f"{ch.file.stem}.md"


def edition_path(lang: Language, ch) -> Path:
    """The generated edition's .py (its .ipynb sits next to it)."""
    return lang.chapters_dir / ch.file.name


def _read_english(ch):
    import jupytext

    return jupytext.read(ch.file, fmt="py:percent")


def english_cells(ch, nb=None) -> dict:
    """``{cell number: English markdown}`` for every markdown cell of the chapter."""
    nb = nb if nb is not None else _read_english(ch)
    return {i: c.source for i, c in enumerate(nb.cells, 1) if c.cell_type == "markdown"}


# ----------------------------------------------------------------------------- the file format
def parse_translation(text: str, where: str = "translation") -> list:
    """The entries of a translation file; ``ValueError`` naming the line when it is malformed.

    The file may open with one HTML comment (the intro sync writes); everything after it
    belongs to entries, each starting with its ``<!-- cell N · en HASH -->`` header."""
    lines = text.splitlines()
    n0 = 0
    while n0 < len(lines) and not lines[n0].strip():
        n0 += 1
    if n0 < len(lines) and lines[n0].startswith("<!--") and not lines[n0].startswith("<!-- cell "):
        while n0 < len(lines) and "-->" not in lines[n0]:
            n0 += 1
        n0 += 1
    entries, current, seen = [], None, set()
    for n in range(n0, len(lines)):
        line = lines[n]
        if line.startswith("<!-- cell "):
            m = HEADER_RE.match(line)
            if not m:
                raise ValueError(f"{where}:{n + 1}: malformed entry header {line!r}; expected "
                                 "'<!-- cell N · en HASH -->' (HASH: 12 hex digits), optionally ' · todo' before '-->'")
            cell = int(m.group(1))
            if cell in seen:
                raise ValueError(f"{where}:{n + 1}: cell {cell} has two entries; keep one")
            seen.add(cell)
            current = (Entry(cell=cell, en=m.group(2), text="", todo=bool(m.group(3))), [])
            entries.append(current)
        elif current is not None:
            current[1].append(line)
        elif line.strip():
            raise ValueError(f"{where}:{n + 1}: text before the first '<!-- cell N · en HASH -->' header")
    out = []
    for e, body in entries:
        e.text = "\n".join(body).strip("\n")
        out.append(e)
    return out


def format_translation(entries, lang: Language, ch, root: Path) -> str:
    edition = edition_path(lang, ch)
    rel = lambda p: p.resolve().relative_to(Path(root).resolve()).as_posix()
    parts = [FILE_INTRO.format(name=lang.name, source=rel(ch.file), edition=rel(edition))]
    for e in sorted(entries, key=lambda e: e.cell):
        parts.append(f"<!-- cell {e.cell} · en {e.en}{' · todo' if e.todo else ''} -->\n{e.text.strip(chr(10))}\n")
    return "\n".join(parts)


def read_entries(lang: Language, ch) -> list:
    path = translation_path(lang, ch)
    if not path.exists():
        return []
    return parse_translation(path.read_text(encoding="utf-8"), where=str(path))


def _pair_changed(old: list, new: list) -> dict:
    """New cell index -> the old entry it most likely replaces.

    The entries' hashes are aligned with the chapter's cells (difflib): unchanged cells anchor
    the alignment, and inside a run of changed cells the old entries pair with the new cells in
    order. So inserting a cell before an edited one still hands the edited cell its own old
    translation, not its neighbour's (pairing by cell index would shift every entry after the
    insertion)."""
    import difflib

    old = sorted(old, key=lambda e: e.cell)
    matcher = difflib.SequenceMatcher(None, [e.en for e in old], [h for _, h, _ in new], autojunk=False)
    pairs = {}
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs.update((new[j1 + k][0], old[i1 + k]) for k in range(i2 - i1))
        elif tag == "replace" and i2 - i1 == j2 - j1:
            pairs.update((new[j1 + k][0], old[i1 + k]) for k in range(i2 - i1))
        elif tag == "replace":
            # unequal runs (cells inserted or removed next to edited ones): pair by what a
            # translation keeps verbatim (math, code spans, link targets, numbers), best first
            scored = sorted(((_overlap(old[i].text, new[j][2]), i, j) for i in range(i1, i2) for j in range(j1, j2)),
                            reverse=True)
            used_old, used_new = set(), set()
            for score, i, j in scored:
                if score > 0 and i not in used_old and j not in used_new:
                    pairs[new[j][0]] = old[i]
                    used_old.add(i)
                    used_new.add(j)
    return pairs


def _kept_tokens(text: str) -> set:
    tokens = {m.group(0) for pattern in _KEEP.values() for m in pattern.finditer(text)}
    return tokens | _numbers(text)


def _overlap(a: str, b: str) -> float:
    """Jaccard overlap of the verbatim-kept tokens of two texts (0 when either has none)."""
    ta, tb = _kept_tokens(a), _kept_tokens(b)
    return len(ta & tb) / len(ta | tb) if ta and tb else 0.0


def stub(lang: Language, ch, root: Path) -> dict:
    """Write or refresh the chapter's translation file; returns counts of kept/new/stale/dropped.

    An entry is kept when its English is unchanged (matched by hash, so a moved cell keeps its
    translation). A new cell gets a ``todo`` entry holding the English text. A changed cell
    gets a ``todo`` entry with the new hash, its previous translation, and the new English in an
    HTML comment, so the translator sees what changed.
    """
    english = english_cells(ch)
    old = read_entries(lang, ch)
    by_hash = {}
    for e in old:
        by_hash.setdefault(e.en, e)
    before = _pair_changed(old, [(cell, source_hash(text), text) for cell, text in english.items()])
    counts = Counter()
    entries = []
    for cell, text in english.items():
        h = source_hash(text)
        if h in by_hash and not by_hash[h].todo:
            entries.append(Entry(cell, h, by_hash[h].text))
            counts["kept"] += 1
        elif cell in before and before[cell].en != h and HANGUL.search(before[cell].text):
            previous = re.sub(r"\n*<!-- English now:.*?-->\s*$", "", before[cell].text, flags=re.S)
            entries.append(Entry(cell, h, f"{previous}\n\n<!-- English now:\n{text.replace('-->', '- ->')}\n-->",
                                 todo=True))
            counts["stale"] += 1
        elif h in by_hash:
            entries.append(Entry(cell, h, by_hash[h].text, todo=True))
            counts["todo"] += 1
        else:
            entries.append(Entry(cell, h, text, todo=True))
            counts["new"] += 1
    counts["dropped"] = len({e.en for e in old} - {e.en for e in entries})
    path = translation_path(lang, ch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_translation(entries, lang, ch, root), encoding="utf-8")
    return dict(counts)


def status(lang: Language, chapters) -> list:
    """Per chapter: markdown cells, translated, todo, stale, missing."""
    rows = []
    for ch in chapters:
        english = english_cells(ch)
        entries = {e.cell: e for e in read_entries(lang, ch)}
        done = todo = stale = 0
        for cell, text in english.items():
            e = entries.get(cell)
            if e is None:
                continue
            if e.todo:
                todo += 1
            elif e.en != source_hash(text):
                stale += 1
            else:
                done += 1
        rows.append({"chapter": ch.file.stem, "cells": len(english), "translated": done, "todo": todo,
                     "stale": stale, "missing": len(english) - done - todo - stale})
    return rows


# ----------------------------------------------------------------------------- what must not change
_KEEP = {
    "math": re.compile(r"\$\$.*?\$\$|(?<!\\)\$.+?(?<!\\)\$", re.S),
    "code span": re.compile(r"(`+)(?!`)(?:(?!\n[ \t]*\n).)+?(?<!`)\1(?!`)", re.S),   # ``a`b``, wraps lines
    "link target": re.compile(r"\]\(([^)\s]+)\)"),
}
_CITED = re.compile(r"\bcited:", re.I)
_NUM = re.compile(r"(?<![\d.,])\d+(?:[.,]\d+)*")


def _strip_kept(text: str) -> str:
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    for pattern in _KEEP.values():
        text = pattern.sub(" ", text)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    return re.sub(r"https?://\S+|<[^>\n]+>", " ", text)


def _numbers(text: str) -> set:
    return {m.group(0).rstrip(".,") for m in _NUM.finditer(_strip_kept(text))}


def translation_problems(english: str, translated: str) -> list:
    """What a translation of one cell lost or changed (empty = fine)."""
    problems = []
    for what, pattern in _KEEP.items():
        def spans(text):
            if what == "code span":                # math and fences hide their own backticks
                text = re.sub(r"```.*?```", " ", _KEEP["math"].sub(" ", text), flags=re.S)
            return Counter(re.sub(r"\s+", " ", m.group(0)) for m in pattern.finditer(text))   # line breaks may move

        en, ko = spans(english), spans(translated)
        lost, extra = en - ko, ko - en
        if lost:
            problems.append(f"{what} lost or changed: {', '.join(sorted(lost))[:160]}")
        if extra:
            problems.append(f"{what} not in the English: {', '.join(sorted(extra))[:160]}")
    if len(_CITED.findall(english)) != len(_CITED.findall(translated)):
        problems.append(f"{len(_CITED.findall(english))} '(cited: ...)' marker(s) in the English, "
                        f"{len(_CITED.findall(translated))} in the translation (keep each, in the same sentence)")
    en_n, ko_n = _numbers(english), _numbers(translated)
    # a small integer may be added where Korean needs a digit ("11월", "2번째"); figures may not
    extra = {n for n in ko_n - en_n if not (n.isdigit() and int(n) < 20)}
    if extra:
        problems.append(f"number(s) not in the English cell: {', '.join(sorted(extra))} "
                        "(write numbers exactly as the English does)")
    lost = {n for n in en_n - ko_n if not (n.isdigit() and int(n) < 20)}    # "2-billion" may become "이십억"
    if lost:
        problems.append(f"number(s) of the English cell missing: {', '.join(sorted(lost))}")
    words = re.findall(r"[A-Za-z]{3,}", _strip_kept(english))
    if len(words) >= 3 and not HANGUL.search(translated):
        problems.append("no Korean text: the cell is not translated")
    return problems


# ----------------------------------------------------------------------------- the edition
def _banner(lang: Language, ch) -> str:
    english = f"../{ch.notebook.name}"
    glossary = "glossary.md"
    parts = [f"**{lang.label('edition', lang.name + ' edition')}**",
             f"[{lang.label('english', 'English')}]({english})",
             f"[{lang.label('glossary', 'Glossary')}]({glossary})"]
    notice = lang.label("notice")
    return "> " + " · ".join(parts) + (f"\n>\n> {notice}" if notice else "")


def _with_banner(text: str, banner: str) -> str:
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("# "):
            return "\n".join(lines[:i + 1] + ["", banner] + lines[i + 1:])
    return banner + "\n\n" + text


def translations(lang: Language, ch) -> dict:
    """``{cell: translated markdown}`` of the entries that are done (not todo)."""
    return {e.cell: e.text for e in read_entries(lang, ch) if not e.todo}


def edition_notebook(lang: Language, ch):
    """The edition as a jupytext notebook: the English chapter, markdown replaced by the
    translations (untranslated cells stay English), a banner under the title linking the
    English original and the glossary."""
    nb = _read_english(ch)
    done = translations(lang, ch)
    first = True
    for i, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "markdown":
            continue
        if i in done:
            cell.source = done[i]
        if first:
            cell.source = _with_banner(cell.source, _banner(lang, ch))
            first = False
    return nb


def edition_text(lang: Language, ch) -> str:
    """The edition's .py (Jupytext percent format), as sync writes it."""
    import jupytext

    return jupytext.writes(edition_notebook(lang, ch), fmt="py:percent")


def edition_title(lang: Language, ch) -> str:
    """The translated chapter title: the first heading of the translated first cell, without its
    'Chapter N ·' prefix; the English title where there is none."""
    done = translations(lang, ch)
    first = min(english_cells(ch), default=None)
    text = done.get(first, "")
    m = re.search(r"^#\s+(.+)$", text, re.M)
    if not m or not HANGUL.search(m.group(1)):
        return ch.title
    return re.sub(r"^\s*(?:\d+\s*장|Chapter\s+\d+)\s*[·:.\-]\s*", "", m.group(1)).strip()


def translate_notebook(executed, lang: Language, ch):
    """An executed English notebook with its markdown replaced by the translations (for the
    site: the outputs are the English run's, the code identical). Cells are matched by the hash
    of their English text, so online cells removed from ``executed`` do not shift anything."""
    import copy

    english = english_cells(ch)
    done = translations(lang, ch)
    by_hash = {source_hash(text): done[cell] for cell, text in english.items() if cell in done}
    first_md = min(english, default=None)
    nb = copy.deepcopy(executed)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        h = source_hash(cell.source)
        title = first_md is not None and h == source_hash(english[first_md])
        if h in by_hash:
            cell.source = by_hash[h]
        if title:
            cell.source = _with_banner(cell.source, _banner(lang, ch).replace(
                f"../{ch.notebook.name}", f"../../chapters/{ch.notebook.stem}.html").replace(
                "glossary.md", "../glossary.html"))
    return nb


def edition_problems(lang: Language, ch, root: Path, generated: bool = True) -> list:
    """Everything that keeps the chapter's edition from matching its English source; with
    ``generated=False`` only the translation file's problems (not the files sync writes)."""
    import nbformat

    from vislab.book import notebook_from_py, _notebook_text

    root = Path(root)
    rel = lambda p: p.resolve().relative_to(root.resolve()).as_posix() if p.resolve().is_relative_to(root.resolve()) else str(p)
    path = translation_path(lang, ch)
    stub_cmd = f"`python -m vislab.book i18n stub {lang.code} {ch.id}`"
    if not path.exists():
        return [f"{rel(path)}: no {lang.code} translation of {ch.file.name} (run {stub_cmd} and translate it)"]
    try:
        entries = read_entries(lang, ch)
    except ValueError as err:
        return [str(err)]
    nb = _read_english(ch)
    english = english_cells(ch, nb)
    problems = []
    by_cell = {e.cell: e for e in entries}
    todo = [e.cell for e in entries if e.todo]
    if todo:
        problems.append(f"{rel(path)}: {len(todo)} cell(s) still marked todo: {todo[:12]}"
                        f"{' ...' if len(todo) > 12 else ''} (translate them and drop ' · todo')")
    for cell, text in english.items():
        e = by_cell.get(cell)
        if e is None:
            problems.append(f"{rel(path)}: English markdown cell {cell} has no entry (run {stub_cmd})")
        elif not e.todo and e.en != source_hash(text):
            problems.append(f"{rel(path)}: cell {cell} is stale: its English changed since it was translated "
                            f"(recorded {e.en}, now {source_hash(text)}); run {stub_cmd} and update the translation")
        elif not e.todo:
            problems += [f"{rel(path)}: cell {cell}: {p}" for p in translation_problems(text, e.text)]
    for e in entries:
        if e.cell not in english:
            kind = "no cell" if e.cell > len(nb.cells) else "a code cell"
            problems.append(f"{rel(path)}: entry for cell {e.cell}, which is {kind} in {ch.file.name} (run {stub_cmd})")
    if not generated:
        return problems
    # the generated files
    py = edition_path(lang, ch)
    sync = "run `python -m vislab.book sync`"
    if not py.exists():
        return problems + [f"{rel(py)}: missing; {sync}"]
    if py.read_text(encoding="utf-8") != edition_text(lang, ch):
        problems.append(f"{rel(py)}: differs from what sync generates from {ch.file.name} and {rel(path)} "
                        f"(edit the English chapter or the translation, never the edition); {sync}")
    ipynb = py.with_suffix(".ipynb")
    if not ipynb.exists():
        return problems + [f"{rel(ipynb)}: missing; {sync}"]
    reference = nbformat.read(ch.notebook, as_version=4) if ch.notebook.exists() else None
    actual_text = ipynb.read_text(encoding="utf-8")
    actual = nbformat.reads(actual_text, as_version=4)
    en_code = [(c.source, dict(c.metadata)) for c in (reference.cells if reference else []) if c.cell_type == "code"]
    ko_code = [(c.source, dict(c.metadata)) for c in actual.cells if c.cell_type == "code"]
    if reference is not None and en_code != ko_code:
        at = next((i for i, (a, b) in enumerate(zip(en_code, ko_code), 1) if a != b), min(len(en_code), len(ko_code)) + 1)
        what = "metadata" if at <= min(len(en_code), len(ko_code)) and en_code[at - 1][0] == ko_code[at - 1][0] else "source"
        problems.append(f"{rel(ipynb)}: code cell {at} {what} differs from {ch.notebook.name}'s: the edition's code "
                        f"must be the English code; {sync}")
    if _notebook_text(notebook_from_py(py, reference=reference)) != actual_text:
        problems.append(f"{rel(ipynb)}: out of sync with {py.name}; {sync}")
    return problems


# ----------------------------------------------------------------------------- glossary
def load_glossary(path: Path) -> list:
    """The glossary's terms: ``[{"en", "ko", "definition"}]`` (from a YAML list)."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    terms = raw.get("terms") if isinstance(raw, dict) else raw
    if not isinstance(terms, list):
        raise ValueError(f"{path}: expected a mapping with a 'terms' list of {{en, ko, definition}}")
    return terms


def glossary_problems(path: Path, lang_code: str = "ko") -> list:
    try:
        terms = load_glossary(path)
    except (ValueError, OSError) as err:
        return [str(err)]
    problems, seen = [], set()
    for i, t in enumerate(terms, 1):
        if not isinstance(t, dict) or any(not str(t.get(k) or "").strip() for k in ("en", lang_code, "definition")):
            problems.append(f"{path.name}: term {i} needs en, {lang_code} and definition: {t!r}")
            continue
        key = str(t["en"]).lower()
        if key in seen:
            problems.append(f"{path.name}: term {t['en']!r} appears twice")
        seen.add(key)
    return problems


def glossary_markdown(lang: Language, book) -> str:
    """The glossary page of an edition (chapters/<lang>/glossary.md), sorted by the English term."""
    terms = sorted(load_glossary(lang.glossary), key=lambda t: str(t["en"]).lower())
    intro = lang.label("glossary_intro")
    head = f"# {lang.label('glossary', 'Glossary')}\n\n" + (f"{intro}\n\n" if intro else "")
    rows = [f"| English | {lang.name} | {lang.label('definition', 'definition')} |", "|---|---|---|"]
    for t in terms:
        cells = [str(t["en"]), str(t[lang.code]), str(t["definition"])]
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return head + "\n".join(rows) + "\n"
