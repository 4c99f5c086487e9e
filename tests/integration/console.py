#!/usr/bin/env python3
"""The operator console in a real browser (TAP): Debian's chromium,
headless, driven by selenium through chromium-driver, against a real
`erd serve`.  It loads the page, resolves a spoken-style n-best list and
checks the result shown, types the admin token, rebuilds a catalog from the
catalogs view and waits until the page shows the rebuild done.  Screenshots
of the playground and the catalogs view go to ERD_ARTEFACTS (default:
the working directory).  Exit 77 (skip) only when chromium or its driver
is not installed.

usage: console.py   (ERD_EXE, ERD_TEST_SRCDIR, ERD_ARTEFACTS)
"""
import os, re, shutil, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erdtest  # noqa: E402

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
if not CHROMIUM or not DRIVER:
    print("1..0 # SKIP chromium or chromium-driver not installed (deploy/packages.txt lists them)")
    sys.exit(77)
# Debian's python3-selenium, also when the python3 on PATH is another build
if "/usr/lib/python3/dist-packages" not in sys.path:
    sys.path.append("/usr/lib/python3/dist-packages")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    print("1..0 # SKIP python3-selenium not installed (deploy/packages.txt lists it)")
    sys.exit(77)

ARTEFACTS = os.environ.get("ERD_ARTEFACTS", os.getcwd())
tap = erdtest.Tap()


def browser(profile):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1200,1400", f"--user-data-dir={profile}",
              # nothing but the server under test
              "--no-first-run", "--disable-background-networking", "--disable-sync"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)


def shot(drv, name):
    os.makedirs(ARTEFACTS, exist_ok=True)
    path = os.path.join(ARTEFACTS, name)
    drv.save_screenshot(path)
    print(f"# screenshot {path}")


def main():
    with erdtest.Scratch() as s:
        srv = erdtest.Server(s.db)
        drv = None
        try:
            drv = browser(os.path.join(s.dir, "chromium"))
            run(drv, srv)
            # the one expected failure: the resolve against a catalog that does not exist
            logs = [l for l in drv.get_log("browser")
                    if l.get("level") == "SEVERE" and "/v1/resolve" not in l.get("message", "")]
            tap.ok(not logs, f"no other errors in the browser console ({logs[:3]})")
        finally:
            if drv:
                drv.quit()
            tap.ok(srv.stop() == 0, "erd serve exits 0 on SIGTERM")
    tap.done()


def mini_cells(drv):
    """The texts of the catalogs view's row for mini, read in one go: the
    table is redrawn while a rebuild is polled."""
    return drv.execute_script(
        "return [...document.querySelectorAll('#catalogs tr[data-catalog=\"mini\"] td')]"
        ".map(td => td.innerText)")


def assets(srv):
    """The page's files come from the binary, under a policy that keeps the
    page from loading anything from elsewhere."""
    import urllib.request
    with urllib.request.urlopen(srv.url + "/console/console.js", timeout=30) as r:
        csp = r.headers.get("Content-Security-Policy", "")
        tap.ok(r.status == 200 and r.headers["Content-Type"].startswith("text/javascript")
               and "default-src 'self'" in csp, f"console.js served with a CSP ({csp})")
    status, body = srv.call("GET", "/console/nosuch.js")
    tap.ok(status == 404 and body["error"]["code"] == "not_found", f"an unknown console file is 404 ({body})")


def run(drv, srv):
    assets(srv)
    wait = WebDriverWait(drv, 30)
    drv.get(srv.url + "/")
    tap.ok(drv.title == "erd console", "GET / is the console page")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#catalog option"))
    options = [o.text for o in drv.find_elements(By.CSS_SELECTOR, "#catalog option")]
    tap.ok(options == ["mini"], f"catalog picker lists the served catalogs ({options})")

    # the playground: a misheard n-best list with recogniser scores
    box = drv.find_element(By.ID, "hypotheses")
    box.clear()
    box.send_keys("the hunger gains | -1200\nthe hunger games | -1500\nhunger gang | -2100")
    k = drv.find_element(By.ID, "k")
    k.clear()
    k.send_keys("3")
    drv.find_element(By.ID, "resolve").click()
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#results tr.result")))
    rows = drv.find_elements(By.CSS_SELECTOR, "#results tr.result")
    first = rows[0].find_element(By.CSS_SELECTOR, "td.name").text
    tap.ok(first == "The Hunger Games", f"top result shown is The Hunger Games ({first!r})")
    tap.ok(len(rows) == 3, f"k=3 shows 3 results ({len(rows)})")
    prob = rows[0].find_elements(By.TAG_NAME, "td")[3].text
    tap.ok(prob.endswith("%"), f"each result shows its probability ({prob!r})")
    tap.ok(not drv.find_element(By.ID, "no-match").is_displayed(), "no 'no match' for a real title")
    meta = drv.find_element(By.ID, "results-meta").text
    tap.ok(re.search(r"; \d+ of \d+ candidates aligned$", meta) is not None,
           f"the summary says how many candidates the rerank aligned ({meta!r})")
    shot(drv, "console-playground.png")

    # the explain picture, drawn from the documented shape of a result's
    # explain block (per hypothesis, the phone alignment against the name)
    drv.execute_script("""drawExplain([{name: "The Hunger Games", explain: {hypotheses: [
        {text: "the hunger gains", alignment: [
          {op: "match", hyp: "h", ref: "h", cost: 0}, {op: "match", hyp: "ʌ", ref: "ʌ", cost: 0},
          {op: "sub", hyp: "eɪ", ref: "eɪ", cost: 0.4}, {op: "sub", hyp: "n", ref: "m", cost: 1.2},
          {op: "ins", hyp: "t", ref: "", cost: 2.5}, {op: "del", hyp: "", ref: "z", cost: 3.8}]}]}}]);""")
    cells = drv.find_elements(By.CSS_SELECTOR, "#explain .cell")
    ops = [c.get_attribute("class").split()[-1] for c in cells]
    tap.ok(ops == ["op-match", "op-match", "op-sub", "op-sub", "op-ins", "op-del"],
           f"explain alignment drawn cell by cell ({ops})")
    colours = [c.value_of_css_property("background-color") for c in cells]
    tap.ok(colours[0] == colours[1] and colours[2] != colours[3] != colours[5],
           f"matches share one colour, costs shade the rest ({colours})")
    shot(drv, "console-explain.png")

    # an unbuilt catalog's error is shown, not swallowed
    drv.execute_script("const o=document.createElement('option');o.value=o.textContent='nosuch';"
                       "document.getElementById('catalog').append(o);"
                       "document.getElementById('catalog').value='nosuch';")
    drv.find_element(By.ID, "resolve").click()
    err = wait.until(EC.visibility_of_element_located((By.ID, "resolve-error")))
    tap.ok("unknown_catalog" in err.text, f"an API error is shown ({err.text!r})")

    # catalogs view: needs the admin token, typed into the page
    tap.ok(not drv.find_elements(By.CSS_SELECTOR, "#catalogs tbody tr"),
           "no catalogs listed before the token is given")
    # a write since the build: served from the delta until a rebuild
    status, _ = srv.call("POST", "/v1/catalogs/mini/entities",
                         {"id": "test:1", "name": "The Velvet Submarine of Toronto"}, token=erdtest.TOKEN)
    tap.ok(status in (200, 201), f"an entity upserted through the admin API ({status})")
    tok = drv.find_element(By.ID, "token")
    tok.send_keys(erdtest.TOKEN)
    drv.execute_script("document.getElementById('token').dispatchEvent(new Event('change'))")
    wait.until(lambda d: len(mini_cells(d)) > 4)
    cells = mini_cells(drv)
    tap.ok(cells[1] == "47" and cells[4] == "1",
           f"catalogs view shows entities 47 and a pending delta of 1 ({cells})")
    index_gen = int(cells[3])
    drv.find_element(By.CSS_SELECTOR, '#catalogs tr[data-catalog="mini"] button.rebuild-btn').click()
    # done: the rebuild column says so and the index caught up with the delta
    wait = WebDriverWait(drv, 120)
    wait.until(lambda d: mini_cells(d)[6:7] and mini_cells(d)[6].startswith("done"))
    cells = mini_cells(drv)
    tap.ok(cells[6].startswith("done"), f"rebuild shown as finished ({cells[6]!r})")
    status, body = srv.call("GET", "/v1/catalogs/mini/rebuild", token=erdtest.TOKEN)
    tap.ok(status == 200 and body["rebuild"]["state"] == "done",
           f"the server agrees the rebuild is done ({body})")
    tap.ok(int(cells[3]) > index_gen and cells[4] == "0" and cells[2] == cells[3],
           f"index generation {index_gen} -> {cells[3]}, pending delta 0, served = index ({cells})")
    # the traffic chart fills from /metrics every 2 s; some resolves to show
    for i in range(40):
        srv.call("POST", "/v1/resolve", {"catalog": "mini", "text": "velvet submarine toronto"})
        time.sleep(0.1)
    wait.until(lambda d: d.find_element(By.ID, "p99").text not in ("", "–"))
    rate, p99 = drv.find_element(By.ID, "rate").text, drv.find_element(By.ID, "p99").text
    tap.ok(float(rate) > 0 and float(p99.lstrip("≤ ")) > 0,
           f"request rate and resolve p99 from /metrics ({rate}/s, {p99} ms)")
    shot(drv, "console-catalogs.png")


if __name__ == "__main__":
    main()
