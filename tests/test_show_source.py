"""Tests for vislab.show_source: plain text outside a notebook, highlighted HTML inside one."""

import pytest

import vislab
import vislab.widgets.core as core
from vislab.patching import PatchEmbed, num_tokens


def test_prints_the_source_with_a_header(capsys):
    vislab.show_source(num_tokens)
    out = capsys.readouterr().out
    assert out.startswith("# vislab.patching.num_tokens\n")
    assert "def num_tokens(image_size, patch_size: int, cls_token: bool = True) -> int:" in out


def test_classes_methods_and_line_ranges(capsys):
    vislab.show_source(PatchEmbed.forward)
    out = capsys.readouterr().out
    assert out.startswith("# vislab.patching.PatchEmbed.forward")
    vislab.show_source(PatchEmbed, lines=(1, 2))
    body = capsys.readouterr().out.splitlines()
    assert body[0] == "# vislab.patching.PatchEmbed"
    assert body[1] == "class PatchEmbed(nn.Module):"
    assert len([line for line in body[1:] if line]) == 2


def test_modules(capsys):
    import vislab.paths

    vislab.show_source(vislab.paths)
    out = capsys.readouterr().out
    assert out.startswith("# vislab.paths\n") and "def repo_root()" in out


def test_objects_without_source_raise_type_error():
    with pytest.raises(TypeError, match="cannot show the source"):
        vislab.show_source(len)
    with pytest.raises(TypeError, match="cannot show the source"):
        vislab.show_source(3)


def test_in_a_notebook_it_displays_html_with_a_plain_twin(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(core, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    vislab.show_source(num_tokens)
    (bundle, raw), = shown
    assert raw is True
    assert "<b>vislab.patching.num_tokens</b>" in bundle["text/html"]
    assert "<span" in bundle["text/html"]                              # highlighted
    assert bundle["text/plain"].startswith("# vislab.patching.num_tokens\ndef num_tokens(")
