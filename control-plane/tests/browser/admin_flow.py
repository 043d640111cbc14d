"""The admin UI's acceptance flow in Debian's Chromium, driven by Playwright (sync API).

Run by validator/tests/admin_ui.rs, which starts the services and passes their addresses in
KEYWARD_* variables. Prints one JSON line per step; exits non-zero on the first failure, or at
the end if the browser logged any console error, page error or CSP violation.
"""

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["KEYWARD_BASE"]
VALIDATOR = os.environ["KEYWARD_VALIDATOR"]
USER = os.environ["KEYWARD_USER"]
PASSWORD = os.environ["KEYWARD_PASSWORD"]
AXE_JS = os.environ["KEYWARD_AXE_JS"]
CHROMIUM = os.environ.get("KEYWARD_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ["KEYWARD_SHOTS"])
LOAD_LICENSES = int(os.environ.get("KEYWARD_LOAD_LICENSES", "0"))
UI = BASE + "/ui/"
# Chromium as root on a machine without a network: no sandbox (Playwright adds --no-sandbox),
# and none of its background connections.
ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
APP = "Browser Test Tool"
CIDR = "203.0.113.0/24"
# A page that answers within this is fine; Playwright's auto-waiting uses it as its deadline.
DEADLINE_MS = 10_000

problems = []


def step(name, **data):
    print(json.dumps({"step": name, **data}), flush=True)


def fail(message):
    print(json.dumps({"step": "failed", "error": message}), flush=True)
    sys.exit(1)


def watch(page, label):
    """Fails the run on any console error, CSP or Trusted Types refusal, or uncaught error."""

    def on_console(msg):
        # Chromium words CSP refusals "Refused to …" or "… violates the following Content
        # Security Policy directive …", as errors; whatever the type, they fail the run.
        if msg.type == "error" or "Refused to" in msg.text or "Content Security Policy" in msg.text or "Trusted Type" in msg.text:
            problems.append(f"{label}: console.{msg.type}: {msg.text} ({msg.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"{label}: uncaught: {e}"))


# --- the API, beside the browser, to check what the UI did -----------------------------------

def call(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def api_token():
    status, body = call("POST", BASE + "/v1/auth/login", {"username": USER, "password": PASSWORD})
    if status != 200:
        fail(f"API login: {status} {body}")
    return body["token"]


def validator_code(app_id, key, hwid):
    status, body = call("POST", VALIDATOR + "/v1/validate", {"app": app_id, "key": key, "hwid": hwid})
    return body.get("code") if isinstance(body, dict) else f"HTTP {status}"


def poll(what, check, deadline_s=5.0):
    start = time.monotonic()
    last = None
    while time.monotonic() - start < deadline_s:
        ok, last = check()
        if ok:
            return time.monotonic() - start
        time.sleep(0.005)
    fail(f"{what}: still {last!r} after {deadline_s}s")


# --- the UI ------------------------------------------------------------------------------------

def sign_in(page):
    page.goto(UI)
    page.get_by_label("Username or e-mail").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def go(page, route):
    page.goto(UI + "#" + route)
    expect(page.locator("main h1")).to_be_visible()


def dialog(page):
    return page.locator("dialog[open]").last


def shot(page, name):
    # The notices of earlier actions fade by themselves; the README's pictures show the page.
    expect(page.locator(".notices .notice")).to_have_count(0, timeout=DEADLINE_MS)
    page.screenshot(path=str(SHOTS / f"ui-{name}.png"), full_page=False)


def main():
    SHOTS.mkdir(parents=True, exist_ok=True)
    token = api_token()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 860})
        ctx.set_default_timeout(DEADLINE_MS)
        page = ctx.new_page()
        watch(page, "desktop")

        sign_in(page)
        step("sign in")

        # An app, created in the UI.
        go(page, "/apps")
        page.get_by_role("button", name="New app").click()
        d = dialog(page)
        d.get_by_label("Name").fill(APP)
        d.get_by_role("button", name="Create").click()
        expect(page.get_by_role("link", name=APP)).to_be_visible()
        _, apps = call("GET", BASE + "/v1/apps", token=token)
        app_id = next(a["id"] for a in apps["items"] if a["name"] == APP)
        step("create app", app_id=app_id)

        # 25 licenses by mask.
        go(page, "/licenses")
        page.get_by_role("button", name="Generate").first.click()
        d = dialog(page)
        d.get_by_label("App").select_option(label=APP)
        d.get_by_label("Count").fill("25")
        d.get_by_label("Mask").fill("UI-XXXX-XXXX-XXXX")
        d.get_by_label("Duration").fill("30")
        d.get_by_label("Note").fill("made in the browser test")
        d.get_by_role("button", name="Generate").click()
        expect(d.get_by_text("UI-", exact=False).first).to_be_visible()
        d.get_by_role("button", name="Close").click()
        _, listed = call("GET", BASE + f"/v1/licenses?app_id={app_id}&limit=100", token=token)
        keys = [l["key"] for l in listed["items"]]
        if len(keys) != 25 or not all(k.startswith("UI-") for k in keys):
            fail(f"expected 25 UI- keys, the API lists {keys}")
        step("generate 25 licenses", count=len(keys))

        key = sorted(keys)[7]
        license_id = next(l["id"] for l in listed["items"] if l["key"] == key)
        page.get_by_label("Search").fill(key)
        rows = page.locator("table.data tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(key)
        step("search one", key=key)
        shot(page, "licenses-search")

        # The client binds a HWID, then the admin bans the key in the UI.
        if validator_code(app_id, key, "pc-1") != "VALID":
            fail("a fresh key is not VALID on the validator")
        page.get_by_role("button", name=f"Ban {key}").click()
        d = dialog(page)
        reason = d.get_by_label("Reason")
        if reason.count():
            reason.fill("chargeback")
        d.get_by_role("button", name="Ban").click()
        expect(rows.first).to_contain_text("banned")
        took = poll("validator after the ban", lambda: ((c := validator_code(app_id, key, "pc-1")) == "BANNED", c))
        step("ban: validator answers BANNED", seconds=round(took, 4))

        page.get_by_role("button", name=f"Reset HWIDs {key}").click()
        dialog(page).get_by_role("button", name="Reset HWIDs").click()
        poll(
            "HWIDs after the reset",
            lambda: (not (l := call("GET", BASE + f"/v1/licenses/{license_id}", token=token)[1]).get("hwids"), l.get("hwids")),
        )
        step("reset HWIDs")

        # A CIDR on the app's blacklist.
        go(page, "/blacklist")
        page.get_by_label("App").select_option(label=APP)
        page.get_by_label("Kind").select_option(label="CIDR")
        page.get_by_label("Value").fill(CIDR)
        page.get_by_label("Reason").fill("abuse from this range")
        page.get_by_role("button", name="Add").click()
        expect(page.locator("table.data")).to_contain_text(CIDR)
        _, bl = call("GET", BASE + f"/v1/apps/{app_id}/blacklist", token=token)
        if CIDR not in json.dumps(bl):
            fail(f"the API's blacklist lacks {CIDR}: {bl}")
        step("add blacklist CIDR")
        shot(page, "blacklist")

        # The audit log has an entry for each of those actions.
        go(page, "/audit")
        for action in ["app.create", "license.generate", "license.ban", "license.reset_hwids", "blacklist.add"]:
            page.get_by_label("Action").fill(action)
            page.get_by_label("Action").press("Enter")
            expect(page.locator("table.data tbody tr").first).to_contain_text(action)
        step("audit entries")
        page.get_by_label("Action").fill("")
        page.get_by_label("Action").press("Enter")
        expect(page.locator("table.data tbody tr").first).to_be_visible()
        shot(page, "audit")

        # Hostile text from the API is shown as text: no element, no handler, no script runs.
        hostile = '<img src=x onerror="window.__xss=1">'
        status, made = call("POST", BASE + "/v1/apps", {"name": hostile}, token=token)
        if status != 201:
            fail(f"creating the hostile app: {status} {made}")
        go(page, "/apps")
        expect(page.get_by_text(hostile).first).to_be_visible()
        if page.evaluate("window.__xss !== undefined || !!document.querySelector('img[src=x]')"):
            fail("an app name was rendered as HTML")
        call("DELETE", BASE + f"/v1/apps/{made['id']}", token=token)
        step("hostile text rendered as text")

        # The main pages, as the README shows them.
        for route, name in [
            ("/overview", "overview"),
            ("/apps", "apps"),
            (f"/apps/{app_id}", "app"),
            (f"/licenses?app={app_id}", "licenses"),
            (f"/licenses/{license_id}", "license"),
            ("/users", "users"),
            ("/webhooks", "webhooks"),
            ("/api-keys", "api-keys"),
            ("/signing-keys", "signing-keys"),
        ]:
            go(page, route)
            page.wait_for_load_state("networkidle")
            shot(page, name)
        step("screenshots", dir=str(SHOTS))

        # First load of the licenses page with every seeded license in the account.
        page.goto("about:blank")
        start = time.monotonic()
        page.goto(UI + "#/licenses")
        expect(page.locator("table.data tbody tr").nth(49)).to_be_visible()
        ms = round((time.monotonic() - start) * 1000)
        step("licenses first load", ms=ms, licenses=LOAD_LICENSES + 25)

        phone(browser)
        accessibility(browser, app_id, license_id)
        keyboard(browser)

        # Signing out forgets the token: a reload shows the sign-in page.
        page.goto(UI + "#/overview")
        page.get_by_role("button", name="Sign out").first.click()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        stored = page.evaluate("sessionStorage.getItem('keyward.session')")
        if stored is not None:
            fail(f"the session is still stored after signing out: {stored}")
        page.reload()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        step("sign out")
        browser.close()

    if problems:
        for p in problems:
            print(json.dumps({"step": "browser problem", "error": p}), flush=True)
        fail(f"{len(problems)} console errors or CSP violations")
    step("done")


def phone(browser):
    """At 390 px the navigation folds behind the menu and nothing scrolls sideways."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    ctx.set_default_timeout(DEADLINE_MS)
    page = ctx.new_page()
    watch(page, "phone")
    sign_in_phone(page)
    for route, name in [("/overview", "phone-overview"), ("/licenses", "phone-licenses")]:
        go(page, route)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 392:
            fail(f"{route} is {width}px wide on a 390px screen")
        shot(page, name)
    menu = page.get_by_role("button", name="Menu")
    menu.click()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Licenses")).to_be_visible()
    shot(page, "phone-menu")
    ctx.close()
    step("phone width")


def sign_in_phone(page):
    page.goto(UI)
    page.get_by_label("Username or e-mail").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Menu")).to_be_visible()


def accessibility(browser, app_id, license_id):
    """axe-core's WCAG 2 A/AA rules on every main page. axe is injected into a context of its
    own that bypasses CSP (our CSP rightly refuses scripts we did not serve)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
    ctx.set_default_timeout(DEADLINE_MS)
    page = ctx.new_page()
    axe = Path(AXE_JS).read_text()
    page.goto(UI)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    routes = ["sign-in"]
    violations = audit_page(page, axe, "sign-in")
    sign_in(page)
    for route in [
        "/overview", "/apps", f"/apps/{app_id}", "/licenses", f"/licenses/{license_id}", "/machines",
        "/users", "/subscriptions", "/variables", "/sessions", "/logs", "/blacklist", "/webhooks",
        "/api-keys", "/seller-keys", "/signing-keys", "/audit", "/account",
    ]:
        go(page, route)
        page.wait_for_load_state("networkidle")
        violations += audit_page(page, axe, route)
        routes.append(route)
    ctx.close()
    if violations:
        for v in violations:
            print(json.dumps({"step": "axe violation", **v}), flush=True)
        fail(f"{len(violations)} accessibility violations")
    step("accessibility", pages=len(routes), rules="wcag2a, wcag2aa, wcag21a, wcag21aa")


def audit_page(page, axe, label):
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe)
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
            return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }));
        }"""
    )
    return [{"page": label, **v} for v in result]


def keyboard(browser):
    """Sign in and reach a page with the keyboard alone."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(DEADLINE_MS)
    page = ctx.new_page()
    watch(page, "keyboard")
    page.goto(UI)
    expect(page.get_by_label("Username or e-mail")).to_be_focused()
    page.keyboard.type(USER)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    # The first Tab reaches the skip link, which moves focus to the page's heading.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main h1")).to_be_focused()
    # Tabbing from the top reaches the navigation's "Licenses" link, and Enter opens it.
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement?.textContent") == "Licenses":
            break
    else:
        fail("40 Tabs never reached the Licenses link")
    page.keyboard.press("Enter")
    expect(page).to_have_url(UI + "#/licenses")
    expect(page.locator("main h1")).to_have_text("Licenses")
    ctx.close()
    step("keyboard")


if __name__ == "__main__":
    main()
