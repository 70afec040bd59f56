"""A browser app on another origin calls the vault's v2 API with `fetch`, as the vendor's JS SDK
does (JSON body, X-Bunker-Token header: a preflighted request), in a real headless Chromium
(Debian's chromium and chromium-driver, driven by Selenium).

Run by tests/api/cors.rs, which serves the page (PAGE_URL, its own origin) and three vaults:
OPEN (CORS for any origin, the default), LISTED (the page's origin listed) and OTHER (only
another origin listed, so the browser must refuse to let the page read the answer).
"""

import os
import tempfile

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

CALL_JS = """
const [base, token, login, done] = arguments;
fetch(base + '/v2/UserCreate', {
  method: 'POST',
  headers: {'Content-Type': 'application/json', 'X-Bunker-Token': token},
  body: JSON.stringify({profile: {login: login}}),
}).then(r => r.json().then(body => done({fetched: true, status: r.status, body: body})))
  .catch(e => done({fetched: false, error: String(e)}));
"""


@pytest.fixture(scope="module")
def page():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='cors-chromium-')}")
    b = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    b.set_script_timeout(30)
    b.get(os.environ["PAGE_URL"])
    assert b.title == "app"
    yield b
    b.quit()


def call(b, which, login):
    return b.execute_async_script(CALL_JS, os.environ[f"{which}_URL"], os.environ[f"{which}_TOKEN"], login)


def test_the_default_lets_any_origin_call(page):
    got = call(page, "OPEN", "browser-open")
    assert got["fetched"], got
    assert got["status"] == 200 and got["body"]["status"] == "ok", got
    assert got["body"]["token"], got


def test_a_listed_origin_may_call(page):
    got = call(page, "LISTED", "browser-listed")
    assert got["fetched"] and got["status"] == 200, got


def test_an_origin_not_listed_is_refused_by_the_browser(page):
    got = call(page, "OTHER", "browser-other")
    assert not got["fetched"], got
    assert "Failed to fetch" in got["error"], got
