#!/usr/bin/env python3
"""The agent's page with many watches (issue 15): page weight and time to first render.

Starts bench/agent_scale.py's loopback stand-in for Prometheus, an agent (release
build) against it, hands it N watches of 5 rules at 15s over the API, waits until every
watch has polled, then measures:

- the bytes of `/` (the list), `/live/watches` (its fragment), one `/watches/{id}`,
  `/assets/page.css` and `/assets/page.js`, uncompressed (the agent does not compress);
- the server's time to answer `/` (median of 10 requests);
- the agent's RSS at the end;
- headless Chromium's wall time to load `/` and write a screenshot (a full render),
  minus the same for `/login` (a near-empty page of the same agent: the browser's own
  start-up), median of 5 runs each.

Usage: page_weight.py --bin target/release/rollwatch [--watches 1000]
Prints one JSON object.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_scale  # noqa: E402  (its stand-in, rule file and helpers)


def get(addr, path):
    c = http.client.HTTPConnection(addr, timeout=60)
    t = time.perf_counter()
    c.request("GET", path, headers={"Accept": "text/html"})
    r = c.getresponse()
    body = r.read()
    dt = time.perf_counter() - t
    c.close()
    return r.status, body, dt


def chromium_ms(url, tmp, runs=5):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    times = []
    for i in range(runs):
        prof = tempfile.mkdtemp(dir=tmp)
        t = time.perf_counter()
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={prof}", f"--screenshot={tmp}/shot.png", "--window-size=1200,900", url],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--watches", type=int, default=1000)
    ap.add_argument("--services", type=int, default=100)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="page_weight.")
    os.makedirs(f"{tmp}/rules")
    with open(f"{tmp}/rules/svc.yaml", "w") as f:
        f.write(agent_scale.RULES)
    prom_port, agent_port = agent_scale.free_port(), agent_scale.free_port()
    standin = subprocess.Popen([sys.executable, agent_scale.__file__, "--bin", a.bin, "--standin",
                                str(prom_port), f"{tmp}/requests"])
    addr = f"127.0.0.1:{agent_port}"
    agent = None
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", prom_port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the stand-in did not start")
                time.sleep(0.05)
        agent = subprocess.Popen([a.bin, "serve", "--rules-dir", f"{tmp}/rules", "--listen", addr,
                                  "--state", f"{tmp}/state.db", "--prometheus", f"http://127.0.0.1:{prom_port}",
                                  "--log-format", "json", "--quiet"],
                                 stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/agent.log", "w"))
        deadline = time.time() + 30
        while True:
            try:
                if get(addr, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("agent not ready")
            time.sleep(0.1)
        agent_scale.post_watches(addr, a.watches, a.services)
        time.sleep(20)  # every watch's first polls (interval 15s)
        weights = {}
        for path in ["/", "/live/watches", "/watches/w0", "/assets/page.css", "/assets/page.js"]:
            status, body, _ = get(addr, path)
            assert status == 200, (path, status)
            weights[path] = len(body)
        status, body, _ = get(addr, "/")
        assert body.count(b'class="w-running"') == a.watches, "every watch is listed"
        server = statistics.median(get(addr, "/")[2] * 1000 for _ in range(10))
        full = chromium_ms(f"http://{addr}/", tmp)
        shutil.copy(f"{tmp}/shot.png", f"{tmp}/list.png")
        base = chromium_ms(f"http://{addr}/login", tmp)
        print(json.dumps({
            "watches": a.watches,
            "rules_per_watch": 5,
            "bytes": weights,
            "first_load_bytes": weights["/"] + weights["/assets/page.css"] + weights["/assets/page.js"],
            "server_ms_for_list": round(server, 1),
            "chromium_load_and_screenshot_ms": round(full),
            "chromium_same_for_login_page_ms": round(base),
            "time_to_first_render_ms": round(full - base),
            "screenshot_of_the_list": f"{tmp}/list.png",
            "agent_rss_mb": round(agent_scale.status_kb(agent.pid, "VmRSS") / 1024, 1),
        }))
    finally:
        if agent:
            agent.terminate()
            agent.wait(timeout=30)
        standin.terminate()


if __name__ == "__main__":
    main()
