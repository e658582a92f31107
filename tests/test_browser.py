"""A real browser: JupyterLab on the loopback address, driven by headless Chromium.

The test opens a copy of a real chapter (its ``online`` cells included), runs all its cells with
the model hub unreachable, as a learner offline would, and asserts that no cell ends in an error,
that each online cell printed its one offline line, and that the chapter's viewer still responds:
it moves the viewer's slider with the keyboard and asserts that the picture and the text beside
it change. Screenshots
go to ``_build/test-artifacts/``. It needs Debian's ``chromium`` and the ``playwright`` Python
package (no browser download): ``.ci/run`` installs both, and under CI a missing one is a failure,
not a skip.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "_build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _require_browser():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("Debian's chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (pip install playwright)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs them")
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a temporary folder; always stopped."""
    _require_browser()
    folder = tmp_path_factory.mktemp("lab")
    port, token = _free_port(), secrets.token_hex(16)
    log = open(folder / "lab.log", "w")
    # offline as a learner is: no HF_HUB_OFFLINE switch, and a hub that cannot be reached (a closed
    # port on the loopback address), so the online cells' own reachability check decides
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{_free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--expose-app-in-browser",
         "--allow-root", "--ServerApp.open_browser=False"],
        stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited early; see {folder / 'lab.log'}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start listening within 90 s")
        yield {"folder": folder, "url": f"http://127.0.0.1:{port}", "token": token}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


KERNEL_IDLE = """(path) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && w.context.path === path;
}"""

ALL_RUN = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const k = w.sessionContext.session.kernel;
  return k.status === 'idle' && cells.every(c => c.model.executionCount !== null || c.model.sharedModel.getSource().trim() === '');
}"""


# the text each `online` code cell printed, read from the notebook model (cells out of view are not in the DOM)
ONLINE_OUTPUTS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  return w.content.widgets
    .filter(c => c.model.type === 'code' && (c.model.getMetadata('tags') || []).includes('online'))
    .map(c => c.model.outputs.toJSON().map(o => (o.text || '') + JSON.stringify(o.data || {})).join(''));
}"""


def _open_and_run(page, lab, notebook: str, timeout_s: int = 300):
    # a workspace of its own, reset, so that a notebook opened by an earlier test is not restored
    # as the current tab (run-all acts on the current tab)
    workspace = Path(notebook).stem
    page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={lab['token']}")
    page.wait_for_function(KERNEL_IDLE, arg=notebook, timeout=120_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_RUN, timeout=timeout_s * 1000, polling=1000)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] .ansi-red-fg, "
                          ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, f"a cell raised an error in the browser: {errors.first.inner_text()[:500]}"


def _chapter_copy(chapter_id: str, target: Path) -> int:
    """Copy the real chapter notebook, online cells included; returns how many online code cells it has."""
    import nbformat

    from vislab.book import load_book

    chapter = next(c for c in load_book()["chapters"] if c.id == chapter_id)
    shutil.copyfile(chapter.notebook, target)
    nb = nbformat.read(target, as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == "code" and "online" in c.metadata.get("tags", []))


def _image_src(widget_box) -> str:
    return widget_box.locator("img").first.get_attribute("src") or ""


def _move_slider_and_check(page, box, name: str, slider: int = 0, text_changes: bool = True):
    """Press ArrowRight on the viewer's ``slider``-th slider; wait until its picture (and, with
    ``text_changes``, its first HTML text) changes; screenshots before and after."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    box.scroll_into_view_if_needed()
    # JupyterLab 4 renders cells lazily: wait until the viewer's text and picture are drawn
    page.wait_for_function("el => el.querySelector('.widget-html').innerText.trim().length > 0"
                           " && (el.querySelector('img') || {}).src", arg=box.element_handle(), timeout=60_000)
    text_before = box.locator(".widget-html").first.inner_text()
    src_before = _image_src(box)
    assert src_before, "the viewer shows no picture"
    page.screenshot(path=str(ARTIFACTS / f"{name}-before.png"))
    handle = box.locator(".noUi-handle, .ui-slider-handle").nth(slider)
    handle.focus()
    page.keyboard.press("ArrowRight")
    if text_changes:
        page.wait_for_function(
            "([el, before]) => el.querySelector('.widget-html').innerText !== before",
            arg=[box.element_handle(), text_before], timeout=60_000)
    page.wait_for_function("([el, before]) => (el.querySelector('img') || {}).src !== before",
                           arg=[box.element_handle(), src_before], timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / f"{name}-after.png"))
    return text_before, box.locator(".widget-html").first.inner_text()


@contextlib.contextmanager
def _chapter_page(lab, chapter_id: str, notebook: str, timeout_s: int = 300):
    """A Chromium page with a real chapter opened and run (Run All) in JupyterLab, hub unreachable."""
    from playwright.sync_api import sync_playwright

    n_online = _chapter_copy(chapter_id, lab["folder"] / notebook)
    assert n_online >= 1, f"{notebook} has no online cell: the test would not show that Run All survives one"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _open_and_run(page, lab, notebook, timeout_s=timeout_s)
            printed = page.evaluate(ONLINE_OUTPUTS)
            assert len(printed) == n_online, f"expected {n_online} online cells in the page, found {len(printed)}"
            silent = [i for i, text in enumerate(printed) if "cannot be reached): this cell would show" not in text]
            assert not silent, f"online cells {silent} did not print their offline line: {printed}"
            yield page
        finally:
            browser.close()


def test_patch_viewer_in_jupyterlab(lab):
    """Chapter 1's patch viewer: moving the patch-size slider changes the picture and the count."""
    with _chapter_page(lab, "patching", "01_patching.ipynb") as page:
        box = page.locator(".widget-vbox").filter(has=page.locator(".widget-html")).first
        before, after = _move_slider_and_check(page, box, "01_patch_viewer")
        assert "tokens" in before and "tokens" in after
        n_before = int(before.split(" tokens")[0].split("= ")[-1])
        n_after = int(after.split(" tokens")[0].split("= ")[-1])
        assert n_before == 197 and n_after != n_before, (before, after)


def test_attention_viewer_in_jupyterlab(lab):
    """Chapter 2's attention viewer: moving the image slider redraws the attention maps."""
    with _chapter_page(lab, "vit", "02_vit.ipynb", timeout_s=400) as page:
        viewers = page.locator(".widget-vbox").filter(has=page.locator(".widget-dropdown")).filter(
            has=page.locator(".widget-checkbox"))
        assert viewers.count() >= 1, "chapter 2 shows no attention viewer"
        before, after = _move_slider_and_check(page, viewers.first, "02_attention_viewer", slider=0)
        assert "image 1" in before and "image 2" in after, (before, after)
