"""Notebook 05's control panel in a real browser: headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright) opens JupyterLab as `make lab` starts it, runs
the panel's part of the notebook in quick mode, and uses the panel: the widget renders,
a click on Run adds a row to its results table, and a save keeps the widget state. No
nbgrader instructor menu. Screenshots go to test-artifacts/browser/ (LAB_SCREENSHOTS
overrides).

The notebook run is a copy of part of the solution notebook in a temp folder, served as
the notebook folder: JupyterLab autosaves, and the committed notebook must not change.
"""

import json
import os
import re
import time
from pathlib import Path

import pytest

from labkit.serving.processes import wait_until
from tests.helpers.lab import REPO, lab_servers, skip_unless_ci
from tests.helpers.jupyterlab import running_lab

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium as root in a container, on a machine whose network is closed: no
# sandbox, no GPU, and no background connections (each would be refused, many at a time).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOK = "05_scaling.ipynb"
RESULT_ROWS = ".widget-output table.dataframe tbody tr"  # the panel's results table
SCREENSHOTS = Path(os.environ.get("LAB_SCREENSHOTS", REPO / "test-artifacts" / "browser"))


@pytest.fixture(scope="module", autouse=True)
def needs_a_browser():
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (Debian package chromium; as root `tools/system-deps.sh chromium` installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (requirements.txt)")
    if missing:
        skip_unless_ci(f"no browser test without {', '.join(missing)}")


@pytest.fixture
def browser_page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


# The sections of notebook 05 the browser runs: the first measurement (which makes `lab`)
# and the panel; the rest (exercises, sweep, the stop) runs under nbval already. The server
# stays up, so the panel measures it again instead of starting one (JupyterLab's stop at the
# end takes the kernel and its server down).
SECTIONS = ("05 ", "Parallel inference", "Try it yourself")


def panel_part(path: Path) -> dict:
    """Notebook 05 with only SECTIONS (a heading of level 1 or 2 starts a section; deeper
    ones stay in theirs), without the solution run's widget state (which a save must write)."""
    notebook = json.loads(path.read_text())
    notebook["metadata"].pop("widgets", None)
    kept, keep = [], False
    for cell in notebook["cells"]:
        first_line = "".join(cell["source"]).split("\n", 1)[0]
        if cell["cell_type"] == "markdown" and re.match(r"#{1,2} ", first_line):
            keep = first_line.lstrip("# ").startswith(SECTIONS)
        if keep:
            kept.append(cell)
    assert any("lab.panel()" in "".join(cell["source"]) for cell in kept), "notebook 05 lost its panel"
    notebook["cells"] = kept
    return notebook


def code_cell_prompts(page) -> list:
    # textContent, not innerText: cells scrolled out of view are not rendered
    # (content-visibility) and their innerText is empty.
    return [text.strip() for text in page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()]


def run_all_cells(page, attempts: int = 3) -> None:
    """Run > Run All Cells, until a cell starts. Seen in CI on a loaded machine: the click
    landed while the kernel was still connecting (indicator idle, notebook not yet focused)
    and ran nothing, every prompt stayed "[ ]:". So focus the notebook first, and retry."""
    for _ in range(attempts):
        page.locator(".jp-NotebookPanel .jp-Cell").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        if wait_until(lambda: any(prompt != "[ ]:" for prompt in code_cell_prompts(page)), 30, interval=0.5):
            return
        page.keyboard.press("Escape")  # close the menu if it is still open
    page.screenshot(path=str(SCREENSHOTS / "05-did-not-start.png"))
    raise AssertionError(f"Run All Cells started no cell in {attempts} attempts (screenshot in {SCREENSHOTS})")


def wait_for_all_cells(page, timeout: float) -> None:
    """Until every code cell shows an execution count ("[12]:"), none "[*]:"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prompts = code_cell_prompts(page)
        if prompts and all(re.fullmatch(r"\[\d+\]:", prompt) for prompt in prompts):
            return
        time.sleep(1)
    page.screenshot(path=str(SCREENSHOTS / "05-did-not-finish.png"))
    raise AssertionError(f"the notebook did not finish in {timeout:.0f} s: prompts {code_cell_prompts(page)}"
                         f" (screenshot in {SCREENSHOTS})")


def table_rows(panel) -> int:
    return panel.locator(RESULT_ROWS).count()


def wait_for_more_rows(page, panel, rows: int) -> None:
    page.wait_for_function("([panel, selector, n]) => panel.querySelectorAll(selector).length > n",
                           arg=[panel.element_handle(), RESULT_ROWS, rows], timeout=180_000)


def test_notebook_05_panel_in_the_browser_adds_a_row_and_saves_its_widgets(tmp_path, browser_page):
    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / NOTEBOOK).write_text(json.dumps(panel_part(REPO / "notebooks" / "solutions" / NOTEBOOK)))

    with running_lab(env={"LAB_QUICK": "1"}, notebook_dir=notebooks) as (process, port, url):
        token = url.split("token=")[1]
        page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}")
        page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for(timeout=60_000)
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)

        run_all_cells(page)
        wait_for_all_cells(page, timeout=float(os.environ.get("BROWSER_NOTEBOOK_TIMEOUT", 300)))
        page.screenshot(path=str(SCREENSHOTS / "05-after-run-all.png"))
        assert page.get_by_text("torch thread").count() >= 1  # the first measurement's output

        run_button = page.locator(".widget-button", has_text="Run")
        assert run_button.count() == 1, "the control panel did not render"
        panel = page.locator(".jp-OutputArea-output", has=run_button)
        panel.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "05-panel.png"))

        # The first click shows the table with every run so far; the second must add
        # exactly its own row.
        rows_before = table_rows(panel)
        run_button.click()
        wait_for_more_rows(page, panel, rows_before)
        rows_after_first = table_rows(panel)
        run_button.click()
        wait_for_more_rows(page, panel, rows_after_first)
        assert table_rows(panel) == rows_after_first + 1
        status = panel.inner_text()
        assert re.search(r"req/s, p95 \d+ ms, 0 errors", status) and "failed:" not in status, status
        # The controls started at the first measurement's settings (two workers).
        assert "workers=2 no batching:" in status, status
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(SCREENSHOTS / "05-panel-after-clicks.png"))

        # The lab's settings (tools/jupyter): no nbgrader instructor menu, and a saved
        # notebook keeps its widget state, so reopened it shows the panel, not
        # "Error displaying widget: model not found".
        assert "Nbgrader" not in page.locator(".lm-MenuBar-itemLabel").all_text_contents()
        page.locator(".jp-NotebookPanel").first.click()
        page.keyboard.press("Control+s")
        assert wait_until(lambda: "application/vnd.jupyter.widget-state+json" in saved_widgets(notebooks / NOTEBOOK),
                          30), "the saved notebook has no widget state"
    # The server the notebook left running went down with JupyterLab's kernel.
    assert wait_until(lambda: not lab_servers(), 30), lab_servers()


def saved_widgets(path: Path) -> dict:
    try:
        return json.loads(path.read_text())["metadata"].get("widgets", {})
    except ValueError:  # caught while JupyterLab writes it
        return {}


def test_the_offline_api_page_renders_and_sends_a_request_with_the_network_closed(browser_page, server):
    """Notebook 01's /v2/docs page: every address outside loopback is refused (the browser
    sees a closed network, as on a train); the page still renders from the lab's own Swagger
    UI files, and "Try it out" / "Execute" gets the student's server's answer."""
    from labkit.client import load_image
    from labkit.serving import ApiDocs

    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    outside = []

    def only_loopback(route):
        host = route.request.url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", only_loopback)
    # MLServer's own page, under the same closed network, renders nothing: its script is on a CDN.
    page.goto(server.docs_url)
    page.wait_for_timeout(2_000)
    assert page.locator(".opblock").count() == 0 and outside, "MLServer's page rendered without its CDN"
    outside.clear()

    docs = ApiDocs(server, model=server.name)
    try:
        page.goto(docs.url)
        infer = page.locator(".opblock-post", has_text=f"/v2/models/{server.name}/infer").first
        infer.wait_for(timeout=30_000)
        assert not outside, f"the lab's page asked for {outside}"
        infer.locator(".opblock-summary").click()
        page.get_by_role("button", name="Try it out").click()
        thumbnail = load_image(size=(4, 4))  # notebook 01's body, with the batch axis the lab's service takes
        body = {"inputs": [{"name": "payload", "datatype": "UINT8", "shape": [1, *thumbnail.shape],
                            "data": thumbnail.reshape(-1).tolist()}]}
        page.locator("textarea.body-param__text").fill(json.dumps(body))
        page.get_by_role("button", name="Execute").click()
        status = page.locator(".live-responses-table .response .response-col_status").first
        status.wait_for(timeout=60_000)
        page.screenshot(path=str(SCREENSHOTS / "01-api-page-after-execute.png"), full_page=True)
        assert status.inner_text().strip().startswith("200"), status.inner_text()
        assert docs.requests[-1] == ("POST", f"/v2/models/{server.name}/infer", 200)
        assert not outside, f"the lab's page asked for {outside}"
    finally:
        docs.stop()
