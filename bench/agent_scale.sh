#!/usr/bin/env bash
# Scale of `rollwatch serve` (issue 5): 5,000 watches x 5 rules at 15s on this machine,
# with and without sharing identical queries, against a loopback stand-in for the
# Prometheus query API. Prints one JSON line per run; see bench/agent_scale.py.
#
#   bench/agent_scale.sh                      # 5000 watches, 500 services, 60s window
#   WATCHES=1000 WINDOW=30 bench/agent_scale.sh
#   CREATE_ONLY=1 WATCHES=10000 bench/agent_scale.sh   # creation only (issue 21):
#       one POST per watch, then batches of BATCH (default 10000) on a fresh agent
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin rollwatch
BIN="$PWD/target/release/rollwatch"
if [[ -n "${CREATE_ONLY:-}" ]]; then
    args=(--bin "$BIN" --watches "${WATCHES:-10000}" --services "${SERVICES:-1000}" --create-only)
    python3 bench/agent_scale.py "${args[@]}"
    python3 bench/agent_scale.py "${args[@]}" --batch "${BATCH:-10000}"
    exit 0
fi
common=(--bin "$BIN" --watches "${WATCHES:-5000}" --services "${SERVICES:-500}"
        --window "${WINDOW:-60}" --warmup "${WARMUP:-30}")
# The sharing run then also kills -9 the agent, keeps it down RESTART seconds and
# measures the resume (catch-up over the downtime from the stand-in's history).
python3 bench/agent_scale.py "${common[@]}" --restart "${RESTART:-20}"
python3 bench/agent_scale.py "${common[@]}" --no-sharing
