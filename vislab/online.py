"""The online tier's guard: can the model hub be reached, quickly and without retries?

Every cell tagged ``online`` starts with ``if hub_available("what the cell shows"):``. Online
it returns True and the cell runs as written; offline (no network, ``HF_HUB_OFFLINE=1``, a
firewall) it prints one line saying what the cell would show and how to run it, and returns
False, so that "Run All" in JupyterLab never stops on a ``ConnectError`` after the hub
client's retries. The check costs at most ``timeout`` seconds (2 by default) and is made
once per kernel: its answer is cached.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request

__all__ = ["hub_available", "hub_reachable", "HUB_URL"]

HUB_URL = "https://huggingface.co"
_OFF_VALUES = {"1", "true", "yes", "on"}
_cache: dict = {}


def _offline_by_setting() -> str | None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _OFF_VALUES:
            return f"{name}={os.environ[name]}"
    return None


def _probe(url: str, timeout: float, answer: list) -> None:
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            answer.append(True)
    except urllib.error.HTTPError:        # the server answered (even 4xx/5xx): it is reachable
        answer.append(True)
    except Exception:                     # no route, DNS failure, refused, TLS error, timeout
        answer.append(False)


def hub_reachable(timeout: float = 2.0, url: str | None = None) -> bool:
    """True when the model hub answers within ``timeout`` seconds (one try, no retries).

    ``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1`` answer False without touching the
    network. The probe runs in a daemon thread so that a slow DNS lookup cannot hold the
    cell past ``timeout``. The answer is cached per URL for the life of the kernel.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 10:
        raise ValueError(f"timeout must be a number of seconds in (0, 10], got {timeout!r}")
    if _offline_by_setting():
        return False
    url = url or os.environ.get("HF_ENDPOINT") or HUB_URL
    if url not in _cache:
        answer: list = []
        worker = threading.Thread(target=_probe, args=(url, timeout, answer), daemon=True)
        worker.start()
        worker.join(timeout)
        _cache[url] = bool(answer and answer[0])
    return _cache[url]


def hub_available(what: str, timeout: float = 2.0) -> bool:
    """Guard for an ``online`` cell: True online; offline, print one line and return False.

    Args:
        what: what the cell shows with real weights, e.g. "OpenAI CLIP's zero-shot
            probabilities for the two photos".
    """
    if not isinstance(what, str) or not what.strip():
        raise TypeError("hub_available(what): say in a few words what the online cell shows")
    if hub_reachable(timeout):
        return True
    why = _offline_by_setting() or f"{os.environ.get('HF_ENDPOINT') or HUB_URL} cannot be reached"
    print(f"offline ({why}): this cell would show {what}. Connect to the internet "
          "(and unset HF_HUB_OFFLINE) and run it again to see it with real weights.")
    return False
