"""A word-level tokenizer for ShapeWorld captions (the text side of chapter 3).

CLIP (Radford et al., arXiv:2103.00020, sec. 2.4) uses a 49,152-word byte-pair
encoding, brackets every caption with ``[SOS]`` and ``[EOS]`` tokens and reads the
text tower's output at ``[EOS]``. ShapeWorld's captions use a few dozen words, so a
word-level vocabulary does the same job and stays readable: one id per word.

Rules (the whole tokenizer, in order):

1. lower-case the text and split it into words and punctuation marks
   (``"A red circle, left of..."`` → ``["a", "red", "circle", ",", "left", "of", ...]``);
2. map each word to its id. **An unknown word** (one not in the vocabulary) becomes the
   ``<unk>`` token when ``unknown="unk"`` (the default, so that zero-shot prompts with a
   new word still run: every unknown word looks the same to the model), or raises
   ``KeyError`` naming the word when ``unknown="error"``;
3. add ``<sot>`` before and ``<eot>`` after, then pad with ``<pad>`` to
   ``context_length``. A caption that does not fit raises ``ValueError`` (or is cut,
   keeping ``<eot>`` last, when ``truncate=True``; CLIP's own ``tokenize`` raises too).

Ids: ``<pad>`` 0, ``<unk>`` 1, ``<sot>`` 2, ``<eot>`` 3, then the words in the given order.

Shape legend: B captions, L context length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

__all__ = ["CaptionTokenizer", "split_words", "shapeworld_vocabulary", "shapeworld_tokenizer",
           "SPECIALS", "PROMPT_WORDS"]

SPECIALS = ("<pad>", "<unk>", "<sot>", "<eot>")

# Words of the prompt templates chapter 3 uses ("a photo of a {shape}", "a photo of a {shape},
# a type of shape", "a rendering of a {color} {shape}", ...). They are in the vocabulary so that
# the model has an embedding for each (one it learns only if they occur in training captions).
PROMPT_WORDS = ("a", "an", "the", "photo", "of", "picture", "rendering", "drawing", "image", "type",
                "shape", "small", "big", "large", "this", "is", "there", "and", ",", ".")

_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def split_words(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words and single punctuation marks."""
    if not isinstance(text, str):
        raise TypeError(f"a caption must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class CaptionTokenizer:
    """Word-level tokenizer with CLIP's ``<sot> ... <eot>`` framing and right padding.

    Args:
        words: the vocabulary, without the special tokens (they are added in front, see
            :data:`SPECIALS`). Duplicates are an error.
        context_length: L, the number of ids per caption, ``<sot>`` and ``<eot>`` included.
        unknown: ``"unk"`` (map unknown words to ``<unk>``) or ``"error"`` (raise).
    """

    words: tuple[str, ...]
    context_length: int = 16
    unknown: str = "unk"

    def __post_init__(self):
        words = tuple(self.words)
        object.__setattr__(self, "words", words)
        if not words or not all(isinstance(w, str) and w for w in words):
            raise ValueError("words must be a non-empty sequence of non-empty strings")
        clash = [w for w in words if w in SPECIALS]
        if clash:
            raise ValueError(f"words must not contain the special tokens {SPECIALS}; found {clash}")
        seen, dupes = set(), []
        for w in words:
            (dupes.append(w) if w in seen else seen.add(w))
        if dupes:
            raise ValueError(f"duplicate words in the vocabulary: {sorted(set(dupes))}")
        bad = [w for w in words if split_words(w) != [w]]
        if bad:
            raise ValueError(f"vocabulary entries must be single lower-case words or one punctuation "
                             f"mark (what split_words produces); got {bad}")
        if isinstance(self.context_length, bool) or not isinstance(self.context_length, int) \
                or self.context_length < 3:
            raise ValueError(f"context_length must be an int >= 3 (<sot>, one word, <eot>), "
                             f"got {self.context_length!r}")
        if self.unknown not in ("unk", "error"):
            raise ValueError(f"unknown must be 'unk' or 'error', got {self.unknown!r}")
        object.__setattr__(self, "_ids", {w: i for i, w in enumerate(SPECIALS + words)})

    # ids of the special tokens
    pad_id = 0
    unk_id = 1
    sot_id = 2
    eot_id = 3

    @property
    def vocab(self) -> tuple[str, ...]:
        """Every token, in id order (specials first)."""
        return SPECIALS + self.words

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.words)

    def __len__(self) -> int:
        return self.vocab_size

    def __contains__(self, word: str) -> bool:
        return word in self._ids

    def unknown_words(self, texts: str | Iterable[str]) -> list[str]:
        """The words of ``texts`` that are not in the vocabulary (sorted, no repeats)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        return sorted({w for t in texts for w in split_words(t) if w not in self._ids})

    def tokenize_one(self, text: str, truncate: bool = False) -> list[int]:
        """Ids of one caption, ``<sot>`` and ``<eot>`` included, without padding."""
        ids = [self.sot_id]
        for w in split_words(text):
            i = self._ids.get(w)
            if i is None:
                if self.unknown == "error":
                    raise KeyError(f"unknown word {w!r} in caption {text!r}; the vocabulary has "
                                   f"{self.vocab_size} tokens. Use unknown='unk' to map it to <unk>, "
                                   "or add the word to the vocabulary")
                i = self.unk_id
            ids.append(i)
        ids.append(self.eot_id)
        if len(ids) > self.context_length:
            if not truncate:
                raise ValueError(f"caption {text!r} needs {len(ids)} tokens (<sot> and <eot> included) "
                                 f"but the context length is {self.context_length}; shorten it, build the "
                                 "tokenizer with a longer context_length, or pass truncate=True")
            ids = ids[:self.context_length - 1] + [self.eot_id]
        return ids

    def __call__(self, texts: str | Sequence[str], truncate: bool = False) -> torch.Tensor:
        """Token ids ``(B, L)`` (long), right-padded with ``<pad>``; a str gives ``(1, L)``."""
        if not isinstance(truncate, bool):
            raise TypeError(f"truncate must be True or False, got {truncate!r}")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)):
            raise TypeError(f"texts must be a str or a list of str, got {type(texts).__name__}")
        if len(texts) == 0:
            raise ValueError("texts is empty: give at least one caption")
        out = torch.full((len(texts), self.context_length), self.pad_id, dtype=torch.long)  # (B, L)
        for b, t in enumerate(texts):
            ids = self.tokenize_one(t, truncate=truncate)
            out[b, :len(ids)] = torch.tensor(ids)
        return out

    encode = __call__

    def decode(self, ids) -> str | list[str]:
        """Words back from ids: ``(L,)`` → str, ``(B, L)`` → list of str.

        ``<sot>``, ``<eot>`` and padding are dropped; ``<unk>`` stays visible.
        """
        ids = torch.as_tensor(ids)
        if ids.dim() == 2:
            return [self.decode(row) for row in ids]
        if ids.dim() != 1:
            raise ValueError(f"ids must have shape (L,) or (B, L), got {tuple(ids.shape)}")
        vocab = self.vocab
        out = []
        for i in ids.tolist():
            if not 0 <= i < len(vocab):
                raise ValueError(f"id {i} is outside the vocabulary (0..{len(vocab) - 1})")
            if i == self.eot_id:
                break
            if i in (self.pad_id, self.sot_id):
                continue
            out.append(vocab[i])
        text = " ".join(out)
        return re.sub(r" ([,.])", r"\1", text)


def shapeworld_vocabulary() -> tuple[str, ...]:
    """Every word ShapeWorld's captions use, plus :data:`PROMPT_WORDS`, in a fixed order.

    Built from :mod:`vislab.shapes`' constants (shapes, colours, sizes, position phrases,
    relations) and the connecting words of its two caption forms ("a small red circle in
    the top left"; "a red circle left of a blue square and a green star").
    """
    from vislab import shapes  # data layer; imported here so that text.py alone needs nothing

    words: list[str] = []
    groups = (PROMPT_WORDS, ("a", "an", "and"), shapes.SHAPES, shapes.COLORS, shapes.SIZES,
              shapes.POSITIONS, shapes.POSITION_PHRASES, shapes.RELATIONS)
    for group in groups:
        for phrase in group:
            for w in split_words(str(phrase)):
                if w not in words:
                    words.append(w)
    return tuple(words)


def shapeworld_tokenizer(context_length: int = 16, unknown: str = "unk") -> CaptionTokenizer:
    """The tokenizer chapter 3 uses: :func:`shapeworld_vocabulary` and ``context_length``."""
    return CaptionTokenizer(shapeworld_vocabulary(), context_length=context_length, unknown=unknown)
