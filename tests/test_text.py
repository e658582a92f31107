"""Tests of vislab.text: the ShapeWorld caption tokenizer."""

import pytest
import torch

from vislab.shapes import ShapeWorld
from vislab.text import SPECIALS, CaptionTokenizer, shapeworld_tokenizer, split_words


@pytest.fixture(scope="module")
def tok():
    return shapeworld_tokenizer(context_length=16)


def test_split_words_lowercases_and_splits_punctuation():
    assert split_words("A Photo of a STAR, a type of shape.") == \
        ["a", "photo", "of", "a", "star", ",", "a", "type", "of", "shape", "."]


def test_specials_come_first(tok):
    assert tok.vocab[:4] == SPECIALS
    assert (tok.pad_id, tok.unk_id, tok.sot_id, tok.eot_id) == (0, 1, 2, 3)
    assert tok.vocab_size == len(tok.vocab) == len(set(tok.vocab))


def test_every_shapeworld_caption_is_known_and_fits(tok):
    strict = shapeworld_tokenizer(context_length=16, unknown="error")
    for kw in ({}, {"min_shapes": 2, "max_shapes": 3}):
        caps = ShapeWorld(**kw).sample(300, seed=3).captions
        assert strict.unknown_words(caps) == []
        ids = strict(caps)
        assert ids.shape == (300, 16) and ids.dtype == torch.long


def test_framing_and_padding(tok):
    ids = tok(["a red circle", "a small blue star in the center"])
    assert ids.shape == (2, 16)
    row = ids[0].tolist()
    assert row[0] == tok.sot_id and row[4] == tok.eot_id and set(row[5:]) == {tok.pad_id}
    assert (ids == tok.eot_id).sum(1).tolist() == [1, 1]


def test_round_trip(tok):
    caps = ShapeWorld(max_shapes=3).sample(50, seed=1).captions + ["a photo of a star, a type of shape."]
    assert tok.decode(tok(caps)) == caps


def test_unknown_word_becomes_unk_or_raises(tok):
    ids = tok("a photo of a dinosaur")
    assert ids[0, 5].item() == tok.unk_id
    assert tok.decode(ids[0]) == "a photo of a <unk>"
    assert tok.unknown_words(["a photo of a dinosaur", "a red zebra"]) == ["dinosaur", "zebra"]
    strict = shapeworld_tokenizer(unknown="error")
    with pytest.raises(KeyError, match="dinosaur"):
        strict("a photo of a dinosaur")


def test_too_long_caption_raises_or_truncates(tok):
    long = "a red circle left of a blue square and a green star and a white ring"
    with pytest.raises(ValueError, match="context length is 16"):
        tok(long)
    ids = tok(long, truncate=True)
    assert ids.shape == (1, 16) and ids[0, -1].item() == tok.eot_id


def test_bad_input(tok):
    with pytest.raises(ValueError, match="empty"):
        tok([])
    with pytest.raises(TypeError):
        tok(["a red circle", 3])
    with pytest.raises(TypeError):
        tok(42)
    with pytest.raises(ValueError, match="duplicate"):
        CaptionTokenizer(("a", "b", "a"))
    with pytest.raises(ValueError, match="special"):
        CaptionTokenizer(("a", "<pad>"))
    with pytest.raises(ValueError, match="single lower-case words"):
        CaptionTokenizer(("red circle",))
    with pytest.raises(ValueError, match="context_length"):
        CaptionTokenizer(("a",), context_length=2)
    with pytest.raises(ValueError, match="unknown"):
        CaptionTokenizer(("a",), unknown="skip")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode(torch.tensor([2, 999]))
