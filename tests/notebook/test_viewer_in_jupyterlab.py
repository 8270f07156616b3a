"""The attribution viewer in a real browser: JupyterLab on localhost, headless Debian Chromium driven by Playwright.

The test writes a notebook that builds a tiny run and shows the viewer, runs it in JupyterLab, moves the image
slider and checks that the displayed map changed (screenshots differ) and that no JavaScript error occurred.
A second notebook shows the side-by-side CompareViewer over three entries: one image per entry, and the image
slider changes them all. A third shows the viewer of a one-logit (binary) model: P(mel) under its own name and both
targets. Last, the quickstart notebook itself, as a newcomer runs it: Run All with `smoke = True` shows its figures as
images with no stderr box, and a second Run All in the same kernel after changing a parameter completes and uses
the new value. Screenshots are kept under the printed folder (set LESIONKIT_SCREENSHOTS to choose it).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium absent (apt-get install chromium)"),
]

BUILD_RUN = """\
import sys
sys.path.insert(0, {repo!r})
import torch
import lesionkit
from lesionkit.data.synthetic import make_synthetic
from lesionkit.testing import tiny_attribution_run

torch.set_num_threads(1)
synthetic = make_synthetic({synth!r}, n_lesions=8, size=48, seed=0)
run_dir = tiny_attribution_run({run!r}, synthetic, n_images=6, methods=["gradcam++", "occlusion"],
                               method_kw={{"occlusion": {{"window": 12, "stride": 6}}}})
print("run ready")
"""


BUILD_COMPARE = """\
import sys
sys.path.insert(0, {repo!r})
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from lesionkit.attribution import precompute_attributions
from lesionkit.data.synthetic import make_synthetic
from lesionkit.testing import HAM_CLASSES
from lesionkit.papers.compare.viewer import compare_viewer

torch.set_num_threads(1)
synthetic = make_synthetic({synth!r}, n_lesions=8, size=48, seed=0)
df = pd.read_csv(synthetic / "labels.csv").head(4)
rgb = np.stack([np.asarray(Image.open(synthetic / f)) for f in df.filename]).astype(np.float32) / 255
masks = np.stack([np.asarray(Image.open(synthetic / f)) for f in df.mask_filename])
x = torch.from_numpy(rgb.transpose(0, 3, 1, 2)).float()
stores = {{}}
for seed, entry in enumerate({entries!r}):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, len(HAM_CLASSES))).eval()
    stores[entry] = precompute_attributions(net, x, ["gradcam"], {run!r} + "/maps/" + entry, classes=HAM_CLASSES,
                                            labels=[HAM_CLASSES.index(d) for d in df.dx],
                                            image_ids=list(df.image_id), masks=masks, targets="pred").parent
print("stores ready")
"""
COMPARE_ENTRIES = ("resnet", "effnet", "vit")

BUILD_BINARY = """\
import sys
sys.path.insert(0, {repo!r})
import torch
from torch import nn
import lesionkit
from lesionkit.attribution import precompute_attributions

torch.set_num_threads(1)
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                    nn.Linear(8, 1)).eval()  # one logit: P(mel) = sigmoid(logit), as ARL's models
x = torch.randn(3, 3, 32, 32)
precompute_attributions(net, x, ["gradcam"], {run!r}, classes=["rest", "mel"], labels=[1, 0, 1], targets="pred")
p_mel = torch.sigmoid(net(x))[:, 0].tolist()
print("run ready")
"""


def _notebook(repo: Path, tmp: Path, compare: bool = False, binary: bool = False) -> dict:
    if binary:
        cells = [BUILD_BINARY.format(repo=str(repo), run=str(tmp / "run")),
                 f"lesionkit.viewer({str(tmp / 'run')!r}, interactive=True)"]
    elif compare:
        cells = [
            BUILD_COMPARE.format(repo=str(repo), synth=str(tmp / "synthetic"), run=str(tmp / "run"),
                                 entries=list(COMPARE_ENTRIES)),
            "compare_viewer(stores, interactive=True)",
        ]
    else:
        cells = [
            BUILD_RUN.format(repo=str(repo), synth=str(tmp / "synthetic"), run=str(tmp / "run")),
            "lesionkit.viewer(run_dir, interactive=True)",
        ]
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "cells": [{"cell_type": "code", "id": f"cell{i}", "metadata": {}, "execution_count": None, "outputs": [],
                   "source": src} for i, src in enumerate(cells)],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"JupyterLab did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


def _wait_for_idle_kernel(base: str, token: str, timeout: float = 180) -> None:
    """Block until the notebook's session has a kernel that reports idle (the server's REST API), so "Run All" is
    never sent to a kernel that is still starting."""
    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as r:
                states = [s["kernel"]["execution_state"] for s in json.load(r) if s.get("kernel")]
        except OSError:
            states = []
        if "idle" in states:
            return
        time.sleep(1)
    raise TimeoutError(f"no idle kernel within {timeout}s (kernel states: {states})")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server we started and its kernels (its own process group), politely first."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


# console messages from JupyterLab itself that say nothing about the viewer (it looks for news and extension updates)
BENIGN_CONSOLE = ("favicon", "Failed to load resource", "net::ERR", "lab/api/news", "pypi", "extension manager")


@contextlib.contextmanager
def _lab_notebook(tmp_path: Path, name: str, notebook: dict, shots: Path,
                  env_extra: dict[str, str] | None = None) -> Iterator[tuple[Any, list[str], list[str]]]:
    """JupyterLab on a free port serving ``notebook`` as ``name``, headless Chromium on it, "Run All Cells" sent
    once the kernel is idle; yields (page, page errors, console errors). On failure the page's screenshot and the
    server log's tail are kept; the server and its kernels are stopped either way."""
    sync_api = pytest.importorskip("playwright.sync_api")
    (tmp_path / name).write_text(json.dumps(notebook, indent=1))

    # no news toast over the page and no update check (both would reach for the network)
    notification = tmp_path / "jset" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrt"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "jset"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "jws"),
           "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env.pop("LESIONKIT_HEADLESS", None)
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.token={token}", "--ServerApp.port_retries=0", "--LabApp.news_url=None"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    page_errors: list[str] = []
    console_errors: list[str] = []
    print(f"\nscreenshots: {shots}")
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", proc, log)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("pageerror", lambda err: page_errors.append(str(err)))
                page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
                page.goto(f"http://127.0.0.1:{port}/lab/tree/{name}?token={token}", timeout=120_000)
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                _wait_for_idle_kernel(f"http://127.0.0.1:{port}", token)
                page.locator(".jp-Notebook .jp-Cell").first.click()
                _run_all(page)
                yield page, page_errors, console_errors
            except Exception:  # keep what the page showed and what the server said, for the failure report
                page.screenshot(path=str(shots / "page_failure.png"), full_page=True)
                print(f"page at failure: {shots / 'page_failure.png'}\njupyterlab log tail:\n{log.read_text()[-4000:]}")
                raise
            finally:
                browser.close()
    finally:
        _stop(proc)


def _run_all(page: Any) -> None:
    """Run > Run All Cells, from the menu bar as a person does."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def _screenshots_dir(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("LESIONKIT_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def _assert_different_pictures(before: bytes, after: bytes, what: str) -> None:
    from io import BytesIO

    import numpy as np
    from PIL import Image

    assert before != after, f"moving the image slider did not change {what}"
    a = np.asarray(Image.open(BytesIO(before)).convert("RGB"), dtype=float)
    b = np.asarray(Image.open(BytesIO(after)).convert("RGB"), dtype=float)
    assert a.shape == b.shape and np.abs(a - b).mean() > 1.0  # a different picture, not a repaint artefact


def _assert_no_js_errors(page_errors: list[str], console_errors: list[str]) -> None:
    assert page_errors == [], f"JavaScript errors: {page_errors}"
    relevant = [m for m in console_errors if not any(b in m for b in BENIGN_CONSOLE)]
    print(f"console errors ignored as JupyterLab's own network noise: {len(console_errors) - len(relevant)}")
    assert relevant == [], f"console errors: {relevant}"


def _press_right(page: Any, root: str, times: int) -> Any:
    """Move the widget slider labelled "image" under ``root`` right ``times`` steps; returns its readout."""
    slider = page.locator(f"{root} .widget-slider").filter(has_text="image").first
    readout = slider.locator(".widget-readout")
    assert readout.inner_text().strip() == "0"
    handle = slider.locator(".noUi-handle")
    handle.focus()
    for _ in range(times):
        handle.press("ArrowRight")
    return readout


def test_viewer_slider_changes_the_map_in_chromium(tmp_path: Path) -> None:
    shots = _screenshots_dir(tmp_path)
    with _lab_notebook(tmp_path, "viewer.ipynb", _notebook(REPO, tmp_path), shots) as (page, page_errors,
                                                                                      console_errors):
        img = page.locator(".lesionkit-viewer img.widget-image").first
        img.wait_for(state="visible", timeout=480_000)  # generous: CI runs notebooks beside it
        page.wait_for_function(
            "() => { const i = document.querySelector('.lesionkit-viewer img.widget-image');"
            " return i && i.complete && i.naturalWidth > 0; }", timeout=60_000)
        page.screenshot(path=str(shots / "page_before.png"), full_page=True)
        before = img.screenshot(path=str(shots / "map_before.png"))
        src_before = img.get_attribute("src")

        readout = _press_right(page, ".lesionkit-viewer", 2)
        page.wait_for_function(
            "(old) => { const i = document.querySelector('.lesionkit-viewer img.widget-image');"
            " return i && i.src !== old && i.complete && i.naturalWidth > 0; }", arg=src_before,
            timeout=60_000)
        page.wait_for_timeout(500)  # let the new frame paint before the screenshot
        after = img.screenshot(path=str(shots / "map_after.png"))
        page.screenshot(path=str(shots / "page_after.png"), full_page=True)
        assert readout.inner_text().strip() == "2"

    _assert_different_pictures(before, after, "the displayed map")
    _assert_no_js_errors(page_errors, console_errors)


ALL_CELL_IMAGES_READY = (
    "([n, old]) => { const imgs = [...document.querySelectorAll('.lesionkit-compare img.widget-image')];"
    " return imgs.length === n && imgs.every((i, k) => i.complete && i.naturalWidth > 0"
    " && (old === null || i.src !== old[k])); }")


def test_compare_viewer_shows_one_cell_per_entry_and_follows_the_slider(tmp_path: Path) -> None:
    shots = _screenshots_dir(tmp_path)
    n = len(COMPARE_ENTRIES)
    with _lab_notebook(tmp_path, "compare.ipynb", _notebook(REPO, tmp_path, compare=True), shots) as (
            page, page_errors, console_errors):
        cells = page.locator(".lesionkit-compare .lesionkit-compare-cell")
        cells.first.wait_for(state="visible", timeout=480_000)  # generous: CI runs notebooks beside it
        page.wait_for_function(ALL_CELL_IMAGES_READY, arg=[n, None], timeout=60_000)
        imgs = page.locator(".lesionkit-compare img.widget-image")
        assert cells.count() == n and imgs.count() == n  # one overlay per entry
        for k, entry in enumerate(COMPARE_ENTRIES):
            assert entry in cells.nth(k).inner_text()
        page.screenshot(path=str(shots / "compare_before.png"), full_page=True)
        row = page.locator(".lesionkit-compare > .widget-hbox").last  # the row of cells
        before = row.screenshot(path=str(shots / "compare_row_before.png"))
        src_before = [imgs.nth(k).get_attribute("src") for k in range(n)]

        readout = _press_right(page, ".lesionkit-compare", 1)
        page.wait_for_function(ALL_CELL_IMAGES_READY, arg=[n, src_before], timeout=60_000)  # every cell changed
        page.wait_for_timeout(500)  # let the new frames paint before the screenshot
        after = row.screenshot(path=str(shots / "compare_row_after.png"))
        page.screenshot(path=str(shots / "compare_after.png"), full_page=True)
        assert readout.inner_text().strip() == "1"
        assert imgs.count() == n

    _assert_different_pictures(before, after, "the entries' maps")
    _assert_no_js_errors(page_errors, console_errors)


def _explain_record(tmp_path: Path) -> Path:
    """What `python -m lesionkit explain RUN IMAGES` writes for a saved quickstart run (an untrained ResNet-18) on
    three synthetic images: the record a user opens with lesionkit.viewer."""
    env = {**os.environ, "LESIONKIT_RUNS": str(tmp_path / "records"), "OMP_NUM_THREADS": "1"}
    code = ("import sys\nfrom lesionkit.data.synthetic import make_synthetic\n"
            "from lesionkit.testing import untrained_quickstart_run\nfrom lesionkit.cli.explain import main\n"
            f"images = make_synthetic({str(tmp_path / 'synthetic')!r}, n_lesions=8, size=48, seed=0)\n"
            f"run = untrained_quickstart_run({str(tmp_path / 'runs' / '00_quickstart' / 'r1')!r})\n"
            "sys.exit(main([str(run), str(images), '--method', 'gradcam,occlusion', '--limit', '3']))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (record,) = (tmp_path / "records" / "explain").iterdir()
    return record


def test_explain_output_opens_in_the_viewer(tmp_path: Path) -> None:
    """The saved-run command's maps are a viewer record: the image and its map show, and the slider moves to the
    next image (three were explained)."""
    record = _explain_record(tmp_path)
    shots = _screenshots_dir(tmp_path)
    nb = _notebook(REPO, tmp_path, binary=True)
    nb["cells"] = [dict(nb["cells"][0], source=f"import sys\nsys.path.insert(0, {str(REPO)!r})\nimport lesionkit\n"
                                               f"lesionkit.viewer({str(record)!r}, interactive=True)")]
    with _lab_notebook(tmp_path, "explained.ipynb", nb, shots) as (page, page_errors, console_errors):
        img = page.locator(".lesionkit-viewer img.widget-image").first
        img.wait_for(state="visible", timeout=480_000)
        page.wait_for_function(
            "() => { const i = document.querySelector('.lesionkit-viewer img.widget-image');"
            " return i && i.complete && i.naturalWidth > 0; }", timeout=60_000)
        before, src_before = img.screenshot(path=str(shots / "explain_before.png")), img.get_attribute("src")
        methods = " ".join(page.locator(".lesionkit-viewer .widget-dropdown").filter(has_text="method")
                           .locator("option").all_inner_texts())
        readout = _press_right(page, ".lesionkit-viewer", 2)
        page.wait_for_function(
            "(old) => { const i = document.querySelector('.lesionkit-viewer img.widget-image');"
            " return i && i.src !== old && i.complete && i.naturalWidth > 0; }", arg=src_before, timeout=60_000)
        page.wait_for_timeout(500)
        after = img.screenshot(path=str(shots / "explain_after.png"))
        page.screenshot(path=str(shots / "explain_page.png"), full_page=True)
        assert readout.inner_text().strip() == "2"
    assert "gradcam" in methods and "occlusion" in methods, methods
    _assert_different_pictures(before, after, "the explained image's map")
    _assert_no_js_errors(page_errors, console_errors)


def test_viewer_of_a_one_logit_model_names_both_classes(tmp_path: Path) -> None:
    """ARL-style binary model (one logit): the viewer shows P(mel) under "mel" (and P(rest)), and its target list
    offers both classes, the predicted one first."""
    shots = _screenshots_dir(tmp_path)
    nb = _notebook(REPO, tmp_path, binary=True)
    nb["cells"][0]["source"] += 'print(f"P(mel) {p_mel[0]:.3f}")\n'
    with _lab_notebook(tmp_path, "binary.ipynb", nb, shots) as (page, page_errors, console_errors):
        viewer = page.locator(".lesionkit-viewer")
        viewer.locator("img.widget-image").first.wait_for(state="visible", timeout=480_000)
        p_mel = page.locator(".jp-OutputArea-output").filter(has_text="P(mel)").first.inner_text().split()[-1]
        options = [" ".join(o.split()) for o in viewer.locator(".widget-dropdown").filter(has_text="target")
                   .locator("option").all_inner_texts()]  # ipywidgets writes the spaces as non-breaking ones
        rows = [r.split() for r in viewer.locator(".widget-html tr").all_inner_texts()]
        caption = viewer.locator(".widget-html").filter(has_text="predicted").last.inner_text()
        page.screenshot(path=str(shots / "binary_viewer.png"), full_page=True)
    predicted = options[0].removesuffix(" (predicted)")
    assert len(options) == 2 and options[0].endswith(" (predicted)") and {predicted, options[1]} == {"rest", "mel"}
    assert f"predicted {predicted}" in " ".join(caption.split())
    by_class = {r[0]: r[-1] for r in rows}
    assert by_class["mel"] == p_mel and set(by_class) == {"rest", "mel"}  # ✓ marks sit in a cell of their own
    _assert_no_js_errors(page_errors, console_errors)


# True once the last code cell holds `marker` in its output (textContent: an offscreen cell renders no innerText),
# or as soon as any stderr box (a warning, an error) appears: the test then fails on it instead of timing out
STDERR_BOX = '.jp-OutputArea [data-mime-type="application/vnd.jupyter.stderr"]'
RUN_ALL_ENDED = (
    "(marker) => { const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];"
    " const last = cells[cells.length - 1];"
    f" return !!document.querySelector('{STDERR_BOX}')"
    " || (!!last && last.querySelector('.jp-OutputArea').textContent.includes(marker)); }")


def _quickstart_smoke() -> dict:
    """notebooks/00_quickstart.ipynb as a newcomer edits it first: `smoke = True` in its parameters cell."""
    nb = json.loads((REPO / "notebooks" / "00_quickstart.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    source = "".join(cell["source"])
    assert "smoke: bool = False" in source
    cell["source"] = source.replace("smoke: bool = False", "smoke: bool = True")
    return nb


def _assert_figures_shown(page: Any, at_least: int) -> None:
    """Every figure an image (the quickstart's history, confusion matrix, ROC), none a `<Figure ...>` text."""
    page.wait_for_function(
        "(n) => { const imgs = [...document.querySelectorAll('.jp-OutputArea-output img')];"
        " return imgs.length >= n && imgs.every((i) => i.complete && i.naturalWidth > 0); }", arg=at_least,
        timeout=60_000)
    assert page.locator(".jp-OutputArea-output").filter(has_text="<Figure size").count() == 0


def test_quickstart_run_all_twice_shows_figures_and_takes_a_changed_parameter(tmp_path: Path) -> None:
    shots = _screenshots_dir(tmp_path)
    runs = tmp_path / "runs"
    with _lab_notebook(tmp_path, "quickstart.ipynb", _quickstart_smoke(), shots,
                       env_extra={"LESIONKIT_RUNS": str(runs)}) as (page, page_errors, console_errors):
        page.wait_for_function(RUN_ALL_ENDED, arg="00_quickstart", timeout=900_000)
        page.screenshot(path=str(shots / "quickstart_first.png"), full_page=True)
        assert page.locator(STDERR_BOX).count() == 0, page.locator(STDERR_BOX).first.inner_text()
        _assert_figures_shown(page, 3)

        editor = page.locator(".jp-Notebook .jp-CodeCell").first.locator(".cm-content")  # the parameters cell
        editor.click()
        page.keyboard.press("Control+End")
        page.keyboard.press("Enter")
        page.keyboard.insert_text('run_name = "second"')
        _run_all(page)
        page.wait_for_function(RUN_ALL_ENDED, arg="-second", timeout=900_000)
        page.screenshot(path=str(shots / "quickstart_second.png"), full_page=True)
        assert page.locator(STDERR_BOX).count() == 0, page.locator(STDERR_BOX).first.inner_text()
        _assert_figures_shown(page, 3)
        config_output = page.locator(".jp-Notebook .jp-CodeCell").nth(1).locator(".jp-OutputArea").text_content()
    assert "run_name='second'" in config_output.replace('"', "'")
    done = sorted(p.parent.name for p in (runs / "00_quickstart").glob("*/run.json")
                  if json.loads(p.read_text())["status"] == "completed")
    assert len(done) == 2 and done[1].endswith("second"), done
    assert all((runs / "00_quickstart" / d / "figures" / "history.png").is_file() for d in done)
    _assert_no_js_errors(page_errors, console_errors)
