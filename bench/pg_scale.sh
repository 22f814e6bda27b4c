#!/usr/bin/env bash
# `rollwatch serve` on a shared PostgreSQL (issue 13): 3 agents x 10,000 watches x 5
# rules at 15s against one throwaway PostgreSQL cluster and the loopback stand-in for
# Prometheus of bench/agent_scale.py. Prints one JSON line; see bench/pg_scale.py.
#
#   bench/pg_scale.sh                         # 10000 watches, 1000 services, 60s window
#   WATCHES=1000 WINDOW=30 bench/pg_scale.sh
#   WATCHES=100000 SERVICES=10000 BATCH=10000 WARMUP=120 bench/pg_scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# BIN=path/to/rollwatch measures that build instead of building this tree.
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin rollwatch
  BIN="$PWD/target/release/rollwatch"
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
tmp=$(mktemp -d /tmp/pg_scale.XXXXXX)
chmod 755 "$tmp"
mkdir "$tmp/data"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$tmp/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$PGBIN/initdb" -D "$tmp/data" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
touch "$tmp/pg.log"; [ "$(id -u)" = 0 ] && chown postgres "$tmp/pg.log"
as_pg "$PGBIN/pg_ctl" -D "$tmp/data" -l "$tmp/pg.log" -w \
  -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" start >/dev/null
trap 'as_pg "$PGBIN/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
PSQL=("$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -XAtq)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE rollwatch"
"${PSQL[@]}" -d rollwatch -c "CREATE EXTENSION pg_stat_statements"
python3 bench/pg_scale.py --bin "$BIN" --url "postgres://postgres@127.0.0.1:$port/rollwatch" \
  --psql "$PGBIN/psql" --port "$port" --agents "${AGENTS:-3}" \
  --watches "${WATCHES:-10000}" --services "${SERVICES:-1000}" \
  --window "${WINDOW:-60}" --warmup "${WARMUP:-30}" --lease-ttl "${TTL:-15}" \
  --batch "${BATCH:-0}"
