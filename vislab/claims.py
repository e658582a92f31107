"""The claims check: every number in a chapter's prose comes from a cell, or is cited.

The course's promise is that a figure about its own results is computed by a cell, the same on
every machine. Prose cannot compute, so the rule is checked on the executed chapter:

    each number in a markdown cell must
      - appear in the chapter's executed outputs (the same value at the prose's precision; a
        percentage may match a fraction printed as 0.946, "86.6M" may match 86,567,656), or
      - appear in the chapter's code (a setting: "400 steps", "patch 16"), or
      - sit in a block that carries a visible marker ``(cited: SOURCE)``: a paper's or a model
        card's figure, with its source.

A *block* is one sentence of a paragraph, one list item, or one whole table together with the
line just above it (its caption). Not counted as numbers: integers below 20 (counts, section and
equation numbers), anything inside ``$...$`` math, ``backticks``, code fences, HTML tags and
comments, link targets and URLs, the year of a reference ("..., 2021)", "(2024)"), and numbers glued to letters as parts of names (``B/16``,
``DINOv2``, ``2D``, ``4x4``, ``x2``); Hangul right after a number is a counter or particle, not a
name (the Korean edition: "197개" is the number 197), and a Korean sentence is a block of its own. Cells tagged ``online`` describe what real weights show when
the hub is reachable; they are not checked offline.

Results therefore go through ``IPython.display.Markdown`` built from the measured variables
(those are outputs, so they pass by construction), and paper figures carry ``(cited: ...)``.

    python -m vislab.book claims            # execute each chapter, then check its prose
    python -m vislab.book claims 02 --executed _build/executed   # check saved executed notebooks

The same check runs inside the test suite: ``tests/nbval_plugin.py`` collects the outputs nbval
produced and adds one "claims" item after each chapter.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

__all__ = ["Claim", "prose_numbers", "output_numbers", "code_numbers", "claims_problems", "CITE_MARK"]

CITE_MARK = re.compile(r"\bcited:[^)\n]*\)?", re.I)   # "(cited: SOURCE)", or "...; cited: SOURCE)" inside a parenthesis
_HANGUL = re.compile(r"[\uac00-\ud7a3]")   # Korean text (the Korean edition's prose)
SMALL_INT = 20                       # bare integers below this are counts and references, not claims

_EXEMPT_SPANS = [
    re.compile(r"```.*?```", re.S),                 # code fences
    re.compile(r"\$\$.*?\$\$", re.S),               # display math
    re.compile(r"(?<!\\)\$.+?(?<!\\)\$", re.S),     # inline math
    re.compile(r"`[^`]*`"),                         # code spans
    re.compile(r"<!--.*?-->", re.S),                # HTML comments
    re.compile(r"\]\([^)]*\)"),                     # link targets
    re.compile(r"https?://\S+"),                    # bare URLs
    re.compile(r"<[^>\n]+>"),                       # HTML tags (their attributes)
    re.compile(r"\barXiv[:\s]*\d{4}\.\d{4,5}(v\d+)?", re.I),   # arXiv ids
    re.compile(r"\b(1[89]|20)\d0s\b"),                            # decades: "the 2020s"
    re.compile(r"(?<=[,(] )(19[89]\d|20[0-3]\d)(?=[),;.]|$)|(?<=\()(19[89]\d|20[0-3]\d)(?=[),;])|"
               r"(?<=et al\. )(19[89]\d|20[0-3]\d)", re.M),      # years of a reference: "Title, 2024)"
]

# A number: digits with optional thousands commas and decimals, or scientific notation.
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:[eE]([-+]?\d+))?")
_SCALE = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9}
_UNITS = ("%", "x", "×", "s", "ms", "MB", "GB", "KB", "px", "M", "B", "k", "K", "G", "pt", "bits", "bit")


@dataclass(frozen=True)
class Claim:
    """One number read from prose."""
    text: str          # as written, e.g. "94.6%"
    value: float       # the number as written, without its k/M/B suffix
    scale: float       # 1, or 1e3/1e6/1e9 for a k/M/B suffix
    decimals: int      # digits after the point, as written
    percent: bool
    block: str         # the sentence, list item or table it sits in
    cell: int          # 1-based index of the markdown cell in the notebook


def _blank(text: str, pattern: re.Pattern) -> str:
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def _blocks(text: str) -> list:
    """Split markdown into blocks, as ``(start, end)`` offsets: a table with the line just above
    it (across at most one blank line), a list item with its continuation lines, a heading, or one sentence of a paragraph."""
    lines, pos = [], 0
    for line in text.splitlines(keepends=True):
        lines.append((pos, pos + len(line), line.rstrip("\n")))
        pos += len(line)
    item_re = re.compile(r"\s*([-*+]|\d+[.)])\s+")
    spans, para, i = [], [], 0

    def flush():
        if not para:
            return
        a, b = para[0][0], para[-1][1]
        cut = a
        for m in re.finditer(r"(?<=[.!?])\s+(?=[A-Z(*\[\"'\uac00-\ud7a3])", text[a:b]):
            spans.append((cut, a + m.start()))
            cut = a + m.end()
        spans.append((cut, b))
        para.clear()

    while i < len(lines):
        a, b, line = lines[i]
        stripped = line.strip()
        if stripped.startswith("|"):
            start = a
            if para:                                   # the caption: the line just above the table
                start = para.pop()[0]
            else:                                      # or the line above it, across one blank line
                k = i - 1 if i and lines[i - 1][2].strip() else i - 2
                if k >= 0 and lines[k][2].strip() and not lines[k][2].strip().startswith("|"):
                    start = lines[k][0]
                    while spans and spans[-1][1] > start:
                        spans.pop()
            flush()
            while i < len(lines) and lines[i][2].strip().startswith("|"):
                i += 1
            spans.append((start, lines[i - 1][1]))
            continue
        if item_re.match(line):
            flush()
            j = i + 1
            while j < len(lines) and lines[j][2].strip() and not item_re.match(lines[j][2]) \
                    and not lines[j][2].strip().startswith(("|", "#")):
                j += 1
            spans.append((a, lines[j - 1][1]))
            i = j
            continue
        if not stripped or stripped.startswith("#"):
            flush()
            if stripped:
                spans.append((a, b))
        else:
            para.append((a, b))
        i += 1
    flush()
    return spans


def _parse(match: re.Match, text: str):
    """(value, decimals, percent, is_name) for one regex match inside ``text``."""
    whole, frac, exp = match.group(1), match.group(2) or "", match.group(3)
    start, end = match.start(), match.end()
    before = text[max(0, start - 2):start]
    after = text[end:end + 4]
    # glued to a name: preceded by a letter (v2, x2), or by "/" or "-" after a letter (B/16, ViT-L),
    # or followed by a letter that is not a unit (2D, 4x4 is handled below)
    if before[-1:].isalpha() or (before[-1:] in "/-" and before[:1].isalpha()):
        return None
    if re.match(r"[x×]\d", after):                                   # 4x4, 3×224
        return None
    if before[-1:] in "x×" and before[:1].isdigit():
        return None
    unit = ""
    m = re.match(r"\s?(%|×|x(?![a-z])|ms\b|MB\b|GB\b|KB\b|px\b|pt\b|bits?\b|s\b|[kKMBG](?![a-zA-Z]))", after)
    if m:
        unit = m.group(1)
    elif _HANGUL.match(after[:1]):
        pass                           # a Korean counter or particle ("197개", "400단계"): a number all the same
    elif after[:1].isalpha():
        return None                                                   # 2D, 3rd, 10th
    value = float(whole.replace(",", "") + frac + (f"e{exp}" if exp else ""))
    decimals = len(frac) - 1 if frac else 0
    if exp:
        decimals = max(0, decimals - int(exp))
    scale = _SCALE[unit] if unit in _SCALE and not exp else 1.0
    return value, scale, decimals, unit == "%", unit


def prose_numbers(source: str, cell: int = 0) -> list:
    """The checkable numbers in one markdown cell, each with its block."""
    text = source
    for pattern in _EXEMPT_SPANS + [CITE_MARK]:
        text = _blank(text, pattern)                 # same length: offsets stay valid
    claims = []
    for a, b in _blocks(text):
        if CITE_MARK.search(source[a:b]):
            continue
        block = text[a:b]
        for match in _NUMBER.finditer(block):
            parsed = _parse(match, block)
            if parsed is None:
                continue
            value, scale, decimals, percent, unit = parsed
            if not unit and decimals == 0 and value < SMALL_INT and not match.group(3):
                continue
            claims.append(Claim(text=match.group(0) + unit, value=value, scale=scale, decimals=decimals,
                                percent=percent, block=source[a:b].strip(), cell=cell))
    return claims


def _text_of_output(out) -> str:
    parts = []
    if out.get("output_type") == "stream":
        parts.append(out.get("text", ""))
    for mime, value in (out.get("data") or {}).items():
        if mime in ("text/plain", "text/markdown", "text/latex"):
            parts.append(value if isinstance(value, str) else "".join(value))
        elif mime == "text/html":
            value = value if isinstance(value, str) else "".join(value)
            parts.append(html.unescape(re.sub(r"<[^>]+>", " ", value)))
    return "\n".join(parts)


def _numbers_in(text: str) -> list:
    values = []
    for m in re.finditer(r"(?<![\w.])[-+]?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:[eE]([-+]?\d+))?", text):
        try:
            v = float(m.group(1).replace(",", "") + (m.group(2) or "") + (f"e{m.group(3)}" if m.group(3) else ""))
        except ValueError:
            continue
        values.append(v)
        tail = text[m.end():m.end() + 2]
        if tail[:1] in _SCALE and not tail[1:2].isalpha():
            values.append(v * _SCALE[tail[:1]])
    return values


def output_numbers(outputs_by_cell) -> list:
    """Every number printed by the executed code cells (an iterable of output lists)."""
    values = []
    for outputs in outputs_by_cell:
        for out in outputs or []:
            values += _numbers_in(_text_of_output(out))
    return values


def code_numbers(nb) -> list:
    """Every number written in the chapter's code cells (settings, bars, sizes)."""
    values = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            values += _numbers_in(cell.source)
    return values


def _matches(claim: Claim, values) -> bool:
    """True when some value, read as itself, as a fraction (x100) or as a percentage (/100), and
    rounded to the claim's precision, is the number the prose wrote."""
    tol = 1e-9 * max(1.0, abs(claim.value))
    for v in values:
        for c in (v, v * 100, v / 100):
            if abs(round(c / claim.scale, claim.decimals) - claim.value) <= tol:
                return True
    return False


def claims_problems(nb, outputs_by_cell=None) -> list:
    """Numbers in ``nb``'s markdown cells that no output, no code and no citation backs.

    Args:
        nb: the chapter notebook (nbformat); its code cells' outputs are used unless
            ``outputs_by_cell`` gives them (a list of output lists, e.g. collected by nbval).
    Returns:
        readable problem lines; empty when every number is backed.
    """
    if outputs_by_cell is None:
        outputs_by_cell = [c.get("outputs", []) for c in nb.cells if c.cell_type == "code"]
    values = output_numbers(outputs_by_cell) + code_numbers(nb)
    problems = []
    for i, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "markdown" or "online" in cell.get("metadata", {}).get("tags", []):
            continue
        for claim in prose_numbers(cell.source, cell=i):
            if not _matches(claim, values):
                excerpt = re.sub(r"\s+", " ", claim.block)
                if len(excerpt) > 140:
                    at = max(0, excerpt.find(claim.text.rstrip("%")) - 60)
                    excerpt = ("…" if at else "") + excerpt[at:at + 140] + "…"
                problems.append(f"cell {i}: {claim.text!r} is in no output, no code cell and no (cited: ...) "
                                f"block: «{excerpt}»")
    return problems
