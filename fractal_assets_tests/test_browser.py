"""The Dagster UI as a person sees it: a real ``dagster-webserver`` over a materialized
data dir, driven by headless Chromium through Playwright.

Skipped with a reason when Chromium (/usr/bin/chromium) or the ``playwright``
package is missing. Screenshots go to ``data/test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from dagster import DagsterInstance

from fractal_assets.cold.parquet import read_ticks
from fractal_assets.config import Config
from fractal_assets.defs.materialize import materialize_days, partitions_with_data
from fractal_assets.defs.resources import resources_for
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets_tests.support import free_port, private_prefix

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[dev]')"
)

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "data" / "test-artifacts"
WEBSERVER = Path(sys.executable).parent / "dagster-webserver"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START_MS = 1_723_118_400_000
"""2024-08-08T12:00:00Z: every partition is on 2024-08-08."""
DATE = "2024-08-08"
MARKET_SECONDS = 5 * 3600
"""Five hours: 300 1m bars per symbol, enough for rolling Hurst (240 bars) and fractals."""
STARTUP_TIMEOUT_S = 120
UI_TIMEOUT_MS = 30_000
ASSETS = ("hot_ticks", "hot_order_books", "hot_indicators", "raw_ticks", "bars_1m", "bars_5m", "bars_15m",
          "bars_1h", "bars_1d", "microstructure", "williams_fractals", "hurst_exponent", "indicator_snapshot",
          "warm_retention")
PARTITIONED_ASSETS = 10
"""raw_ticks, five bar timeframes and four indicator assets."""
WORKSPACE_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename } } } } }"
)


@dataclass(frozen=True)
class Ui:
    """A running webserver and the data it shows."""

    url: str
    config: Config



def build_data(config: Config, home: Path) -> None:
    """Simulate a few minutes of market into Redis, then materialize every symbol-day into a
    persistent instance, so the UI has runs, partitions, checks and metadata to show."""
    store = HotStore(redis.Redis.from_url(config.redis_url), Keys(config.key_prefix))
    spec = SimulatorSpec(symbols=SYMBOLS, rate=5, duration_s=MARKET_SECONDS, start_ms=START_MS, seed=11, chunk_ms=60_000)
    assert Ingestor(config, store, "sim:browser-test").run(simulate(spec)).total_accepted > 0
    days = partitions_with_data(store, config.cold)
    assert [(d.symbol, d.date) for d in days] == [(s, DATE) for s in sorted(SYMBOLS)]
    with DagsterInstance.from_config(str(home)) as instance:
        assert materialize_days(days, instance, resources_for(config)) == []


def location_loaded(url: str) -> bool:
    """Whether the webserver answers and has loaded the code location without error."""
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": WORKSPACE_QUERY}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
    except (urllib.error.URLError, OSError, KeyError, TypeError, ValueError):
        return False
    return bool(entries) and all(
        e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries
    )


def stop(process: subprocess.Popen) -> None:
    """Stop the webserver and its code server: they share one process group."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass


@contextmanager
def webserver(config: Config, home: Path, log: Path) -> Iterator[str]:
    """``dagster-webserver`` on a free port with the instance at ``home`` and the code location
    reading ``config``'s data; yields its URL once the code location has loaded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRACTAL_")}
    env.update(DAGSTER_HOME=str(home), FRACTAL_DATA_DIR=str(config.data_dir),
               FRACTAL_REDIS_URL=config.redis_url, FRACTAL_KEY_PREFIX=config.key_prefix)
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(WEBSERVER), "-m", "fractal_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not location_loaded(url):
            assert process.poll() is None, f"webserver exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"webserver not ready in {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
            )
            time.sleep(0.5)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="session")
def ui(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[Ui]:
    """One materialized data dir and webserver for the session: building them takes most of the
    module's time (and xdist may hand the module's tests to its worker in more than one batch)."""
    root = tmp_path_factory.mktemp("browser")
    home = root / "dagster_home"
    home.mkdir()
    # The repository's instance settings, without the first-visit dialog that would cover the pages.
    instance_yaml = (REPO / "dagster.yaml").read_text() + "nux:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(instance_yaml)
    with private_prefix(redis_server) as prefix:
        config = Config.from_env(data_dir=root / "data", redis_url=redis_server, key_prefix=prefix)
        build_data(config, home)
        with webserver(config, home, root / "webserver.log") as url:
            yield Ui(url, config)


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    """The system Chromium: Playwright's own browser downloads are not available everywhere."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: sync_api.Browser) -> Iterator[sync_api.Page]:
    """A fresh context per test, tall enough that the catalog renders every row."""
    context = browser.new_context(viewport={"width": 1600, "height": 1800})
    context.set_default_timeout(UI_TIMEOUT_MS)
    sync_api.expect.set_options(timeout=UI_TIMEOUT_MS)
    yield context.new_page()
    context.close()


def screenshot(page: sync_api.Page, name: str) -> None:
    """Keep what the test saw, for a person to look at (an open dialog once it has faded in)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialog = page.get_by_role("dialog")
    if dialog.count():
        page.wait_for_function("() => [...document.querySelectorAll('[role=dialog]')]"
                               ".every(d => getComputedStyle(d.parentElement).opacity === '1' "
                               "&& getComputedStyle(d).opacity === '1')")
    page.screenshot(path=ARTIFACTS / f"dagster-ui-{name}.png")


def test_catalog_lists_every_asset(ui: Ui, page: sync_api.Page) -> None:
    page.goto(f"{ui.url}/assets")
    for name in ASSETS:
        sync_api.expect(page.locator(f'a[href="/assets/{name}"]')).to_be_visible()
    totals = page.get_by_text(re.compile(r"^[\d,]+ partitions?$"))
    sync_api.expect(totals).to_have_count(PARTITIONED_ASSETS)
    screenshot(page, "catalog")


def test_lineage_shows_ticks_feeding_the_bars_and_indicators(ui: Ui, page: sync_api.Page) -> None:
    page.goto(f"{ui.url}/assets/bars_1m?view=lineage")
    graph = page.locator("svg").filter(has_text="raw_ticks")
    for name in ("raw_ticks", "bars_1m", "bars_5m", "bars_15m", "bars_1h", "bars_1d", "hurst_exponent",
                 "warm_retention"):
        sync_api.expect(graph.get_by_text(name, exact=True)).to_be_visible()
    screenshot(page, "lineage-bars_1m")

    page.goto(f"{ui.url}/locations/fractal_assets.definitions/asset-groups/bars/lineage")
    sync_api.expect(page.get_by_text("4 / 4 Passed")).to_be_visible()
    sync_api.expect(page.get_by_text("5 / 5 Passed")).to_have_count(4)
    screenshot(page, "lineage-bars-group")


def test_bars_partition_shows_its_metadata_and_candlestick_plot(ui: Ui, page: sync_api.Page) -> None:
    with closing(sqlite3.connect(ui.config.warm_db)) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM fractal_bars WHERE timeframe = '1m'").fetchone()[0]
    ticks = sum(read_ticks(ui.config.cold, symbol, DATE).num_rows for symbol in SYMBOLS)
    assert rows == len(SYMBOLS) * MARKET_SECONDS // 60

    page.goto(f"{ui.url}/assets/bars_1m?view=partitions&partition={DATE}")
    sync_api.expect(page.get_by_text("Materialized (1)", exact=True)).to_be_visible()
    sync_api.expect(page.get_by_text(DATE, exact=True).first).to_be_visible()
    metadata = page.get_by_role("table").filter(has_text="candles")
    for key, value in (("rows", str(rows)), ("ticks", str(ticks)), ("symbol_days", str(len(SYMBOLS))),
                       ("first_date", DATE), ("last_date", DATE)):
        sync_api.expect(metadata.get_by_role("row").filter(has_text=key).first).to_contain_text(value)
    screenshot(page, "bars_1m-partition")

    metadata.get_by_role("row").filter(has_text="candles").get_by_text("[Show Markdown]").click()
    plot = page.get_by_role("dialog").locator("img")
    sync_api.expect(plot).to_have_count(1)
    assert plot.get_attribute("src").startswith("data:image/png;base64,")
    width, height = plot.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width > 300 and height > 100, "the PNG decoded to a real picture"
    screenshot(page, "bars_1m-candles")


@pytest.mark.parametrize(("asset", "key"), [("microstructure", "vpin_plot"), ("williams_fractals", "fractal_plot"),
                                            ("hurst_exponent", "rolling_hurst_plot")])
def test_indicator_partitions_show_their_plots(ui: Ui, page: sync_api.Page, asset: str, key: str) -> None:
    page.goto(f"{ui.url}/assets/{asset}?view=partitions&partition={DATE}")
    metadata = page.get_by_role("table").filter(has_text=key)
    metadata.get_by_role("row").filter(has_text=key).get_by_text("[Show Markdown]").click()
    plot = page.get_by_role("dialog").locator("img")
    sync_api.expect(plot).to_have_count(1)
    width, height = plot.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width > 300 and height > 100, "the PNG decoded to a real picture"
    screenshot(page, f"{asset}-{key}")
