#!/usr/bin/env bash
# Detection latency: rollwatch vs a Prometheus alerting rule routed through Alertmanager,
# and vs a Flagger-like analysis loop, at scrape intervals of 1s, 15s and 1m, side by side
# in one run (bench/detection_matrix.py does the work; read its docstring).
#
# Per scrape interval: 20 series breach at instants spread over a minute; one real
# Prometheus evaluates `rw_signal > 0.5 for: 30s` at its default evaluation interval (1m)
# and tuned (evaluation = scrape), a real Alertmanager routes them at group_wait 30s
# (default) and 0s (tuned); 20 `rollwatch watch` at `interval: 15s` and 20 at `interval: 1m`
# judge `above: 0.5, for: 30s`; a Flagger-like loop checks every 60s (threshold 1). The
# figure is each one's delay beyond `for` (breach to action, less 30s): mean, p50, p99.
#
#   bench/detection_latency.sh                      # the whole matrix (about 8 minutes)
#   SERIES=30 SCRAPES=15s bench/detection_latency.sh
#
# Everything listens on free loopback ports and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SERIES=${SERIES:-20}
SCRAPES=${SCRAPES:-1s,15s,1m}

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

echo "machine: $(nproc) cores, $(prometheus --version 2>&1 | head -n1 | cut -d' ' -f1-3), $(prometheus-alertmanager --version 2>&1 | head -n1 | cut -d' ' -f1-3)"
python3 bench/detection_matrix.py "$RW" "$SERIES" "$SCRAPES"  # OLD_RW=binary adds an older build's rows
