#!/usr/bin/env bash
# Detection latency: rollwatch vs a Prometheus alerting rule routed through Alertmanager.
#
# One exporter serves N series whose value jumps from 0 to 1 at known instants (spread
# over the scrape interval, so the figures average over scrape/evaluation phases). One
# Prometheus scrapes it and evaluates the alerting rule `rw_signal > 0.5 for: 30s`; a
# real Alertmanager (Debian's prometheus-alertmanager) routes the alerts, one group per
# series, to a local webhook that records when each arrives. Against the same
# Prometheus, one `rollwatch watch` per series judges `above: 0.5, for: 30s` and its
# rollback command records when it runs. The delay from breach to action is reported
# for both, at the defaults a user would have and at tuned settings:
#
#   defaults: scrape_interval 1m, evaluation_interval 1m (Prometheus's defaults),
#             group_wait 30s (Alertmanager's default), rollwatch interval 15s
#   tuned:    scrape 1s, evaluation 1s, group_wait 0s, rollwatch interval 1s
#
#   bench/detection_latency.sh              # both settings (about 6 minutes)
#   bench/detection_latency.sh tuned        # one of them
#   SERIES=8 bench/detection_latency.sh     # more samples per setting
#
# Everything listens on free loopback ports and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SERIES=${SERIES:-4}
FOR=30s

if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  echo "--- installing prometheus-alertmanager (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq prometheus-alertmanager >/dev/null
fi
command -v prometheus >/dev/null 2>&1 || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq prometheus >/dev/null
}
cargo build --release --quiet --bin rollwatch
RW=$ROOT/target/release/rollwatch

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ready() { # url what
  for _ in $(seq 1 300); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$2 did not become ready at $1" >&2
  exit 1
}

now_ms() { date +%s%3N; }

# run NAME SCRAPE EVAL GROUP_WAIT RW_INTERVAL STAGGER_MS WARMUP_MS
run() {
  local name=$1 scrape=$2 eval=$3 group_wait=$4 rw_interval=$5 stagger=$6 warmup=$7
  local dir
  dir=$(mktemp -d "/tmp/rollwatch-latency-$name.XXXXXX")
  local prom_port am_port
  prom_port=$(free_port)
  am_port=$(free_port)

  # Breach instants, one per series, spread by STAGGER_MS after a warm-up.
  local t0 breaches="" k
  t0=$(( $(now_ms) + warmup ))
  for k in $(seq 0 $((SERIES - 1))); do
    breaches="$breaches${breaches:+,}$(( t0 + k * stagger ))"
  done
  echo "$breaches" >"$dir/breaches"

  python3 "$ROOT/bench/detection_helper.py" "$dir/helper.port" "$dir/alerts.json" "$breaches" &
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -s "$dir/helper.port" ] && break; sleep 0.05; done
  local helper_port
  helper_port=$(cat "$dir/helper.port")

  cat >"$dir/alertmanager.yml" <<EOF
route:
  receiver: hook
  group_by: [alertname, series]
  group_wait: $group_wait
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:$helper_port/alert
        send_resolved: false
EOF
  prometheus-alertmanager --config.file="$dir/alertmanager.yml" \
    --storage.path="$dir/am-data" --web.listen-address="127.0.0.1:$am_port" \
    --cluster.listen-address="" --log.level=warn 2>"$dir/alertmanager.log" &
  PIDS+=($!)

  cat >"$dir/rules.yml" <<EOF
groups:
  - name: bench
    rules:
      - alert: SignalHigh
        expr: rw_signal > 0.5
        for: $FOR
EOF
  {
    echo "global:"
    echo "  external_labels: {bench: detection-latency}"
    if [ "$scrape" != default ]; then echo "  scrape_interval: $scrape"; fi
    if [ "$eval" != default ]; then echo "  evaluation_interval: $eval"; fi
    cat <<EOF
rule_files: [$dir/rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:$am_port']
scrape_configs:
  - job_name: exporter
    static_configs:
      - targets: ['127.0.0.1:$helper_port']
EOF
  } >"$dir/prometheus.yml"
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prom-data" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn 2>"$dir/prometheus.log" &
  PIDS+=($!)
  wait_ready "http://127.0.0.1:$am_port/-/ready" Alertmanager
  wait_ready "http://127.0.0.1:$prom_port/-/ready" Prometheus

  for k in $(seq 0 $((SERIES - 1))); do
    cat >"$dir/rw-$k.yaml" <<EOF
watch:
  duration: 15m
  interval: $rw_interval
rollback:
  command: ["sh", "-c", "date +%s%3N > $dir/rw-$k.acted"]
rules:
  - name: signal
    query: rw_signal{series="$k"}
    above: 0.5
    for: $FOR
EOF
    "$RW" watch --rules "$dir/rw-$k.yaml" --prometheus "http://127.0.0.1:$prom_port" \
      --log-format=json 2>"$dir/rw-$k.log" &
    PIDS+=($!)
  done

  echo "--- $name: scrape $scrape, evaluation $eval, group_wait $group_wait, rollwatch interval $rw_interval; for: $FOR; $SERIES series breaching from $(date -d @$((t0 / 1000)) +%T) every ${stagger}ms (files in $dir)" >&2
  # Bounded: every action must have happened within 8 minutes of the last breach.
  local deadline=$(( t0 + (SERIES - 1) * stagger + 480000 ))
  while (( $(now_ms) < deadline )); do
    local done_=1
    for k in $(seq 0 $((SERIES - 1))); do
      [ -s "$dir/rw-$k.acted" ] || done_=0
    done
    if [ "$done_" = 1 ] && python3 -c "import json,sys; sys.exit(0 if len(json.load(open(sys.argv[1]))) >= int(sys.argv[2]) else 1)" "$dir/alerts.json" "$SERIES" 2>/dev/null; then
      break
    fi
    sleep 0.5
  done
  cleanup
  PIDS=()

  python3 - "$dir" "$SERIES" "$name" "$scrape" "$eval" "$group_wait" "$rw_interval" <<'PY'
import json, os, statistics, sys
d, n, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
breaches = [int(b) for b in open(os.path.join(d, "breaches")).read().split(",")]
alerts = json.load(open(os.path.join(d, "alerts.json"))) if os.path.exists(os.path.join(d, "alerts.json")) else {}
am, rw, pf = [], [], []
print("%-8s %6s %14s %14s %18s" % (name, "series", "Alertmanager s", "rollwatch s", "rw pending->fired s"))
for k in range(n):
    b = breaches[k]
    a = alerts.get(str(k))
    acted = os.path.join(d, "rw-%d.acted" % k)
    r = int(open(acted).read()) if os.path.exists(acted) and open(acted).read().strip() else None
    pending = fired = None
    for line in open(os.path.join(d, "rw-%d.log" % k)):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == "pending" and pending is None:
            pending = e["unix_ms"]
        if e.get("event") == "fired" and fired is None:
            fired = e["unix_ms"]
    a_s = (a - b) / 1000 if a else None
    r_s = (r - b) / 1000 if r else None
    p_s = (fired - pending) / 1000 if pending and fired else None
    if a_s is not None: am.append(a_s)
    if r_s is not None: rw.append(r_s)
    if p_s is not None: pf.append(p_s)
    fmt = lambda x: "%.1f" % x if x is not None else "-"
    print("%-8s %6d %14s %14s %18s" % ("", k, fmt(a_s), fmt(r_s), fmt(p_s)))
if am and rw:
    ma, mr = statistics.mean(am), statistics.mean(rw)
    print("%-8s %6s %14.1f %14.1f %18s" % ("", "mean", ma, mr, "%.1f" % statistics.mean(pf) if pf else "-"))
    f = 30.0  # `for`
    print("RESULT %s: breach->action mean Alertmanager %.1fs, rollwatch %.1fs; ratio %.2fx (Alertmanager/rollwatch)"
          % (name, ma, mr, ma / mr))
    print("RESULT %s: beyond `for` (%.0fs): Alertmanager %.1fs, rollwatch %.1fs; ratio %.1fx"
          % (name, f, ma - f, mr - f, (ma - f) / (mr - f) if mr > f else float("inf")))
else:
    print("RESULT %s: incomplete (alerts %d/%d, rollwatch actions %d/%d)" % (name, len(am), n, len(rw), n))
PY
}

which=${1:-all}
echo "machine: $(nproc) cores, $(prometheus --version 2>&1 | head -n1 | cut -d' ' -f1-3), $(prometheus-alertmanager --version 2>&1 | head -n1 | cut -d' ' -f1-3)"
if [ "$which" = all ] || [ "$which" = tuned ]; then
  run tuned 1s 1s 0s 1s 250 5000
fi
if [ "$which" = all ] || [ "$which" = defaults ]; then
  run defaults default default 30s 15s 15000 20000
fi
