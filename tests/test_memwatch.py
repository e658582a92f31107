"""vislab.memwatch: the sampled peak of a process tree sees memory held by child processes."""

import subprocess
import sys
import time

import pytest

from vislab.memwatch import TreePeak, tree_bytes

HOLD = "import sys, time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ready', flush=True); time.sleep(1.0)"


def test_tree_peak_counts_a_child_holding_memory():
    with TreePeak(interval=0.05) as peak:
        baseline = tree_bytes(peak.pid)
        child = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        child.wait(timeout=30)
    assert peak.samples >= 3
    assert peak.peak_bytes - baseline >= 180 * 2**20, (peak.peak_bytes, baseline)
    # after the child exits the tree is back near where it was
    assert tree_bytes(peak.pid) < peak.peak_bytes - 150 * 2**20


def test_tree_bytes_of_a_missing_process_is_zero():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert tree_bytes(proc.pid) == 0


def test_bad_interval_is_refused():
    with pytest.raises(ValueError, match="interval"):
        TreePeak(interval=0)
