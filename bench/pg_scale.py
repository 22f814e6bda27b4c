#!/usr/bin/env python3
"""Scale benchmark for `rollwatch serve` on a shared PostgreSQL (issue 13).

N agents (default 3) share one database; W watches x 5 rules at 15s are created over
the API round-robin through the agents (so each owns about W/N), against the loopback
Prometheus stand-in of agent_scale.py. After a warm-up, over a window:

- per agent: CPU (% of one core), RSS and peak RSS, scheduling lag p50/p99 (from its
  own histogram), leases held;
- on the database: transactions/s (pg_stat_database.xact_commit) and statements/s
  (pg_stat_statements calls), both for the rollwatch database only.

Then agent 0 is killed with kill -9 and the time until every one of its watches has
another holder (the leases table) is measured, with the survivors' adoption counters.

Usage: pg_scale.py --bin BIN --url URL --psql PSQL --port PORT [--agents 3]
                   [--watches 10000] [--services 1000] [--window 60] [--warmup 30]
                   [--lease-ttl 15] [--batch N]
Prints one JSON object. bench/pg_scale.sh starts the throwaway cluster.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_scale as base  # noqa: E402


def sql(a, q):
    out = subprocess.run([a.psql, "-h", "127.0.0.1", "-p", str(a.port), "-U", "postgres",
                          "-d", "rollwatch", "-XAtq", "-c", q],
                         check=True, capture_output=True, text=True).stdout.strip()
    return out


def db_counters(a):
    sql(a, "SELECT pg_stat_force_next_flush()")
    xacts = int(sql(a, "SELECT xact_commit FROM pg_stat_database WHERE datname = 'rollwatch'"))
    calls = int(sql(a, "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements s "
                       "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'rollwatch'"))
    return xacts, calls


def statement_calls(a):
    """Calls so far of each statement of the rollwatch database (`pg_stat_statements`),
    by query id: (calls, the query's first words)."""
    out = sql(a, "SELECT s.queryid, s.calls, regexp_replace(left(s.query, 70), '\\s+', ' ', 'g') "
                 "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                 "WHERE d.datname = 'rollwatch'")
    calls = {}
    for line in out.splitlines():
        qid, n, text = line.split("|", 2)
        calls[qid] = (int(n), text)
    return calls


def top_statements(before, after, elapsed, k=6):
    """The k statements run most often in the window, per second: what the database's
    statements per second are made of."""
    rates = []
    for qid, (n, text) in after.items():
        d = n - before.get(qid, (0, ""))[0]
        if d > 0:
            rates.append((round(d / elapsed, 2), text))
    rates.sort(reverse=True)
    return rates[:k]


def renewal_durations(v0, v1):
    """The window's renewal rounds: how many, their mean, and the bucket bound the
    slowest stayed under (`rollwatch_agent_lease_renewal_duration_seconds`)."""
    name = "rollwatch_agent_lease_renewal_duration_seconds"
    n = v1.get(name + "_count", 0) - v0.get(name + "_count", 0)
    total = v1.get(name + "_sum", 0) - v0.get(name + "_sum", 0)
    les = sorted(
        (float(k.split('"')[1]), k) for k in v1
        if k.startswith(name + '_bucket{le="') and "+Inf" not in k
    )
    slowest = next((le for le, k in les if v1[k] - v0.get(k, 0) >= n), None)
    return {
        "renewals": n,
        "renewal_mean_ms": None if n <= 0 else round(1000 * total / n, 1),
        "renewal_slowest_under_s": slowest if n > 0 else None,
    }


def wait_ready(addr, timeout=60):
    deadline = time.time() + timeout
    while True:
        try:
            c = http.client.HTTPConnection(addr, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.time() > deadline:
            raise SystemExit(f"agent {addr} not ready")
        time.sleep(0.1)


def post_round_robin(addrs, n, services, batch=0):
    """One POST per watch, or (batch > 0) POSTs of JSON arrays of `batch` watches (one
    transaction each), each to the next agent in turn."""
    conns = [http.client.HTTPConnection(a, timeout=600) for a in addrs]
    item = lambda i: {"rules": "svc", "vars": {"service": f"svc-{i % services}"}, "id": f"w{i}"}
    step = batch if batch > 0 else 1
    for c, i in enumerate(range(0, n, step)):
        k = c % len(addrs)
        if batch > 0:
            body = json.dumps([item(j) for j in range(i, min(i + batch, n))])
        else:
            body = json.dumps(item(i))
        for attempt in range(5):
            try:
                conns[k].request("POST", "/api/v1/watches", body, {"Content-Type": "application/json"})
                r = conns[k].getresponse()
                data = r.read()
                if r.status not in (200, 201):
                    raise SystemExit(f"POST {i}: HTTP {r.status}: {data[:300]!r}")
                break
            except (http.client.HTTPException, ConnectionError):
                conns[k].close()
                conns[k] = http.client.HTTPConnection(addrs[k], timeout=600)
    for c in conns:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--psql", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--watches", type=int, default=10000)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--lease-ttl", type=int, default=15)
    ap.add_argument("--batch", type=int, default=0,
                    help="create watches in POSTs of this many (0: one per POST)")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="pg_scale.")
    os.makedirs(f"{tmp}/rules")
    with open(f"{tmp}/rules/svc.yaml", "w") as f:
        f.write(base.RULES)
    # (Private to its owner: the agent refuses a secret file others can read.)
    fd = os.open(f"{tmp}/store-url", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(a.url)
    prom_port = base.free_port()
    counter = f"{tmp}/requests"
    standin = subprocess.Popen([sys.executable, base.__file__, "--bin", a.bin, "--standin",
                                str(prom_port), counter])
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", prom_port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                raise SystemExit("the stand-in did not start")
            time.sleep(0.05)
    addrs = [f"127.0.0.1:{base.free_port()}" for _ in range(a.agents)]
    agents = []
    log = open(f"{tmp}/agents.log", "w")
    for addr in addrs:
        args = [a.bin, "serve", "--rules-dir", f"{tmp}/rules", "--listen", addr,
                "--store-url-file", f"{tmp}/store-url", "--lease-ttl", f"{a.lease_ttl}s",
                "--prometheus", f"http://127.0.0.1:{prom_port}", "--log-format", "json", "--quiet"]
        agents.append(subprocess.Popen(args, stderr=log, stdout=subprocess.DEVNULL))
    try:
        for addr in addrs:
            wait_ready(addr)
        t0 = time.time()
        post_round_robin(addrs, a.watches, a.services, a.batch)
        create_s = time.time() - t0
        time.sleep(a.warmup)
        scr0 = [base.scrape(addr) for addr in addrs]
        cpu0 = [base.cpu_seconds(p.pid) for p in agents]
        x0, s0 = db_counters(a)
        q0 = statement_calls(a)
        w0 = time.time()
        time.sleep(a.window)
        scr1 = [base.scrape(addr) for addr in addrs]
        cpu1 = [base.cpu_seconds(p.pid) for p in agents]
        x1, s1 = db_counters(a)
        q1 = statement_calls(a)
        elapsed = time.time() - w0
        per_agent = []
        for i, p in enumerate(agents):
            (b0, v0), (b1, v1) = scr0[i], scr1[i]
            p50, p99 = base.quantile(0.5, b0, b1), base.quantile(0.99, b0, b1)
            evals = v1.get("rollwatch_agent_evaluations_total", 0) - v0.get("rollwatch_agent_evaluations_total", 0)
            per_agent.append({
                "leases_held": v1.get("rollwatch_agent_leases_held", 0),
                "cpu_pct_of_one_core": round(100 * (cpu1[i] - cpu0[i]) / elapsed, 1),
                "rss_mb": round(base.status_kb(p.pid, "VmRSS") / 1024, 1),
                "peak_rss_mb": round(base.status_kb(p.pid, "VmHWM") / 1024, 1),
                "polls_judged_per_s": round(evals / elapsed, 1),
                "schedule_lag_p50_ms": None if p50 is None else round(p50 * 1000, 2),
                "schedule_lag_p99_ms": None if p99 is None else round(p99 * 1000, 2),
                "store_errors": v1.get("rollwatch_agent_store_errors_total", 0),
                "renewals_failed": v1.get('rollwatch_agent_lease_renewals_total{result="failed"}', 0),
                **renewal_durations(v0, v1),
            })
        out = {
            "agents": a.agents,
            "watches": a.watches,
            "rules_per_watch": 5,
            "interval_s": 15,
            "lease_ttl_s": a.lease_ttl,
            "create_s": round(create_s, 1),
            "create_batch": a.batch,
            "window_s": round(elapsed, 1),
            "expected_polls_per_s": round(a.watches * 5 / 15, 1),
            "db_transactions_per_s": round((x1 - x0) / elapsed, 1),
            "db_statements_per_s": round((s1 - s0) / elapsed, 1),
            "db_top_statements_per_s": top_statements(q0, q1, elapsed),
            "per_agent": per_agent,
        }
        # Owner death: kill -9 agent 0; time until none of its leases is left.
        victim = agents[0]
        held = sql(a, f"SELECT count(*) FROM leases WHERE split_part(holder, ':', 2) = '{victim.pid}'")
        adoptions0 = [base.scrape(addr)[1].get("rollwatch_agent_lease_adoptions_total", 0) for addr in addrs[1:]]
        victim.kill()
        victim.wait()
        killed = time.time()
        first = None
        while True:
            left = int(sql(a, f"SELECT count(*) FROM leases WHERE split_part(holder, ':', 2) = '{victim.pid}'"))
            if first is None and left < int(held):
                first = time.time() - killed
            if left == 0 or time.time() - killed > 180:
                break
            time.sleep(0.2)
        all_adopted = time.time() - killed
        # ...and until the survivors have resumed every one of them.
        while True:
            adoptions1 = [base.scrape(addr)[1].get("rollwatch_agent_lease_adoptions_total", 0) for addr in addrs[1:]]
            if sum(adoptions1) - sum(adoptions0) >= int(held) or time.time() - killed > 180:
                break
            time.sleep(0.2)
        out["owner_death"] = {
            "watches_of_the_dead_agent": int(held),
            "first_adoption_s": None if first is None else round(first, 1),
            "all_adopted_s": round(all_adopted, 1),
            "all_resumed_s": round(time.time() - killed, 1),
            "left_unadopted": left,
            "adopted_by_each_survivor": [b - c for b, c in zip(adoptions1, adoptions0)],
        }
        print(json.dumps(out))
    finally:
        for p in agents:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in agents:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        standin.kill()
        standin.wait()


if __name__ == "__main__":
    main()
