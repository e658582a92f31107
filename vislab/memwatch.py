"""Peak memory of a process tree, sampled from outside: a chapter's kernel and every process it
starts (the worker ranks of chapter 4, data loader workers).

A kernel's own ``ru_maxrss`` is exact for the kernel but blind to children it has not reaped yet
and to grandchildren (ranks forked by a fork server are reaped by the server, not by the kernel).
:class:`TreePeak` runs a daemon thread that sums the proportional set size (PSS: every page
shared by n processes counted 1/n, so a sum over processes counts each page once) of all
descendants of a process a few times a second and keeps the largest sum. The chapter runners
(``vislab.book run`` and the nbval plugin) report ``max(kernel's rusage peak, sampled tree peak)``.

Sampling misses processes that live shorter than the interval; the rusage figure covers the
kernel itself exactly, so the reported peak is a lower bound on the true peak only for such
short-lived children. Linux gives PSS; elsewhere RSS is summed (an overestimate).
"""

from __future__ import annotations

import os
import threading

__all__ = ["TreePeak", "tree_bytes", "pss_bytes"]


def pss_bytes(pid="self"):
    """Proportional set size of a process (Linux): its resident pages, each page shared with n
    processes counted 1/n. Summed over processes it counts every page once. None elsewhere
    (or when the process is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def tree_bytes(root_pid: int, include_root: bool = False) -> int:
    """Summed PSS (RSS where PSS is unavailable) of ``root_pid``'s descendants, in bytes."""
    import psutil

    try:
        root = psutil.Process(root_pid)
        procs = root.children(recursive=True) + ([root] if include_root else [])
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        pss = pss_bytes(proc.pid)
        if pss is not None:
            total += pss
            continue
        try:                    # no /proc PSS (not Linux, or not readable): resident size instead
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue            # exited between listing and reading: nothing left to count
    return total


class TreePeak:
    """Context manager: the peak summed memory of ``pid``'s descendants while it is open.

    >>> with TreePeak() as peak:      # doctest: +SKIP
    ...     run_the_kernel()
    >>> peak.peak_bytes               # doctest: +SKIP

    ``available`` is False (and ``peak_bytes`` stays 0) when psutil is not installed.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.1):
        if interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        self.pid = os.getpid() if pid is None else int(pid)
        self.interval = float(interval)
        self.peak_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = None
        try:
            import psutil  # noqa: F401
            self.available = True
        except ImportError:
            self.available = False

    def sample(self) -> int:
        now = tree_bytes(self.pid)
        self.peak_bytes = max(self.peak_bytes, now)
        self.samples += 1
        return now

    def _loop(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> "TreePeak":
        if self.available and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="vislab-treepeak", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> int:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        return self.peak_bytes

    def __enter__(self) -> "TreePeak":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
