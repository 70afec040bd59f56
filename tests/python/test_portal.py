"""The privacy portal end to end in a real headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) against a running `strongroom demo`.

A data subject signs in with the code from the demo outbox, edits the name, withdraws a
consent, downloads the export and asks to be forgotten; then the DPO approves both requests in
the console and the user is gone. Every page is screenshotted into $PORTAL_ARTIFACTS, and each
page is checked for labelled inputs and for fitting a phone-width screen.

Run by tests/api/portal.rs, which starts the demo and passes STRONGROOM_URL.
"""

import json
import os
import pathlib
import re
import shutil
import tempfile
import time
import uuid

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["STRONGROOM_URL"].rstrip("/")
ROOT = os.environ.get("STRONGROOM_ROOT_TOKEN", "DEMO")
ARTIFACTS = pathlib.Path(os.environ.get("PORTAL_ARTIFACTS", "target/portal-screenshots"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


def api(endpoint, body):
    r = requests.post(f"{BASE}/v2/{endpoint}", json=body, headers={"X-Bunker-Token": ROOT}, timeout=30)
    return r.status_code, r.json()


def ok(endpoint, body):
    code, v = api(endpoint, body)
    assert code == 200 and v.get("status") == "ok", (endpoint, code, v)
    return v


@pytest.fixture(scope="module")
def downloads():
    d = tempfile.mkdtemp(prefix="portal-downloads-")
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def new_browser(downloads, lang="en-GB,en"):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1100,900"):
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='portal-chromium-')}")
    opts.add_argument(f"--lang={lang.split(',')[0]}")
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False,
                                           "intl.accept_languages": lang})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


@pytest.fixture(scope="module")
def browser(downloads):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    b = new_browser(downloads)
    yield b
    b.quit()


def shot(b, name):
    assert b.save_screenshot(str(ARTIFACTS / f"{name}.png")), name


CONTRAST_JS = """
function lum(c) {
  const m = c.match(/[\\d.]+/g).map(Number);
  const ch = m.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return [0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2], m.length > 3 ? m[3] : 1];
}
function background(el) {
  for (; el; el = el.parentElement) {
    const bg = getComputedStyle(el).backgroundColor;
    if (lum(bg)[1] > 0) return bg;
  }
  return 'rgb(255, 255, 255)';
}
const worst = [];
for (const el of document.querySelectorAll('body *')) {
  const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  if (!own || !el.getClientRects().length || el.closest('.skip')) continue;
  const [fg] = lum(getComputedStyle(el).color), [bg] = lum(background(el));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  if (ratio < 4.5) worst.push(el.tagName + ' ' + ratio.toFixed(2) + ' ' + el.textContent.trim().slice(0, 30));
}
return worst;
"""


# What a person must never read on a page: the vault's endpoint names, machine timestamps, JSON.
ENDPOINT_NAME = re.compile(r"\b(User|Agreement|Session|Appdata|Audit|Portal|Bulk|Token|LegalBasis|System|Request|Shared)"
                           r"(Get|List|Create|Update|Patch|Delete|Cancel|Accept|SignIn|CodeSent|Upsert|Approve|Login|Prelogin)\w*")
RAW_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\b1[6-9]\d{8}\b")
JSONISH = re.compile(r'[{\[]\s*"|"\s*:\s*["{\[\d]')


def check_words(name, text):
    """A page's visible text speaks to a person."""
    for what, pattern in (("an endpoint name", ENDPOINT_NAME), ("a raw timestamp", RAW_TIME), ("JSON", JSONISH)):
        m = pattern.search(text)
        assert not m, f"{name}: shows {what}: {m.group(0)!r} in {text!r}"


def check_page(b, name, lang="en"):
    """Screenshot, then the accessibility, wording and layout checks every portal page must pass."""
    shot(b, name)
    assert b.find_elements(By.TAG_NAME, "h1"), f"{name}: no h1"
    assert b.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
    check_words(name, b.find_element(By.TAG_NAME, "body").text)
    for el in b.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), textarea"):
        el_id = el.get_attribute("id")
        labelled = el.get_attribute("aria-label") or (el_id and b.find_elements(By.CSS_SELECTOR, f"label[for='{el_id}']"))
        assert labelled, f"{name}: input {el.get_attribute('name')} has no label"
    for el in b.find_elements(By.TAG_NAME, "button"):
        assert el.text.strip() or el.get_attribute("aria-label"), f"{name}: a button has no accessible name"
    # WCAG AA: text contrast of at least 4.5:1 against its background.
    low = b.execute_script(CONTRAST_JS)
    assert not low, f"{name}: low-contrast text: {low}"
    # Phone width: nothing wider than the screen.
    b.set_window_size(360, 800)
    width = b.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    shot(b, f"{name}-phone")
    b.set_window_size(1100, 900)
    assert width[0] <= width[1], f"{name}: {width[0]}px wide on a {width[1]}px screen"


def code_for(b, email):
    """Opens the demo outbox in a second tab and reads the newest code sent to `email`."""
    main = b.current_window_handle
    b.switch_to.new_window("tab")
    b.get(f"{BASE}/portal/demo/outbox")
    wait_for_text(b, "STRONGROOM_PORTAL_NOTIFY_URL")
    shot(b, "02-demo-outbox")
    code = None
    for row in b.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        if cells[3] == email:
            code = cells[0]
            break
    b.close()
    b.switch_to.window(main)
    assert code and len(code) == 6 and code.isdigit(), code
    return code


@pytest.fixture(scope="module")
def subject():
    run = uuid.uuid4().hex[:8]
    email = f"grace-{run}@example.com"
    token = ok("UserCreate", {"profile": {"email": email, "name": "Grace Hopper", "city": "Arlington"}})["token"]
    brief = f"newsletter-{run}"
    ok("LegalBasisCreate", {"brief": brief, "status": "active", "shortdesc": "Newsletter"})
    ok("AgreementAccept", {"mode": "token", "identity": token, "brief": brief, "agreementmethod": "web-form"})
    ok("AppdataCreate", {"mode": "token", "identity": token, "appname": "shop", "appdata": {"size": "M", "colour": "navy"}})
    ok("SessionUpsert", {"sessionuuid": str(uuid.uuid4()), "sessiondata": {"device": "phone"}, "mode": "token", "identity": token})
    return {"email": email, "token": token, "brief": brief}


def staleness_of(old):
    """The page holding `old` was replaced (Chromium reports this as a stale element or as a
    node that no longer belongs to the document)."""
    def check(_):
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True
    return check


def wait_for_text(b, text, timeout=20):
    """Waits until the page's source holds `text` (a loaded page can briefly read as empty on a
    busy machine)."""
    WebDriverWait(b, timeout).until(lambda d: text in d.page_source)


def click_and_wait(b, el):
    """Clicks `el` and waits for the next page to replace this one."""
    old = b.find_element(By.TAG_NAME, "html")
    el.click()
    WebDriverWait(b, 20).until(staleness_of(old))
    WebDriverWait(b, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")


def submit(b, form_css="main form"):
    click_and_wait(b, b.find_element(By.CSS_SELECTOR, f"{form_css} button[type=submit]"))


def test_a_data_subject_and_the_dpo_walk_through_the_portal(browser, subject, downloads):
    b = browser
    email, token, brief = subject["email"], subject["token"], subject["brief"]

    # Sign in with a one-time code.
    b.get(f"{BASE}/portal/")
    check_page(b, "01-sign-in")
    b.find_element(By.ID, "tenant").send_keys("default")
    b.find_element(By.ID, "identity").send_keys(email)
    submit(b)
    wait_for_text(b, "6-digit code is on its way")
    check_page(b, "02-enter-code")
    assert email not in b.current_url
    b.find_element(By.ID, "code").send_keys(code_for(b, email))
    submit(b)
    assert b.current_url.endswith("/portal/me"), b.current_url

    # The profile, then a corrected name: by default the tenant's policy files it for the DPO.
    profile = b.find_element(By.ID, "profile").text
    assert "Grace Hopper" in profile and email in profile and "Arlington" in profile
    check_page(b, "03-profile")
    assert "City" in profile, "field keys are shown as labels"
    field = b.find_element(By.XPATH, "//label[text()='Name']/following-sibling::input[1]")
    field.clear()
    field.send_keys("Grace Brewster Hopper")
    click_and_wait(b, b.find_element(By.XPATH, "//button[text()='Save changes']"))
    wait_for_text(b, "sent to the privacy officer")
    check_page(b, "04-change-requested")

    # Consents: withdraw the newsletter, at once.
    b.get(f"{BASE}/portal/me/consents")
    assert brief in b.find_element(By.ID, "consents").text
    check_page(b, "05-consents")
    click_and_wait(b, b.find_element(By.CSS_SELECTOR, f"button[aria-label='Withdraw consent: {brief}']"))
    wait_for_text(b, "Your consent is withdrawn.")
    got = ok("AgreementGet", {"mode": "token", "identity": token, "brief": brief})
    assert got["agreement"]["status"] not in ("active", "yes", "pending"), got

    # App data, sessions and the access log.
    b.get(f"{BASE}/portal/me/apps")
    wait_for_text(b, "navy")
    check_page(b, "06-app-data")
    b.get(f"{BASE}/portal/me/sessions")
    sessions = b.find_element(By.ID, "sessions").text
    assert "Device" in sessions and "phone" in sessions, sessions
    check_page(b, "07-sessions")
    b.get(f"{BASE}/portal/me/activity")
    log = b.find_element(By.ID, "activity").text
    assert "Sign-in" in log and "Your profile was read" in log and "A consent was withdrawn" in log, log
    assert re.search(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2} UTC", log), log
    check_page(b, "08-access-log")

    # Download everything as JSON.
    b.get(f"{BASE}/portal/me/export")
    check_page(b, "09-export")
    b.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()  # a download: the page stays
    target = downloads / "my-data.json"
    export = None
    for _ in range(200):  # Chromium writes a .crdownload first; wait for the whole file
        try:
            export = json.loads(target.read_text())
            break
        except (FileNotFoundError, ValueError):
            time.sleep(0.1)
    assert export is not None, "the export was not downloaded"
    assert export["token"] == token and export["profile"]["email"] == email
    assert export["appdata"]["shop"] == {"size": "M", "colour": "navy"}
    assert any(c["brief"] == brief for c in export["consents"])
    assert any(e["eventtype"] == "PortalSignIn" for e in export["access_log"])
    assert {r["requesttype"] for r in export["requests"]} == {"patch"}

    # Forget me: a request for the DPO.
    b.get(f"{BASE}/portal/me/forget")
    check_page(b, "10-forget-me")
    submit(b)
    wait_for_text(b, "sent to the privacy officer")
    check_page(b, "11-erasure-requested")
    click_and_wait(b, b.find_element(By.XPATH, "//button[text()='Sign out']"))
    b.get(f"{BASE}/portal/me")
    assert b.current_url.endswith("/portal/"), "signed out: the profile needs a new sign-in"

    # The DPO console: both requests pending, the name change shown as a diff.
    b.get(f"{BASE}/portal/dpo")
    check_page(b, "12-dpo-sign-in")
    b.find_element(By.ID, "tenant").send_keys("default")
    b.find_element(By.ID, "token").send_keys(ROOT)
    submit(b)
    assert int(b.find_element(By.ID, "count-pending").text) >= 2
    check_page(b, "13-dpo-requests")
    listed = requests.post(f"{BASE}/v2/UserRequestListUserRequests", json={"mode": "token", "identity": token},
                           headers={"X-Bunker-Token": ROOT}, timeout=30).json()["rows"]
    by_type = {r["requesttype"]: r["requestuuid"] for r in listed}
    click_and_wait(b, b.find_element(By.CSS_SELECTOR, f"a[href='/portal/dpo/requests/{by_type['patch']}']"))
    diff = b.find_element(By.ID, "diff")
    assert diff.find_element(By.TAG_NAME, "del").text == "Grace Hopper"
    assert diff.find_element(By.TAG_NAME, "ins").text == "Grace Brewster Hopper"
    assert "Sign-in" in b.find_element(By.ID, "trail").text
    assert "Name" in diff.text and "/name" not in diff.text and "patch" not in diff.text.lower()
    check_page(b, "14-dpo-review-change")
    b.find_element(By.ID, "reason").send_keys("Matches the passport")
    click_and_wait(b, b.find_element(By.CSS_SELECTOR, "button[value=approve]"))
    assert "Approved" in b.find_element(By.ID, "decision").text
    assert ok("UserGet", {"mode": "token", "identity": token})["profile"]["name"] == "Grace Brewster Hopper"

    b.get(f"{BASE}/portal/dpo/requests/{by_type['delete']}")
    wait_for_text(b, "Erase this person's record")
    check_page(b, "15-dpo-review-erasure")
    click_and_wait(b, b.find_element(By.CSS_SELECTOR, "button[value=approve]"))
    assert "Approved" in b.find_element(By.ID, "decision").text
    shot(b, "16-dpo-approved")

    # The user is gone: for the API, for the console and for a new sign-in.
    code, v = api("UserGet", {"mode": "token", "identity": token})
    assert code == 404, v
    b.get(f"{BASE}/portal/dpo/requests/{by_type['delete']}")
    wait_for_text(b, "no longer exists")
    check_page(b, "17-dpo-user-gone")
    click_and_wait(b, b.find_element(By.XPATH, "//button[text()='Sign out']"))


def test_pages_send_security_headers_and_no_script():
    r = requests.get(f"{BASE}/portal/", timeout=30)
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["x-frame-options"] == "DENY"
    assert "<script" not in r.text.lower() and "http://" not in r.text and "https://" not in r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_sign_in_works_by_keyboard_alone_in_a_sensible_focus_order(browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    b = browser
    email = f"keys-{uuid.uuid4().hex[:8]}@example.com"
    ok("UserCreate", {"profile": {"email": email, "name": "Keyboard User"}})
    b.get(f"{BASE}/portal/")

    def tab():
        ActionChains(b).send_keys(Keys.TAB).perform()
        el = b.switch_to.active_element
        return el.get_attribute("id") or el.get_attribute("class") or el.tag_name

    order = [tab() for _ in range(4)]
    assert order == ["skip", "tenant", "identity", "button"], order
    # Back to the first field, then type and press Enter: no mouse anywhere.
    b.get(f"{BASE}/portal/")
    tab()
    tab()
    ActionChains(b).send_keys("default").send_keys(Keys.TAB).send_keys(email).perform()
    old = b.find_element(By.TAG_NAME, "html")
    ActionChains(b).send_keys(Keys.ENTER).perform()
    WebDriverWait(b, 20).until(staleness_of(old))
    # The code field has the focus on arrival.
    assert b.switch_to.active_element.get_attribute("id") == "code"
    code = code_for(b, email)
    old = b.find_element(By.TAG_NAME, "html")
    ActionChains(b).send_keys(code).send_keys(Keys.ENTER).perform()
    WebDriverWait(b, 20).until(staleness_of(old))
    assert b.current_url.endswith("/portal/me") and "Keyboard User" in b.page_source
    # The skip link moves the focus to the content.
    tab()
    ActionChains(b).send_keys(Keys.ENTER).perform()
    assert b.switch_to.active_element.get_attribute("id") == "main"


def test_every_address_a_browser_opens_is_a_page(browser):
    """The vault's root, an unknown portal address and a reloaded form target are pages with the
    portal's look, never JSON."""
    b = browser
    for path, status, name in (("/", 200, "20-landing"), ("/portal/no-such-page", 404, "21-not-found"),
                               ("/portal/me/consents/withdraw", 405, "22-wrong-method")):
        r = requests.get(f"{BASE}{path}", timeout=30, allow_redirects=False)
        assert r.status_code == status, (path, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("text/html"), (path, r.headers["content-type"])
        assert "default-src 'none'" in r.headers["content-security-policy"]
        b.get(f"{BASE}{path}")
        check_page(b, name)
    # Reloading the code page goes back to the start instead of failing.
    r = requests.get(f"{BASE}/portal/signin", timeout=30, allow_redirects=False)
    assert r.status_code in (303, 307) and r.headers["location"] == "/portal/", r.status_code
    b.get(f"{BASE}/")
    click_and_wait(b, b.find_element(By.CSS_SELECTOR, "a[href='/portal/']"))
    assert "/portal/" in b.current_url and b.find_elements(By.TAG_NAME, "h1")
    r = requests.get(f"{BASE}/docs/README.md", timeout=30)
    assert r.status_code == 200 and "# Strongroom" in r.text


def test_the_portal_speaks_german_to_a_german_browser(downloads):
    """Accept-Language: de gives the German catalogue, dates included."""
    opts_browser = new_browser(downloads, lang="de-DE,de")
    try:
        b = opts_browser
        email = f"anna-{uuid.uuid4().hex[:8]}@example.com"
        ok("UserCreate", {"profile": {"email": email, "first_name": "Anna", "city": "Köln"}})
        b.get(f"{BASE}/portal/")
        check_page(b, "30-de-sign-in", lang="de")
        assert "Code senden" in b.page_source
        b.find_element(By.ID, "tenant").send_keys("default")
        b.find_element(By.ID, "identity").send_keys(email)
        submit(b)
        wait_for_text(b, "6-stelliger Code unterwegs")
        b.find_element(By.ID, "code").send_keys(code_for(b, email))
        submit(b)
        profile = b.find_element(By.ID, "profile").text
        assert "Vorname" in profile and "Ort" in profile and "Anna" in profile, profile
        check_page(b, "31-de-profile", lang="de")
        b.get(f"{BASE}/portal/me/activity")
        log = b.find_element(By.ID, "activity").text
        assert "Anmeldung" in log and "Ihr Profil wurde gelesen" in log, log
        assert re.search(r"\d{1,2}\. \S+ \d{4}, \d{2}:\d{2} UTC", log), log
        check_page(b, "32-de-access-log", lang="de")
        b.get(f"{BASE}/portal/nirgendwo")
        assert "Diese Seite gibt es nicht." in b.page_source
        check_page(b, "33-de-not-found", lang="de")
    finally:
        opts_browser.quit()
