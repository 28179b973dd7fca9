#!/bin/bash
# Instructions per operation of one Cairn member under callgrind: a repeatable measure (to about
# 0.1%) of what a change costs or saves, where wall-clock rounds on a shared 2-core machine vary
# by up to 30%. Counts only the measured run, not startup or the warm-up.
#
#   tests/bench/callgrind.sh [cairn binary] -- <cairn-bench workload and options>
#   tests/bench/callgrind.sh target/release/cairn -- range --consistency s --conns 10 --clients 100 --total 5000
#
# Needs valgrind (callgrind_control) and etcdctl. Leaves the profile in $OUT (default
# /tmp/cairn-callgrind) for callgrind_annotate. Ports: $CLIENT_PORT and $PEER_PORT.
set -euo pipefail
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}
BIN=$TARGET/release/cairn
if [ $# -gt 0 ] && [ "$1" != "--" ]; then BIN=$1; shift; fi
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "usage: $0 [cairn binary] -- <cairn-bench workload and options>" >&2; exit 2; }
BENCH=${CAIRN_BENCH_BIN:-$TARGET/release/cairn-bench}
OUT=${OUT:-/tmp/cairn-callgrind}
CLIENT=127.0.0.1:${CLIENT_PORT:-23791}
PEER=http://127.0.0.1:${PEER_PORT:-23891}
rm -rf "$OUT" && mkdir -p "$OUT"
# With the purge delay already set, the member does not execute itself again (gateway/src/main.rs),
# which would leave valgrind behind.
MIMALLOC_PURGE_DELAY=${MIMALLOC_PURGE_DELAY:-10000} \
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.%p" \
  "$BIN" --name cg --data-dir "$OUT/data" --listen-client-urls "http://$CLIENT" --advertise-client-urls "http://$CLIENT" \
  --listen-peer-urls "$PEER" --initial-advertise-peer-urls "$PEER" --initial-cluster "cg=$PEER" > "$OUT/member.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  kill -0 $PID 2>/dev/null || { echo "the member exited:" >&2; cat "$OUT/member.log" >&2; exit 1; }
  ETCDCTL_API=3 etcdctl --endpoints "$CLIENT" --dial-timeout=1s put cairn-callgrind ready > /dev/null 2>&1 && break
  sleep 0.2
done
# Warm-up (connections, the preload of a read workload): the same workload, 50 operations.
WARM=() SKIP=0
for a in "$@"; do
  if [ $SKIP = 1 ]; then SKIP=0; continue; fi
  case "$a" in --total) SKIP=1 ;; --total=*) ;; *) WARM+=("$a") ;; esac
done
"$BENCH" "${WARM[@]}" --total 50 --endpoints "$CLIENT" > /dev/null
callgrind_control -i on $PID > /dev/null
"$BENCH" "$@" --endpoints "$CLIENT" > "$OUT/bench.txt"
callgrind_control -d $PID > /dev/null
kill $PID; wait $PID 2>/dev/null || true
OPS=$(tail -1 "$OUT/bench.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ops"])')
PROFILE=$(ls -S "$OUT"/callgrind.*.1 | head -1)
IR=$(awk '/^summary:/ {print $2; exit}' "$PROFILE")
echo "ops $OPS instructions $IR per-op $((IR / OPS)) profile $PROFILE"
