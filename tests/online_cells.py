"""Shared helpers for the tests that run a chapter's `online` cells offline (tests/test_pretrained_*)."""

from pathlib import Path

import pytest

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"


def chapter_cells(name):
    """``(first code cell, [online cells])`` of ``chapters/<name>``; every online cell is guarded."""
    jupytext = pytest.importorskip("jupytext")
    chapter = jupytext.read(CHAPTERS / name)
    code = [c for c in chapter.cells if c.cell_type == "code"]
    online = [c.source for c in code if "online" in c.metadata.get("tags", [])]
    assert online, f"{name} has no cell tagged 'online'"
    assert all("hub_available(" in src for src in online), "every online cell starts with its hub_available guard"
    return code[0].source, online


def run_cells(name, first, online, namespace):
    """Execute the first cell (imports, setup), then the online cells, in ``namespace``."""
    exec(compile(first, f"{name}:first cell", "exec"), namespace)
    for i, src in enumerate(online):
        exec(compile(src, f"{name}:online cell {i}", "exec"), namespace)
    return namespace


def offline_run(name, monkeypatch, capsys, loader):
    """Run ``name``'s online cells with the hub unreachable and ``loader.from_pretrained`` failing the
    test if called; assert each online cell printed one line starting "offline". Returns the namespace."""
    monkeypatch.setattr("vislab.online.hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr(loader, "from_pretrained",
                        classmethod(lambda cls, *a, **k: pytest.fail("offline, nothing may be downloaded")))
    first, online = chapter_cells(name)
    namespace = {"__name__": "offline"}
    exec(compile(first, f"{name}:first cell", "exec"), namespace)
    capsys.readouterr()
    for src in online:
        exec(compile(src, f"{name}:online cell", "exec"), namespace)
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) == 1 and out[0].startswith("offline"), out
    return namespace
