"""vislab.online: the online cells' guard decides fast, once, and prints one line offline."""

import socket
import time

import pytest

from vislab import online


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(online, "_cache", {})


def test_the_offline_switch_answers_without_the_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(online, "_probe", lambda *a: pytest.fail("the network was probed"))
    assert online.hub_reachable() is False


def test_a_closed_port_is_unreachable_quickly(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                         # closed once the block ends
    t0 = time.perf_counter()
    assert online.hub_reachable(url=f"http://127.0.0.1:{port}") is False
    assert time.perf_counter() - t0 < 2.5


def test_a_silent_server_costs_at_most_the_timeout(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)                                      # accepts, never answers
    try:
        t0 = time.perf_counter()
        assert online.hub_reachable(timeout=0.5, url=f"http://127.0.0.1:{server.getsockname()[1]}") is False
        assert time.perf_counter() - t0 < 1.5
    finally:
        server.close()


def test_an_http_error_still_means_reachable(monkeypatch):
    import urllib.error

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def answer_404(request, timeout):
        raise urllib.error.HTTPError(request.full_url, 404, "not found", {}, None)

    monkeypatch.setattr(online.urllib.request, "urlopen", answer_404)
    assert online.hub_reachable(url="http://hub.example") is True


def test_the_answer_is_cached_per_kernel(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls = []
    monkeypatch.setattr(online, "_probe", lambda url, timeout, answer: (calls.append(url), answer.append(False)))
    assert online.hub_reachable(url="http://a") is False and online.hub_reachable(url="http://a") is False
    assert calls == ["http://a"]


def test_hub_available_prints_one_line_offline(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert online.hub_available("OpenAI CLIP's zero-shot probabilities") is False
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "HF_HUB_OFFLINE=1" in out[0] and "OpenAI CLIP's zero-shot probabilities" in out[0]


@pytest.mark.parametrize("bad", [0, -1, 11, True, "2"])
def test_bad_timeouts_are_refused(bad):
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        online.hub_reachable(timeout=bad)


def test_hub_available_needs_a_description():
    with pytest.raises(TypeError, match="say in a few words"):
        online.hub_available("  ")
