"""Where the course's files are: the repository root, data/ and data/checkpoints/."""

from __future__ import annotations

from pathlib import Path

__all__ = ["repo_root", "data_dir", "checkpoint_dir"]


def repo_root() -> Path:
    """The folder holding book.yml: vislab's parent in a checkout (``pip install -e .``), else
    the first ancestor of the working directory that has one."""
    here = Path(__file__).resolve().parent.parent
    if (here / "book.yml").exists():
        return here
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "book.yml").exists():
            return folder
    raise FileNotFoundError("cannot find the course's book.yml next to vislab/ or above the working "
                            "directory; run from inside a clone of the course repository")


def data_dir() -> Path:
    return repo_root() / "data"


def checkpoint_dir() -> Path:
    return data_dir() / "checkpoints"
