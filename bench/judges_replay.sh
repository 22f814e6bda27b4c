#!/bin/sh
# Replay of a quarter of history with the judges (issue 12): how many range queries
# `replay --deploys` sends and how long it takes, with and without `--judge` overrides.
# Writes 13 weeks + 1 week (for `offset: 1w`) of minute samples with promtool, starts a
# real Prometheus on it, and replays two deploys a day. Usage: bench/judges_replay.sh
# (needs promtool, prometheus, python3 and a release build: cargo build --release).
set -eu
BIN=${BIN:-target/release/rollwatch}
DIR=$(mktemp -d)
trap 'kill $PROM 2>/dev/null || true; rm -rf "$DIR"' EXIT
python3 bench/judges_replay.py "$DIR"
promtool tsdb create-blocks-from openmetrics "$DIR/history.om" "$DIR/data" >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'global:\n  scrape_interval: 1m\n' > "$DIR/prometheus.yml"
prometheus --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
  --storage.tsdb.retention.time=10y --web.listen-address=127.0.0.1:$PORT --log.level=warn 2>"$DIR/prom.log" &
PROM=$!
until curl -sf http://127.0.0.1:$PORT/-/ready >/dev/null; do sleep 0.2; done
URL=http://127.0.0.1:$PORT
echo "deploys: $(grep -c . "$DIR/deploys.txt")"
for mode in plain judged; do
  if [ $mode = plain ]; then set --; else
    set -- --judge 'error-ratio={breaches: 3 of 5, min_traffic: {query: "sum(rw_req_rate)", min: 0.5}}' \
           --judge 'orders={baseline: {offset: 1w}, below_baseline: 30%, below: null}'
  fi
  start=$(date +%s.%N)
  "$BIN" --log-format=json replay --rules "$DIR/rules.yaml" --prometheus "$URL" \
    --deploys "$DIR/deploys.txt" "$@" > "$DIR/$mode.out" 2> "$DIR/$mode.err" || true
  end=$(date +%s.%N)
  echo "== $mode: $(grep -o '"range_queries":[0-9]*' "$DIR/$mode.err") wall $(python3 -c "print(round($end-$start,2))")s"
  tail -n 2 "$DIR/$mode.out"
done
