"""The console in a real browser (Debian's chromium driven by playwright), against a dev server
started for it on a fresh state (scripts/test). Usage: console.py BASE_URL STATE_DIR SHOTS_DIR

Scenarios, as an admin and as a viewer would go through them:
  sign in with the demo key; the overview shows the demo space;
  send the demo webhook and watch its execution turn `succeeded` on its own page, every step lit;
  make a step fail (a flow calling a local mock that answers 500), find it on the overview, open
  it, read the error, fix the mock, rerun from the failed step, see it succeed;
  poison a run message, find it on the dead-letter page, replay it;
  create a tenant and an API key as an admin (the key is shown once);
  sign in as a viewer: no write controls, and a forged POST is refused; a POST without the CSRF
  token is refused;
  the pages at phone width, in dark mode, and by keyboard.
A screenshot of every page is saved in SHOTS_DIR. Exits 1 at the first failed expectation.
"""

import hashlib
import hmac
import http.server
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.request

from playwright.sync_api import sync_playwright

BASE, STATE, SHOTS = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
KEY = open(os.path.join(STATE, "demo-api-key")).read().strip()
# The demo's development webhook secret (functions/local/src/demo.rs).
DEMO_SECRET = b"demo-webhook-secret-change-me"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
os.makedirs(SHOTS, exist_ok=True)


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}")
        sys.exit(1)


def api(method, path, body=None, key=KEY, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("x-fastn-api-key", key)
    request.add_header("x-fastn-space-id", "demo")
    request.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Mock(http.server.BaseHTTPRequestHandler):
    """A third party that answers 500 until it is fixed."""
    failing = True
    calls = 0

    def do_POST(self):
        Mock.calls += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status = 500 if Mock.failing else 200
        body = b'{"error":"down for maintenance"}' if Mock.failing else b'{"ok":true}'
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea'))
    .filter(el => el.type !== 'hidden')
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    .map(el => el.outerHTML.slice(0, 120))"""


def shot(page, name):
    """A screenshot of the page; and every control on it has a label."""
    unlabelled = page.evaluate(UNLABELLED)
    check(not unlabelled, f"{name}: controls without a label: {unlabelled}")
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def sign_in(page, key):
    page.goto(BASE + "/")
    check(page.url.endswith("/console/login"), f"the front page leads to the login: {page.url}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(BASE + "/console/")


def send_demo_webhook():
    payload = open(os.path.join(STATE, "demo-github-push.json"), "rb").read()
    signature = "sha256=" + hmac.new(DEMO_SECRET, payload, hashlib.sha256).hexdigest()
    request = urllib.request.Request(BASE + "/webhooks/acme/github", data=payload, method="POST")
    for k, v in {"content-type": "application/json", "x-github-event": "push",
                 "x-github-delivery": f"browser-{time.time_ns()}", "x-hub-signature-256": signature}.items():
        request.add_header(k, v)
    with urllib.request.urlopen(request) as response:
        check(response.status == 202, f"the webhook is accepted: {response.status}")
        return json.loads(response.read() or b"null")


def wait_live_status(page, wanted, timeout_ms=20000):
    """The execution page updates itself (its script): wait for the status without reloading."""
    try:
        page.wait_for_selector(f'#live[data-status="{wanted}"]', timeout=timeout_ms)
    except Exception:
        shot(page, "failed-wait")
        status = page.locator("#live").get_attribute("data-status") if page.locator("#live").count() else None
        check(False, f"{page.url} did not reach {wanted} (it shows {status})")


def main():
    mock = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mock)
    threading.Thread(target=mock.serve_forever, daemon=True).start()
    mock_url = f"http://127.0.0.1:{mock.server_address[1]}/notify"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        admin = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        admin.on("pageerror", lambda e: errors.append(str(e)))

        # Sign in; the overview shows the demo space.
        admin.goto(BASE + "/console/login")
        shot(admin, "01-login")
        sign_in(admin, KEY)
        check(admin.locator("header .space strong").inner_text() == "demo", "the overview is the demo space's")
        check(admin.get_by_role("heading", name="Overview").is_visible(), "the overview heading")
        shot(admin, "02-overview-empty")

        # The demo webhook: its execution turns succeeded on its own page, every step lit.
        # The page is opened at once, while the run may still be queued or running.
        send_demo_webhook()
        admin.goto(BASE + "/console/executions?tenant=acme")
        admin.wait_for_selector("tr[data-execution] a")
        admin.locator("tr[data-execution] a").first.click()
        wait_live_status(admin, "succeeded")
        nodes = admin.locator("svg.graph a.node")
        check(nodes.count() == 3, f"three steps on the graph: {nodes.count()}")
        statuses = [nodes.nth(i).get_attribute("data-status") for i in range(nodes.count())]
        check(statuses == ["succeeded"] * 3, f"every step succeeded: {statuses}")
        check(admin.locator("svg.timeline rect.bar").count() == 3, "three bars on the timeline")
        shot(admin, "03-execution-succeeded")

        # A failing step: a flow calling the mock, which answers 500.
        flow = {"id": "notify-partner", "name": "Notify the partner", "trigger": {"type": "manual"},
                "steps": [{"id": "prepare", "kind": "transform", "expr": "{order: 42}"},
                          {"id": "call", "kind": "http", "depends_on": ["prepare"], "method": "POST",
                           "url": mock_url, "body": "${{ .steps.prepare.output }}", "retry": {"max_attempts": 1}},
                          {"id": "finish", "kind": "transform", "depends_on": ["call"], "expr": "true"}]}
        status, body = api("POST", "/api/v1/tenants/acme/workflows", flow)
        check(status == 201, f"the flow is created: {status} {body}")
        admin.goto(BASE + "/console/flows/tenant/acme/notify-partner")
        check(admin.locator("svg.graph a.node").count() == 3, "the flow page draws its steps")
        shot(admin, "04-flow")
        admin.get_by_label("Input (JSON)").fill('{"order": 42}')
        admin.get_by_role("button", name="Run", exact=True).click()
        wait_live_status(admin, "failed")
        # Found from the overview.
        admin.goto(BASE + "/console/")
        failure = admin.locator("tr[data-execution]").first
        check("notify-partner" in failure.inner_text(), f"the overview lists the failure: {failure.inner_text()}")
        shot(admin, "05-overview-failure")
        failure.locator("a").first.click()
        admin.wait_for_selector("#live")
        check(admin.locator('svg.graph a.node[data-step="call"]').get_attribute("data-status") == "failed",
              "the failed step is red on the graph")
        error_text = admin.locator("#step-call").inner_text()
        check("500" in error_text, f"the step's error is readable: {error_text}")
        shot(admin, "06-execution-failed")
        # Fix the third party, rerun from the failed step.
        Mock.failing = False
        calls_before = Mock.calls
        admin.get_by_role("button", name="Rerun from the failed step").click()
        wait_live_status(admin, "succeeded")
        check(Mock.calls == calls_before + 1, "only the failed step ran again")
        statuses = [admin.locator("svg.graph a.node").nth(i).get_attribute("data-status") for i in range(3)]
        check(statuses == ["succeeded"] * 3, f"the rerun succeeded at every step: {statuses}")
        shot(admin, "07-rerun-succeeded")

        # A poisoned run message: one the executor gave up on (delivered the maximum number of
        # times), so the queue moves it to the dead-letter queue at its next receive.
        db = sqlite3.connect(os.path.join(STATE, "dev.db"), timeout=10)
        now = int(time.time() * 1000)
        poison = json.dumps({"type": "start", "space": "demo", "tenant": "acme", "execution_id": "poisoned"})
        db.execute("INSERT INTO queue_messages (id, queue, body, sent_at, visible_at, receive_count) "
                   "VALUES (?, 'runs', ?, ?, ?, 5)", (f"poison-{now}", poison, now, now))
        db.commit()
        db.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            admin.goto(BASE + "/console/dlq")
            if admin.locator("tr[data-message]").count() > 0:
                break
            time.sleep(0.5)
        check(admin.locator("tr[data-message]").count() == 1, "the poisoned message is in the DLQ")
        shot(admin, "08-dlq")
        admin.locator("tr[data-message]").get_by_role("button", name="Replay").click()
        check("Replayed 1 message(s)" in admin.locator("p.success").inner_text(), "the replay is confirmed")

        # Create a tenant and a key as an admin.
        admin.goto(BASE + "/console/tenants")
        admin.locator("summary", has_text="Create a tenant").click()
        admin.get_by_label("Id (letters, digits, - and _)").fill("globex")
        admin.get_by_label("Name", exact=True).fill("Globex")
        admin.get_by_role("button", name="Create tenant").click()
        admin.wait_for_url(BASE + "/console/tenants/globex")
        check(admin.get_by_role("heading", name="Tenant globex").is_visible(), "the new tenant's page")
        shot(admin, "09-tenant")
        admin.goto(BASE + "/console/settings")
        admin.locator("summary", has_text="Create a key").click()
        admin.get_by_label("Name", exact=True).fill("read-only")
        admin.locator("#key-role").select_option("viewer")
        admin.get_by_role("button", name="Create key").click()
        viewer_key = admin.locator("#new-key").inner_text().strip()
        check(viewer_key.startswith("swy_"), f"the key is shown once: {viewer_key[:6]}")
        shot(admin, "10-key-created")
        for path, name in [("/console/connectors?tenant=acme", "11-connectors"), ("/console/usage?tenant=acme", "12-usage"),
                           ("/console/events?tenant=acme", "13-events"), ("/console/settings", "14-settings"),
                           ("/console/settings/audit", "15-audit"), ("/console/flows", "16-flows")]:
            admin.goto(BASE + path)
            check(admin.locator("main h1").count() == 1, f"{path} renders")
            shot(admin, name)

        # A viewer: no write controls; a forged POST is refused; a POST without CSRF too.
        viewer = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(viewer, viewer_key)
        viewer.goto(BASE + "/console/tenants/acme")
        check(viewer.get_by_role("button", name="Suspend").count() == 0, "a viewer has no Suspend button")
        viewer.goto(BASE + "/console/executions?tenant=acme")
        viewer.locator("tr[data-execution] a").first.click()
        check(viewer.get_by_role("button", name="Rerun from the start").count() == 0, "a viewer cannot rerun")
        shot(viewer, "17-viewer-execution")
        viewer.goto(BASE + "/console/tenants/acme")
        csrf = viewer.locator('input[name="csrf"]').first.get_attribute("value")
        forged = viewer.evaluate("""async (csrf) => {
            const r = await fetch('/console/tenants/acme/status', {method: 'POST',
                headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'status=suspended&csrf=' + csrf});
            return r.status; }""", csrf)
        check(forged == 403, f"a viewer's forged write is refused: {forged}")
        no_csrf = admin.evaluate("""async () => {
            const r = await fetch('/console/tenants/acme/status', {method: 'POST',
                headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'status=suspended'});
            return r.status; }""")
        check(no_csrf == 403, f"an admin's POST without the CSRF token is refused: {no_csrf}")
        status, tenant = api("GET", "/api/v1/tenants/acme")
        check(tenant.get("status") == "active", f"nothing was suspended: {tenant}")

        # Phone width, dark mode, keyboard.
        phone = browser.new_page(viewport={"width": 390, "height": 844}, color_scheme="dark")
        sign_in(phone, KEY)
        width = phone.evaluate("document.documentElement.scrollWidth")
        check(width <= 390, f"no sideways scrolling at phone width: {width}")
        shot(phone, "18-phone-dark-overview")
        phone.goto(BASE + "/console/executions?tenant=acme")
        phone.locator("tr[data-execution] a").first.click()
        phone.wait_for_selector("#live")
        width = phone.evaluate("document.documentElement.scrollWidth")
        check(width <= 390, f"the execution page fits a phone too: {width}")
        shot(phone, "19-phone-dark-execution")
        background = phone.evaluate("getComputedStyle(document.body).backgroundColor")
        check(background != "rgb(247, 247, 248)", f"dark mode applies: {background}")
        admin.goto(BASE + "/console/")
        admin.keyboard.press("Tab")
        focused = admin.evaluate("document.activeElement.textContent")
        check(focused.strip() == "Skip to content", f"the first Tab reaches the skip link: {focused}")
        check(not errors, f"no script errors: {errors}")
        browser.close()
    mock.shutdown()
    print(f"console in a real browser: all scenarios passed; screenshots in {SHOTS}")


if __name__ == "__main__":
    main()
