"""The web dashboard in headless Chromium (Debian chromium + chromedriver,
Python selenium with SE_OFFLINE=true: nothing is downloaded), against a
`finopsia run` service on the public sample started by tests/dashboard.rs.

Checks: the login link works once and a wrong token is refused; the session
cookie is HttpOnly and SameSite=Strict; a change without the CSRF token is
refused; every chart's data equals the numbers recomputed here from the
REST API (cash flow in day, week and month buckets, the forecast views);
tables agree with the API; a category corrected in the page is in
`corrections` through `finopsia query`; records ingested during the test
(a good one and a bad one) appear without a reload; the bad one is fixed
and re-submitted in the page; no console errors. Screenshots of each view
at desktop and phone sizes go to the artifacts directory.

Usage: dashboard_check.py CONFIG_JSON (base, login_url, read_token,
ingest_token, finopsia, data_dir, artifacts, chromedriver).
"""

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict

os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

CFG = json.loads(sys.argv[1])
BASE = CFG["base"]
ART = CFG["artifacts"]
os.makedirs(ART, exist_ok=True)
DESKTOP = (1280, 900)
PHONE = (390, 844)


def step(msg):
    print(f"-- {msg}", flush=True)


def http(method, path, token=None, body=None, headers=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def api(path, token=None):
    status, body = http("GET", path, token or CFG["read_token"])
    assert status == 200, f"GET {path}: {status} {body[:300]!r}"
    return json.loads(body)


def all_pages(path, params):
    items, cursor = [], None
    while True:
        q = dict(params, limit=1000)
        if cursor:
            q["cursor"] = cursor
        page = api(path + "?" + urllib.parse.urlencode(q))
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def wait(what, cond, timeout=30.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # the page is between states
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def day(s):
    return dt.date.fromisoformat(s[:10])


def bucket_of(d, bucket):
    if bucket == "month":
        return d.replace(day=1)
    if bucket == "week":
        return d - dt.timedelta(days=d.weekday())
    return d


def next_bucket(b, bucket):
    if bucket == "month":
        return (b.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return b + dt.timedelta(days=7 if bucket == "week" else 1)


options = webdriver.ChromeOptions()
options.binary_location = CFG.get("chromium", "/usr/bin/chromium")
for a in [
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--lang=en-GB",
]:
    options.add_argument(a)
options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service(executable_path=CFG["chromedriver"]), options=options)
driver.set_script_timeout(60)


def js(script, *args):
    return driver.execute_script(script, *args)


def console(expect_clean=True, allowed=()):
    """Console entries since the last call; fails on errors."""
    entries = driver.get_log("browser")
    bad = [
        e
        for e in entries
        if e["level"] in ("SEVERE", "ERROR") and not any(a in e["message"] for a in allowed)
    ]
    if expect_clean:
        assert not bad, f"console errors: {bad}"
    return entries


def shot(name):
    for size, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        driver.set_window_size(*size)
        time.sleep(0.6)
        driver.save_screenshot(os.path.join(ART, f"{name}-{label}.png"))
    driver.set_window_size(*DESKTOP)
    time.sleep(0.4)


def show(view):
    driver.find_element(By.CSS_SELECTOR, f'#nav button[data-view="{view}"]').click()
    wait(f"{view} visible", lambda: driver.find_element(By.ID, f"view-{view}").is_displayed())


def loaded(view):
    return js("return (window.FinOpsia && window.FinOpsia.loaded[arguments[0]]) || 0", view)


try:
    # ------------------------------------------------------------ login
    step("a wrong login token is refused")
    status, _ = http("GET", "/login?token=login_wrong")
    assert status == 401, status
    driver.get(BASE + "/login?token=login_wrong")
    err = wait("the refusal", lambda: driver.find_element(By.ID, "login-error"))
    assert err.is_displayed() and "not accepted" in err.text, err.text
    assert not driver.find_element(By.ID, "nav").is_displayed()
    assert not [c for c in driver.get_cookies() if c["name"] == "finopsia_session"]
    shot("login-refused")
    # The document itself was a 401: Chromium logs that one load.
    console(allowed=("401",))
    driver.find_element(By.ID, "login-token").send_keys("fin_not_a_token")
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait("the form's refusal", lambda: "not accepted" in driver.find_element(By.ID, "login-error").text)
    assert not [c for c in driver.get_cookies() if c["name"] == "finopsia_session"]
    console(allowed=("401",))

    step("the one-time link logs in, once")
    driver.get(CFG["login_url"])
    wait("the dashboard", lambda: driver.find_element(By.ID, "nav").is_displayed())
    assert "token=" not in driver.current_url, driver.current_url
    cookie = [c for c in driver.get_cookies() if c["name"] == "finopsia_session"]
    assert cookie and cookie[0]["httpOnly"] and cookie[0]["sameSite"] == "Strict", cookie
    status, _ = http("GET", urllib.parse.urlparse(CFG["login_url"]).path + "?" + urllib.parse.urlparse(CFG["login_url"]).query)
    assert status == 401, f"the link works a second time: {status}"
    assert "admin" in driver.find_element(By.ID, "who-name").text

    step("changes need the CSRF token and this origin")
    session = {"Cookie": f"finopsia_session={cookie[0]['value']}"}
    csrf = js("return document.querySelector('meta[name=csrf-token]').content")
    assert len(csrf) > 30
    path = "/api/v1/transactions/sample/1/category"
    status, body = http("POST", path, body={"category": "X"}, headers=session)
    assert status == 403 and b"csrf" in body, (status, body)
    status, body = http(
        "POST", path, body={"category": "X"}, headers=dict(session, **{"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    )
    assert status == 403 and b"csrf" in body, (status, body)
    status, _ = http("GET", "/api/v1/status", headers=session)
    assert status == 200, "the cookie reads"
    status, _ = http("GET", "/api/v1/status", headers={"Cookie": "finopsia_session=forged"})
    assert status == 401

    step("the page's own files: uPlot as pinned, a strict content policy")
    status, served = http("GET", "/assets/uplot.min.js")
    assert status == 200 and served == open(CFG["uplot"], "rb").read()
    req = urllib.request.Request(BASE + "/", headers={"Cookie": session["Cookie"]})
    with urllib.request.urlopen(req, timeout=30) as r:
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
        assert r.headers["Referrer-Policy"] == "no-referrer"

    # ------------------------------------------------------------ cash flow
    step("cash flow charts equal the API's windows")
    wait("the cash flow chart", lambda: js("return window.FinOpsia.charts.cashflow && window.FinOpsia.charts.cashflow.canvas"))

    def expected_cashflow(chart):
        rows = all_pages("/api/v1/windows/cashflow_daily", {"from": chart["from"], "to": chart["to"]})
        cur = chart["currency"]
        b = chart["bucket"]
        start, end = day(chart["from"]), day(chart["to"])
        buckets = []
        x = bucket_of(start, b)
        while x < end:
            buckets.append(x)
            x = next_bucket(x, b)
        inflow, outflow = defaultdict(int), defaultdict(int)
        for r in rows:
            if r["currency"] != cur:
                continue
            k = bucket_of(day(r["window_start"]), b)
            inflow[k] += r["inflow_minor"]
            outflow[k] += r["outflow_minor"]
        return {
            "buckets": [x.isoformat() for x in buckets],
            "inflow_minor": [str(inflow[x]) for x in buckets],
            "outflow_minor": [str(outflow[x]) for x in buckets],
            "net_minor": [str(inflow[x] - outflow[x]) for x in buckets],
        }, rows

    def check_cashflow(bucket):
        Select(driver.find_element(By.ID, "cf-bucket")).select_by_value(bucket)
        chart = wait(
            f"{bucket} buckets",
            lambda: js("var c = window.FinOpsia.charts.cashflow; return c && c.bucket === arguments[0] ? c : null", bucket),
        )
        want, rows = expected_cashflow(chart)
        for k in want:
            assert chart[k] == want[k], f"{bucket}: {k}: page {chart[k][:8]}… API {want[k][:8]}…"
        assert any(v != "0" for v in chart["inflow_minor"]), "the range has data"
        plotted = chart["plotted"]
        assert len(plotted) == 4 and len(plotted[0]) == len(want["buckets"])
        for i in range(len(want["buckets"])):
            assert abs(plotted[1][i] - int(want["inflow_minor"][i]) / 100) < 1e-6
            assert abs(plotted[2][i] + int(want["outflow_minor"][i]) / 100) < 1e-6
            assert abs(plotted[3][i] - int(want["net_minor"][i]) / 100) < 1e-6
        # The cards show the exact totals.
        total_in = sum(int(v) for v in want["inflow_minor"])
        text = driver.find_element(By.ID, "cf-cards").text
        assert f"{total_in // 100:,}.{total_in % 100:02d}" in text, (total_in, text)
        return chart, rows

    for bucket in ("day", "month", "week"):
        chart, rows = check_cashflow(bucket)
    tables = js("return window.FinOpsia.tables.cashflow")
    by_cat = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["currency"] == chart["currency"]:
            by_cat[r["category"]][0] += r["inflow_minor"]
            by_cat[r["category"]][1] += r["outflow_minor"]
    got = {t["key"]: [int(t["inflow"]), int(t["outflow"])] for t in tables["by_category"]}
    assert got == dict(by_cat), (got, dict(by_cat))
    prev = all_pages("/api/v1/windows/cashflow_daily", {"from": tables["prev_from"], "to": chart["from"]})
    prev_out = defaultdict(int)
    for r in prev:
        if r["currency"] == chart["currency"]:
            prev_out[r["category"]] += r["outflow_minor"]
    for m in tables["movers_category"]:
        assert int(m["before"]) == prev_out.get(m["key"], 0), m
        assert int(m["now"]) == by_cat.get(m["key"], [0, 0])[1], m
        assert int(m["change"]) == int(m["now"]) - int(m["before"])
    changes = sorted((abs(by_cat.get(k, [0, 0])[1] - prev_out.get(k, 0)) for k in set(by_cat) | set(prev_out)), reverse=True)
    assert [abs(int(m["change"])) for m in tables["movers_category"]] == changes[:5]
    shot("cashflow")
    console()

    # ------------------------------------------------------------ forecast
    step("forecast charts equal the API's points and windows")
    show("forecast")
    runs = {r["series_id"]: r for r in api("/api/v1/forecasts")}
    for sid in ["org_balance/NGN", "org_net_flow/NGN", "account_balance/NGN/3", "category_outflow/NGN/Rent"]:
        assert sid in runs, sorted(runs)
        Select(driver.find_element(By.ID, "fc-series")).select_by_value(sid)
        fc = wait(sid, lambda: js("var c = window.FinOpsia.charts.forecast; return c && c.series_id === arguments[0] && c.canvas ? c : null", sid))
        points = api(f"/api/v1/forecasts/{urllib.parse.quote(sid, safe='')}/points")
        assert fc["ds"] == [p["ds"] for p in points]
        assert fc["yhat"] == [p["yhat"] for p in points]
        assert fc["yhat_lower"] == [p["yhat_lower"] for p in points]
        assert fc["yhat_upper"] == [p["yhat_upper"] for p in points]
        run = runs[sid]
        end = day(run["train_end"]) + dt.timedelta(days=1)
        start = end - dt.timedelta(days=90)
        params = {"from": start.isoformat(), "to": end.isoformat(), "currency": run["currency"]}
        if run["kind"].startswith("account_"):
            params["account_id"] = run["subject"]
        if run["kind"] == "category_outflow":
            params["category"] = run["subject"]
        flows = defaultdict(int)
        for r in all_pages("/api/v1/windows/cashflow_daily", params):
            v = r["outflow_minor"] if run["kind"] == "category_outflow" else r["inflow_minor"] - r["outflow_minor"]
            flows[day(r["window_start"])] += v
        days = [start + dt.timedelta(days=i) for i in range(90)]
        assert fc["actual_days"] == [d.isoformat() for d in days]
        if run["kind"].endswith("_balance"):
            want = [run["last_balance"] - sum(v for d2, v in flows.items() if d2 > d) / 100 for d in days]
        else:
            want = [flows[d] / 100 for d in days]
        assert all(abs(a - b) < 1e-6 * max(1, abs(b)) for a, b in zip(fc["actual"], want)), sid
        assert len(fc["plotted"]) == 5 and len(fc["plotted"][0]) == 90 + len(points)
        text = driver.find_element(By.ID, "fc-cards").text
        if sid == "account_balance/NGN/3":
            assert run["below_threshold_date"] and run["below_threshold_date"] in text, text
            assert "Anchored" in text
        if run["kind"].endswith("net_flow") and run["model"] != "prophet" and run["backtest_skill"] is not None:
            assert "No better than the average" in text, text
        shot(f"forecast-{sid.replace('/', '-')}")
    console()

    # ------------------------------------------------------------ recurring
    step("recurring")
    show("recurring")
    wait("recurring loaded", lambda: loaded("recurring") > 0)
    assert js("return window.FinOpsia.tables.recurring") == api("/api/v1/recurring")
    shot("recurring")

    # ------------------------------------------------------------ transactions
    step("transactions: the table equals the API; a correction in place")
    show("transactions")
    wait("transactions loaded", lambda: loaded("transactions") > 0)
    frm = driver.find_element(By.ID, "tx-from").get_attribute("value")
    assert frm, "a default range"
    page = api("/api/v1/transactions?" + urllib.parse.urlencode({"from": frm, "limit": 50}))["items"]
    shown = js("return window.FinOpsia.tables.transactions")
    assert [(t["source"], t["transaction_id"], t["amount_minor"]) for t in shown] == [
        (t["source"], t["transaction_id"], str(t["amount_minor"])) for t in page
    ]
    first = page[0]
    new_category = "Dashboard test category"
    form = driver.find_element(By.CSS_SELECTOR, f'form.cat-edit[data-key="{first["source"]}/{first["transaction_id"]}"]')
    box = form.find_element(By.TAG_NAME, "input")
    box.clear()
    box.send_keys(new_category)
    form.find_element(By.TAG_NAME, "button").click()
    wait("the correction saved", lambda: "next retrain will learn it" in driver.find_element(By.ID, "tx-msg").text)
    out = subprocess.run(
        [
            CFG["finopsia"],
            "query",
            "--data-dir",
            CFG["data_dir"],
            "--format",
            "json",
            f"SELECT category FROM corrections WHERE source = '{first['source']}' AND transaction_id = '{first['transaction_id']}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert new_category in out, out
    shot("transactions")
    console()

    # ------------------------------------------------------------ live: quarantine, re-submit
    step("a bad record ingested now appears in quarantine without a reload, and is fixed in the page")
    show("quarantine")
    wait("quarantine loaded", lambda: loaded("quarantine") > 0)
    js("window.__noReload = 1")
    last_day = max(r["train_end"] for r in runs.values())
    bad = {
        "transaction_id": "dash-bad-1",
        "account_id": "1",
        "amount": "12x",
        "currency": "NGN",
        "direction": "inflow",
        "description": "Dashboard live test",
        "transaction_date": last_day,
    }
    status, body = http(
        "POST", "/api/v1/ingest", CFG["ingest_token"], (json.dumps(bad) + "\n").encode(), {"Content-Type": "application/x-ndjson"}
    )
    assert status == 200 and json.loads(body)["quarantined"] == 1, body
    wait(
        "the quarantined row on the page",
        lambda: any(r["transaction_id"] == "dash-bad-1" for r in js("return window.FinOpsia.tables.quarantine")),
    )
    assert js("return window.__noReload") == 1, "the page was reloaded"
    row = [r for r in js("return window.FinOpsia.tables.quarantine") if r["transaction_id"] == "dash-bad-1"][0]
    driver.find_element(By.CSS_SELECTOR, f'button[data-id="{row["id"]}"]').click()
    wait("the raw text", lambda: "12x" in driver.find_element(By.ID, "q-raw").text)
    shot("quarantine")
    fix = driver.find_element(By.ID, "q-fix")
    fixed = dict(bad, amount="1234.56")
    fix.clear()
    fix.send_keys(json.dumps(fixed))
    driver.find_element(By.ID, "q-resubmit").click()
    wait("resolved", lambda: "resolved" in driver.find_element(By.ID, "q-msg").text)
    t = api("/api/v1/transactions/http/dash-bad-1")
    assert t["amount_minor"] == 123456, t
    assert not [r for r in api("/api/v1/quarantine")["items"] if r["id"] == row["id"]]
    console()

    step("a good record ingested now shows in the cash flow without a reload")
    show("cashflow")
    wait("cash flow", lambda: js("return window.FinOpsia.charts.cashflow"))
    # A fixed range (the default one follows the newest data).
    range_from = (day(last_day) - dt.timedelta(days=27)).isoformat()
    js(
        "for (const [id, v] of [['cf-from', arguments[0]], ['cf-to', arguments[1]]]) {"
        " const el = document.getElementById(id); el.value = v; el.dispatchEvent(new Event('change')); }",
        range_from,
        last_day,
    )
    chart = wait(
        "the fixed range",
        lambda: js("var c = window.FinOpsia.charts.cashflow; return c.from === arguments[0] && c.bucket === 'week' ? c : null", range_from),
    )
    before = sum(int(v) for v in chart["inflow_minor"])
    updates = js("return window.FinOpsia.updates")
    good = dict(bad, transaction_id="dash-live-1", amount="5000.00", description="Dashboard live inflow")
    # A daily window is stored once the watermark passes its end (plus the
    # allowed lateness, a day): a record three days later moves the
    # watermark past the last day, whose window then holds this inflow and
    # the one re-submitted above (1234.56).
    later = dict(
        good,
        transaction_id="dash-live-2",
        direction="outflow",
        amount="1.00",
        transaction_date=(day(last_day) + dt.timedelta(days=3)).isoformat(),
    )
    status, body = http(
        "POST",
        "/api/v1/ingest",
        CFG["ingest_token"],
        (json.dumps(good) + "\n" + json.dumps(later) + "\n").encode(),
        {"Content-Type": "application/x-ndjson"},
    )
    assert status == 200 and json.loads(body)["accepted"] == 2, body
    after = wait(
        "the new inflow in the chart",
        lambda: (lambda c: sum(int(v) for v in c["inflow_minor"]))(js("return window.FinOpsia.charts.cashflow")) == before + 500000 + 123456,
        timeout=20,
    )
    assert after and js("return window.FinOpsia.updates") > updates
    assert js("return window.__noReload") == 1, "the page was reloaded"
    check_cashflow("week")
    console()

    # ------------------------------------------------------------ health
    step("pipeline health")
    show("health")
    health = wait("health", lambda: js("return window.FinOpsia.tables.health"))
    models = api("/api/v1/models")
    assert health["model"] == models["active"]
    http_src = wait(
        "the http source counted",
        lambda: [s for s in js("return window.FinOpsia.tables.health").get("sources", []) if s["name"] == "http" and s["accepted"] >= 2],
    )
    assert http_src
    assert models["active"] in driver.find_element(By.ID, "h-cards").text
    shot("health")
    console()

    step("logout ends the session")
    driver.find_element(By.ID, "logout").click()
    wait("the login form", lambda: driver.find_element(By.ID, "login").is_displayed())
    status, _ = http("GET", "/api/v1/status", headers=session)
    assert status == 401, "the old cookie still works"
    console()
    print("dashboard: all checks passed", flush=True)
finally:
    driver.quit()
