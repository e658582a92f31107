"""pytest configuration shared by the unit tests and nbval.

Cells tagged ``online`` need internet (real checkpoints from the hub): nbval skips them,
and the tests run with the hub switched off so that nothing is downloaded by accident.
"""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(config, items):
    skip_online = pytest.mark.skip(reason="cell tagged 'online' (needs internet)")
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and "online" in cell.get("metadata", {}).get("tags", []):
            item.add_marker(skip_online)
