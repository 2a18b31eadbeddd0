"""The results page (bench/report_page.py, issue 28): what its HTML holds for a reader and a screen
reader, that it fetches nothing from anywhere, and, in a real headless Chromium, that it shows
without a console error, sorts by a column and opens a row's details.

tests/fixtures/page_runs/ holds real toy runs with their learning curves: the `toy_search_smoke`
sweep (zero-shot, CoOp and VPT x 2 trials x 2 seeds), CoOp at its paper's settings and MmAP
grouped (2 seeds each), made with
    python -m bench.sweep toy_search_smoke run
    python -m bench.run method=coop seed=1|2; python -m bench.run method=mmap method.mode=grouped seed=1|2
(runtime.results_dir pointed there).  The browser test needs Debian's `chromium` and
`chromium-driver` (.ci/run installs them) and skips, saying so, where they are absent.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import REPO

from bench import report

RUNS = REPO / "tests" / "fixtures" / "page_runs"
MISSING = {"run_id": "0000deadbeef", "method": "maple", "mode": "mt", "dataset": "toy", "seed": 3}
EXTERNAL = re.compile(r"^\s*(https?:|//|ftp:)", re.IGNORECASE)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """The toy page, its figures with learning curves, one expected run missing."""
    out = tmp_path_factory.mktemp("page")
    records, problems = report.load_records(RUNS)
    expected = [{"run_id": r.run_id, "method": r.method, "mode": r.mode, "dataset": r.key, "seed": r.seed}
                for r in records] + [MISSING]
    report.write_report(records, problems, out, expected=expected, curves_from=RUNS, runs_dir=RUNS)
    return out


class Elements(HTMLParser):
    """Every start tag as (tag, attributes, the tags it lies in), and the text under each table's
    caption and headings."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict, tuple]] = []
        self.stack: list[str] = []
        self.texts: dict[int, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), tuple(self.stack)))
        self.texts[len(self.elements) - 1] = []
        if tag not in ("meta", "br", "img", "input", "link", "path", "use", "rect", "circle", "stop"):
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), tuple(self.stack)))

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        for index in range(len(self.elements) - 1, -1, -1):
            if self.elements[index][0] in ("caption", "th", "h4", "li", "figcaption", "summary"):
                if self.elements[index][0] in self.stack:
                    self.texts[index].append(data)
                break

    def text(self, index: int) -> str:
        return " ".join("".join(self.texts.get(index, [])).split())


def _parse(path: Path) -> Elements:
    parser = Elements()
    parser.feed(path.read_text())
    return parser


def test_the_page_and_the_index_are_written_beside_the_tables(page):
    assert (page / "toy.html").is_file() and (page / "toy.md").is_file()
    index = _parse(page / "index.html")
    assert [a["href"] for tag, a, _ in index.elements if tag == "a"] == ["toy.html"]


def test_the_table_has_every_markdown_column_with_headers_a_screen_reader_can_use(page):
    html = _parse(page / "toy.html")
    markdown = (page / "toy.md").read_text().splitlines()
    header = next(line for line in markdown if line.startswith("| Method"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    heads = [(i, a) for i, (tag, a, inside) in enumerate(html.elements) if tag == "th" and "thead" in inside
             and "details" not in inside]
    assert [html.text(i) for i, _ in heads] == columns
    assert all(a.get("scope") == "col" for _, a in heads)
    captions = [i for i, (tag, _, inside) in enumerate(html.elements) if tag == "caption"]
    assert len(captions) == 1 and html.text(captions[0]).startswith("Model selection")
    row_heads = [a for tag, a, inside in html.elements if tag == "th" and a.get("scope") == "row"
                 and "details" not in inside]
    rows = [line for line in markdown if line.startswith("| ") and not line.startswith(("| Method", "|:"))]
    assert len(row_heads) == len(rows) == 5
    for tag, a, inside in html.elements:  # the tables inside a row's details: named by their heading
        if tag == "table" and "inner" in a.get("class", ""):
            assert any(other.get("id") == a["aria-labelledby"] for _, other, _ in html.elements)


def test_figures_have_a_text_alternative_and_nothing_is_fetched_from_elsewhere(page):
    text = (page / "toy.html").read_text()
    html = _parse(page / "toy.html")
    images = [a for tag, a, _ in html.elements if a.get("role") == "img"]
    assert len(images) >= 3 + 2  # accuracy vs parameters and vs time, the curves; two MmAP heatmaps
    assert all(len(a.get("aria-label", "")) > 40 for a in images)
    assert all(a.get("alt") for tag, a, _ in html.elements if tag == "img")
    figures = [i for i, (tag, _, _) in enumerate(html.elements) if tag == "figcaption"]
    assert [html.text(i).split(".")[0] for i in figures] == [
        "Average accuracy against trainable parameters (log scale)", "Average accuracy against training time "
        "per run (log scale)", "Learning curves (mean ± standard error over seeds)"]
    linked = [value for _, a, _ in html.elements for key, value in a.items()
              if key in ("src", "href", "xlink:href", "action", "data", "poster") and value]
    assert linked and not [v for v in linked if EXTERNAL.match(v)], linked
    assert not [tag for tag, a, _ in html.elements if tag in ("link", "iframe", "object", "embed")
                or (tag == "script" and a.get("src"))]
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//|@import", text)
    assert text.count("<svg") >= 5 + 5  # the figures, the heatmaps and a key per row, inline


def test_the_page_holds_the_rows_details_the_missing_runs_and_the_best_values(page):
    html = _parse(page / "toy.html")
    text = (page / "toy.html").read_text()
    summaries = [html.text(i) for i, (tag, _, _) in enumerate(html.elements) if tag == "summary"]
    assert [s for s in summaries if s.startswith("Runs and settings of ")] == [
        "Runs and settings of Zero-shot-MT", "Runs and settings of CoOp-MT",
        "Runs and settings of CoOp (search, 2 trials)-MT", "Runs and settings of VPT (search, 2 trials)-MT",
        "Runs and settings of MmAP-GROUPED"]
    items = [html.text(i) for i, (tag, _, _) in enumerate(html.elements) if tag == "li"]
    assert "0000deadbeef maple mt seed=3: missing" in items
    headings = [html.text(i) for i, (tag, _, _) in enumerate(html.elements) if tag == "h4"]
    assert sum(h.startswith("Settings that differ from the defaults: from `python -m bench.run method=coop "
                            "method.mode=mt dataset=toy`") for h in headings) == 2
    assert sum(h.startswith("Task groups and affinities of seed") for h in headings) == 2
    assert "Groups (gradient): photo, sketch | clipart, painting." in text
    # a search row's runs: each trial, whether it was selected, and what it drew
    assert re.search(r"<td>yes</td>\s*<td>train\.lr=[0-9.e-]+, method\.n_ctx=\d+, train\.weight_decay=", text)
    assert "beside the record: " in text and ".curves.csv" in text and "checkpoint: nothing" in text
    # the best average is marked: the highest mean, CoOp (search) in these runs
    summary = report.summarize(report.load_records(RUNS)[0], "toy")
    best = summary.loc[summary["Average mean"].idxmax()]
    assert re.search(rf'data-sort="{re.escape(repr(float(best["Average mean"])))}" class="best"><strong>', text)


# ---- in a real browser -------------------------------------------------------------------------------
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through chromedriver (Debian's packages; selenium downloads nothing when
    given both paths)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("no headless Chromium here: install Debian's packages with "
                    "`apt-get install -y chromium chromium-driver` (.ci/run does) to run the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="cpb-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _row_labels(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelector('table.sortable').tBodies, b => b.rows[0].cells[0].dataset.sort)")


def test_the_page_in_a_browser_shows_sorts_and_opens_a_rows_details(browser, page, tmp_path):
    from selenium.webdriver.common.by import By
    browser.get((page / "toy.html").as_uri())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    # nothing loaded from anywhere (no resource at all), and every figure laid out with a size
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    sizes = browser.execute_script(
        "return Array.from(document.querySelectorAll('figure svg'), s => s.getBoundingClientRect().width)")
    assert len(sizes) == 3 and min(sizes) > 200
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length")
    assert broken == 0

    summary = report.summarize(report.load_records(RUNS)[0], "toy")
    labels = [report.point_label(r, False).rsplit("-", 1)[0] for _, r in summary.iterrows()]
    by_average = [label for _, label in sorted(zip(summary["Average mean"], labels))]
    assert _row_labels(browser) == labels
    average = browser.find_element(By.XPATH, "//table[@class='sortable']/thead//th[normalize-space()='Average']")
    average.find_element(By.TAG_NAME, "button").click()
    assert _row_labels(browser) == by_average and average.get_attribute("aria-sort") == "ascending"
    average.find_element(By.TAG_NAME, "button").click()
    assert _row_labels(browser) == by_average[::-1] and average.get_attribute("aria-sort") == "descending"
    method = browser.find_element(By.XPATH, "//table[@class='sortable']/thead//th[normalize-space()='Method']")
    method.find_element(By.TAG_NAME, "button").click()
    assert _row_labels(browser) == sorted(labels)

    details = browser.find_element(By.XPATH, "//details[summary[normalize-space()='Runs and settings of "
                                             "MmAP-GROUPED']]")
    runs = details.find_element(By.CSS_SELECTOR, "table.inner")
    assert details.get_attribute("open") is None and not runs.is_displayed()
    details.find_element(By.TAG_NAME, "summary").click()
    assert details.get_attribute("open") is not None and runs.is_displayed()
    heatmap = details.find_element(By.CSS_SELECTOR, "div[role='img'] svg")
    assert heatmap.is_displayed() and heatmap.size["width"] > 100
    assert not [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]

    shot = tmp_path / "report_page.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
