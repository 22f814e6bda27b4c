#!/usr/bin/env python3
"""Scale benchmark for `rollwatch serve` (issue 5): N watches x 5 rules at 15s.

Starts a loopback stand-in for Prometheus's query API (asyncio, answers every instant
query at once with one sample and counts requests), starts the agent against it, hands
it N watches over the HTTP API (services spread so each distinct query is shared by
N/services watches), lets the schedule settle, then measures over a window:

- agent CPU (utime+stime from /proc/PID/stat, as % of one core) and peak RSS (VmHWM);
- scheduling lag p50/p99 (tick -> query issued), interpolated from the agent's own
  `rollwatch_agent_schedule_lag_seconds` histogram over the window;
- requests/s that reached the stand-in, and polls/s the agent judged.

Usage: agent_scale.py --bin target/release/rollwatch [--watches 5000] [--services 500]
                      [--window 60] [--warmup 30] [--no-sharing] [--batch N]
                      [--create-only]
Prints one JSON object.
"""

import argparse
import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import shutil
import tempfile
import threading
import time

RULES = """vars:
  service:
watch:
  duration: 2h
  interval: 15s
rollback:
  command: ["true"]
rules:
  - name: error-ratio
    query: sum(rate(http_requests_total{service="${service}",code=~"5.."}[5m])) / sum(rate(http_requests_total{service="${service}"}[5m]))
    above: 1000
    for: 2m
  - name: latency-p99
    query: histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="${service}"}[5m])))
    above: 1000
    for: 2m
  - name: saturation
    query: max(container_cpu_usage{service="${service}"})
    above: 1000
    for: 2m
  - name: restarts
    query: sum(increase(kube_pod_container_status_restarts_total{service="${service}"}[10m]))
    above: 1000
    for: 2m
  - name: throughput
    query: sum(rate(http_requests_total{service="${service}"}[5m]))
    below: -1
    for: 2m
    no_data: ok
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---------------------------------------------------------------- stand-in server

def run_standin(port, counter_file):
    """A minimal HTTP/1.1 keep-alive server for /api/v1/query (and query_range)."""
    count = [0]

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body_in = await reader.readexactly(length) if length else b""
                count[0] += 1
                now = time.time()
                if b"query=time%28%29" in body_in or b"query=time%28%29" in head.split(b"\r\n", 1)[0]:
                    # The agent's clock check (`time()`): a scalar, this machine's clock.
                    body = ('{"status":"success","data":{"resultType":"scalar","result":'
                            '[%.3f,"%.3f"]}}' % (now, now)).encode()
                elif b"query_range" in head.split(b"\r\n", 1)[0]:
                    body = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'
                else:
                    body = ('{"status":"success","data":{"resultType":"vector","result":'
                            '[{"metric":{},"value":[%.3f,"0.01"]}]}}' % now).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def report():
        while True:
            await asyncio.sleep(0.5)
            with open(counter_file + ".tmp", "w") as f:
                f.write(str(count[0]))
            os.replace(counter_file + ".tmp", counter_file)

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        asyncio.ensure_future(report())
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------- measurement

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def scrape(addr):
    c = http.client.HTTPConnection(addr, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    buckets = {}
    values = {}
    for line in text.splitlines():
        m = re.match(r'rollwatch_agent_schedule_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            buckets[float("inf") if m.group(1) == "+Inf" else float(m.group(1))] = float(m.group(2))
            continue
        m = re.match(r'^(rollwatch_agent_[a-z_]+)(\{[^}]*\})? (\S+)$', line)
        if m:
            values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return buckets, values


def quantile(q, before, after):
    """q-quantile of the histogram delta, linear within a bucket (like histogram_quantile)."""
    les = sorted(after)
    counts = [after[le] - before.get(le, 0.0) for le in les]
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in zip(les, counts):
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return les[-2]


def post_watches(addr, n, services, batch=0):
    """One POST per watch, or (batch > 0) POSTs of JSON arrays of `batch` watches,
    each answered after the one commit that stored it (issue 21)."""
    conn = http.client.HTTPConnection(addr, timeout=120)
    item = lambda i: {"rules": "svc", "vars": {"service": f"svc-{i % services}"}, "id": f"w{i}"}
    step = batch if batch > 0 else 1
    for i in range(0, n, step):
        if batch > 0:
            body = json.dumps([item(j) for j in range(i, min(i + batch, n))])
        else:
            body = json.dumps(item(i))
        for attempt in range(5):
            try:
                conn.request("POST", "/api/v1/watches", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status not in (200, 201):
                    raise SystemExit(f"POST {i}: HTTP {r.status}: {data[:300]!r}")
                break
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                conn = http.client.HTTPConnection(addr, timeout=120)
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--watches", type=int, default=5000)
    ap.add_argument("--services", type=int, default=500)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--max-queries", type=int, default=64)
    ap.add_argument("--no-sharing", action="store_true")
    ap.add_argument("--interval", type=int, default=15,
                    help="the rules' interval in seconds (1 fills the page's charts, 240 polls, in 4 minutes)")
    ap.add_argument("--batch", type=int, default=0,
                    help="create the watches in POSTs of this many (a JSON array); 0: one per POST")
    ap.add_argument("--create-only", action="store_true",
                    help="measure the creation only (and the agent's RSS right after it), then stop")
    ap.add_argument("--restart", type=int, default=0,
                    help="then kill -9 the agent, keep it down this many seconds, restart, measure the resume")
    ap.add_argument("--wrap", default="",
                    help="a command the agent is started under, e.g. 'heaptrack -o /tmp/ht' (profiling)")
    ap.add_argument("--perf", default="",
                    help="`perf record -g` the agent into this file over the measured window")
    ap.add_argument("--restart-perf", default="",
                    help="with --restart: `perf record -g` the restarted agent into this file until every rule has polled again")
    ap.add_argument("--keep", action="store_true",
                    help="keep the run's directory (the agent's state file and log) instead of removing it")
    ap.add_argument("--standin", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.standin:
        run_standin(int(a.standin[0]), a.standin[1])
        return

    tmp = tempfile.mkdtemp(prefix="agent_scale.")
    os.makedirs(f"{tmp}/rules")
    with open(f"{tmp}/rules/svc.yaml", "w") as f:
        f.write(RULES.replace("interval: 15s", f"interval: {a.interval}s"))
    prom_port, agent_port = free_port(), free_port()
    counter = f"{tmp}/requests"
    standin = subprocess.Popen([sys.executable, __file__, "--bin", a.bin, "--standin", str(prom_port), counter])
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", prom_port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                raise SystemExit("the stand-in did not start")
            time.sleep(0.05)
    agent_addr = f"127.0.0.1:{agent_port}"
    args = [a.bin, "serve", "--rules-dir", f"{tmp}/rules", "--listen", agent_addr,
            "--state", f"{tmp}/state.db", "--prometheus", f"http://127.0.0.1:{prom_port}",
            "--max-concurrent-queries", str(a.max_queries), "--log-format", "json", "--quiet"]
    if a.no_sharing:
        args.append("--no-query-sharing")
    args = a.wrap.split() + args
    log = open(f"{tmp}/agent.log", "w")
    # (In a session of its own: a wrapper's children are stopped with it.)
    agent = subprocess.Popen(args, stderr=log, stdout=subprocess.DEVNULL, start_new_session=bool(a.wrap))
    finished = False
    try:
        deadline = time.time() + 30
        while True:
            try:
                c = http.client.HTTPConnection(agent_addr, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("agent not ready")
            time.sleep(0.1)
        t0 = time.time()
        post_watches(agent_addr, a.watches, a.services, a.batch)
        create_s = time.time() - t0
        if a.create_only:
            _, v = scrape(agent_addr)
            print(json.dumps({
                "watches": a.watches,
                "batch": a.batch,
                "create_s": round(create_s, 2),
                "watches_running": v.get('rollwatch_agent_watches{state="running"}', 0),
                "agent_rss_mb": round(status_kb(agent.pid, "VmRSS") / 1024, 1),
            }))
            return
        time.sleep(a.warmup)
        b0, v0 = scrape(agent_addr)
        c0, r0, w0 = cpu_seconds(agent.pid), int(open(counter).read() or 0), time.time()
        perf = None
        if a.perf:
            perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(agent.pid),
                                     "-o", a.perf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(a.window)
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        b1, v1 = scrape(agent_addr)
        c1, r1, w1 = cpu_seconds(agent.pid), int(open(counter).read() or 0), time.time()
        elapsed = w1 - w0
        sent = v1.get('rollwatch_agent_queries_sent_total{kind="instant"}', 0) - v0.get('rollwatch_agent_queries_sent_total{kind="instant"}', 0)
        shared = v1.get("rollwatch_agent_queries_shared_total", 0) - v0.get("rollwatch_agent_queries_shared_total", 0)
        evals = v1.get("rollwatch_agent_evaluations_total", 0) - v0.get("rollwatch_agent_evaluations_total", 0)
        p50, p99 = quantile(0.5, b0, b1), quantile(0.99, b0, b1)
        out = {
            "watches": a.watches,
            "rules_per_watch": 5,
            "interval_s": a.interval,
            "distinct_services": a.services,
            "sharing": not a.no_sharing,
            "max_concurrent_queries": a.max_queries,
            "create_s": round(create_s, 1),
            "window_s": round(elapsed, 1),
            "agent_cpu_pct_of_one_core": round(100 * (c1 - c0) / elapsed, 1),
            "agent_rss_mb": round(status_kb(agent.pid, "VmRSS") / 1024, 1),
            "agent_peak_rss_mb": round(status_kb(agent.pid, "VmHWM") / 1024, 1),
            "polls_judged_per_s": round(evals / elapsed, 1),
            "expected_polls_per_s": round(a.watches * 5 / a.interval, 1),
            "requests_per_s": round((r1 - r0) / elapsed, 1),
            "queries_sent_per_s": round(sent / elapsed, 1),
            "queries_shared_per_s": round(shared / elapsed, 1),
            "schedule_lag_p50_ms": None if p50 is None else round(p50 * 1000, 2),
            "schedule_lag_p99_ms": None if p99 is None else round(p99 * 1000, 2),
            "query_errors_in_window": v1.get('rollwatch_agent_query_errors_total{kind="instant"}', 0)
            - v0.get('rollwatch_agent_query_errors_total{kind="instant"}', 0),
        }
        if a.restart:
            # kill -9, stay down, restart: every watch resumes and catches up over the
            # downtime with one range query per rule.
            agent.kill()
            agent.wait()
            time.sleep(a.restart)
            t0 = time.time()
            agent = subprocess.Popen(args, stderr=log, stdout=subprocess.DEVNULL)
            perf = None
            if a.restart_perf:
                perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(agent.pid),
                                         "-o", a.restart_perf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while True:
                try:
                    c = http.client.HTTPConnection(agent_addr, timeout=2)
                    c.request("GET", "/readyz")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.05)
            ready_s = time.time() - t0
            # All 25,000 rules have caught up once each has polled live again.
            expected = a.watches * 5
            while True:
                _, v = scrape(agent_addr)
                if v.get("rollwatch_agent_evaluations_total", 0) >= expected * 2 or time.time() - t0 > 120:
                    break
                time.sleep(0.5)
            b2, v2 = scrape(agent_addr)
            c2 = cpu_seconds(agent.pid)
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait()
            out["restart"] = {
                "down_s": a.restart,
                "ready_s": round(ready_s, 2),
                "all_rules_polled_again_s": round(time.time() - t0, 1),
                "range_queries": v2.get('rollwatch_agent_queries_sent_total{kind="range"}', 0),
                "caught_up_polls": v2.get("rollwatch_agent_evaluations_total", 0),
                "cpu_s_to_resume": round(c2, 1),
                "peak_rss_mb": round(status_kb(agent.pid, "VmHWM") / 1024, 1),
                "schedule_lag_p99_ms": round((quantile(0.99, {}, b2) or 0) * 1000, 2),
            }
        print(json.dumps(out))
        finished = True
    finally:
        if a.wrap:
            os.killpg(agent.pid, signal.SIGTERM)
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            agent.kill()
        standin.kill()
        standin.wait()
        if a.keep or not finished:
            # (A run that did not finish keeps its agent's log for a look.)
            print(f"kept: {tmp}", file=sys.stderr)
        else:
            # A run at 100,000 watches leaves a state file of about 170 MB: a session
            # of runs filled the disk before this was removed.
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
