"""show_source folds argument checks away by default (issue 21); checks=True shows them."""

import textwrap

import pytest

import vislab
from vislab import _fold_checks


def sample(x, k=1):
    """Doc."""
    check_positive("k", k)                       # noqa: F821 (never called)
    if not isinstance(x, list):
        raise TypeError("x must be a list")

    _check_more(x)                               # noqa: F821
    y = [v * k for v in x]
    for v in y:
        if v < 0:
            raise ValueError("nested checks stay")
    return y


def test_checks_are_folded_by_default(capsys):
    vislab.show_source(sample)
    out = capsys.readouterr().out
    assert "check_positive" not in out and "_check_more" not in out and "x must be a list" not in out
    assert out.count("argument checks folded") == 1                  # one run of checks, one comment line
    assert "y = [v * k for v in x]" in out and "return y" in out
    assert "nested checks stay" in out                               # only top-level checks fold


def test_checks_true_shows_every_line(capsys):
    vislab.show_source(sample, checks=True)
    out = capsys.readouterr().out
    assert "check_positive" in out and "x must be a list" in out and "argument checks folded" not in out


def test_line_ranges_count_in_the_unfolded_source(capsys):
    vislab.show_source(sample, lines=(1, 2))
    body = capsys.readouterr().out.splitlines()
    assert body[1] == "def sample(x, k=1):" and body[2] == '    """Doc."""'
    vislab.show_source(sample, lines=(8, 9), checks=True)
    assert "y = [v * k" in capsys.readouterr().out


def test_a_function_without_checks_is_unchanged():
    src = textwrap.dedent('''\
        def f(a):
            b = a + 1
            return b
        ''')
    assert _fold_checks(src) == src


def test_methods_keep_their_indentation():
    src = '''    def m(self, x):
        check_int("x", x)
        return x
'''
    assert _fold_checks(src).splitlines()[1].startswith("        # ... argument checks folded")


def test_checks_argument_must_be_a_bool():
    with pytest.raises(TypeError, match="checks must be True or False"):
        vislab.show_source(sample, checks="no")


def test_a_vislab_function_shows_the_papers_lines():
    import io
    from contextlib import redirect_stdout

    from vislab.probes import retrieval_recall

    buf = io.StringIO()
    with redirect_stdout(buf):
        vislab.show_source(retrieval_recall)
    out = buf.getvalue()
    assert "check_finite" not in out and "tied = (s == true)" in out


def test_lines_must_be_a_pair_of_line_numbers():
    for bad in ((0, 2), (1,), "1-2", (1.0, 2)):
        with pytest.raises(TypeError, match="lines must be a"):
            vislab.show_source(sample, lines=bad)


def test_tokenizer_refuses_a_non_bool_truncate():
    from vislab.text import shapeworld_tokenizer

    with pytest.raises(TypeError, match="truncate must be True or False"):
        shapeworld_tokenizer()("a red circle", truncate="yes")
