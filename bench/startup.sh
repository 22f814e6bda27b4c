#!/usr/bin/env bash
# Start-up time of `rollwatch watch` to its first query, with a release build.
#
# A tiny stand-in for Prometheus (Python, loopback) records when the first query
# arrives; the time from exec to that request is the start-up cost (process start,
# rule file load and validation, HTTP client set-up, first poll issued). Also shown:
# exec to the first `poll` log line (the answer decoded and judged).
#
#   bench/startup.sh            # 30 runs
#   RUNS=100 bench/startup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
cargo build --release --quiet --bin rollwatch
exec python3 - "$RUNS" "$PWD/target/release/rollwatch" <<'PY'
import http.server, json, os, signal, statistics, subprocess, sys, tempfile, threading, time

runs, binary = int(sys.argv[1]), sys.argv[2]
first = {}
current = [0]
arrived = threading.Event()
BODY = json.dumps({"status": "success", "data": {"resultType": "vector",
        "result": [{"metric": {}, "value": [time.time(), "0.1"]}]}}).encode()

class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        now = time.time_ns()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        # Only this run's queries count: a stopped run's last request can still be
        # waiting in the listen queue.
        if ("run-%d-end" % current[0]).encode() in body and "t" not in first:
            first["t"] = now
            arrived.set()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        except OSError:
            pass  # rollwatch was stopped while this answer was on its way
    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
url = "http://127.0.0.1:%d" % srv.server_address[1]

d = tempfile.mkdtemp()
rules = os.path.join(d, "rules.yaml")
with open(rules, "w") as f:
    f.write("""vars:
  run: none
watch:
  duration: 1h
  interval: 15s
rollback:
  command: ["true"]
rules:
  - name: error-ratio
    query: |
      sum(rate(http_requests_total{service="checkout",code=~"5..",run="${run}"}[1m]))
        / sum(rate(http_requests_total{service="checkout",run="${run}"}[1m]))
    above: 0.05
    for: 2m
  - name: p99-latency
    query: histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="checkout",run="${run}"}[5m])))
    above: 0.75
    for: 5m
""")

to_query, to_poll = [], []
for i in range(runs + 1):
    first.clear(); arrived.clear()
    current[0] = i
    t0 = time.time_ns()
    p = subprocess.Popen([binary, "watch", "--rules", rules, "--prometheus", url,
                          "--set", "run=run-%d-end" % i, "--log-format=json"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    t_poll = None
    for line in p.stderr:
        if '"event":"poll"' in line:
            t_poll = time.time_ns()
            break
    if not arrived.wait(10):
        sys.exit("no query arrived")
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=10)
    if i == 0:
        continue  # warm-up: page cache
    to_query.append((first["t"] - t0) / 1e6)
    to_poll.append((t_poll - t0) / 1e6)
srv.shutdown()

def row(name, xs):
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    print("%-28s min %6.1f  median %6.1f  p90 %6.1f  max %6.1f  (ms, %d runs)"
          % (name, xs[0], statistics.median(xs), p90, xs[-1], len(xs)))

print("rollwatch watch start-up (release build, 2 rules, loopback stand-in for Prometheus)")
row("exec -> first query received", to_query)
row("exec -> first poll logged", to_poll)
PY
