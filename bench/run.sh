#!/usr/bin/env bash
# bench/run.sh runs cleave's standard benchmark suite (make bench): it starts
# `cleave up` (a router and 2 clusters x 3 nodes, each its own process, fsync
# on) in a temporary directory, drives it with cleave-loadgen, writes one JSON
# and one HTML report per run plus index.html (every run on one page) and
# summary.txt under bench/results/<UTC time>/ (git-ignored; bench/results/latest
# points at the newest), and prints the summary table.
#
# Environment:
#   BENCH_DURATION  measured time of each run (default 10s; the suite is 9
#                   runs, so about 2-3 minutes in all with setup)
#   BENCH_OUT       results directory (default bench/results/<UTC time>)
#   BENCH_KEEP=1    keep the deployment's data directory
#   CLEAVE, LOADGEN binaries (default: built into bin/)
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${BENCH_DURATION:-10s}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-bench/results/$STAMP}
CLEAVE=${CLEAVE:-bin/cleave}
LOADGEN=${LOADGEN:-bin/cleave-loadgen}
mkdir -p "$OUT"

if [ -z "${CLEAVE_PREBUILT:-}" ]; then
	go build -o bin/cleave ./cmd/cleave
	go build -o bin/cleave-loadgen ./cmd/cleave-loadgen
fi

# A free loopback port for the router (the kernel picks it).
free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
	else
		echo $((20000 + RANDOM % 20000))
	fi
}
ROUTER=127.0.0.1:$(free_port)
DATA=$(mktemp -d "${TMPDIR:-/tmp}/cleave-bench.XXXXXX")

UP_PID=
cleanup() {
	if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
		kill -TERM "$UP_PID" 2>/dev/null || true
		wait "$UP_PID" 2>/dev/null || true
	fi
	if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$DATA"; else echo "data kept in $DATA"; fi
}
trap cleanup EXIT INT TERM

echo "bench: starting cleave up on $ROUTER (data in $DATA)"
"$CLEAVE" up --data "$DATA/data" --listen "$ROUTER" --log-level warn >"$DATA/up.out" 2>"$DATA/up.log" &
UP_PID=$!
for _ in $(seq 1 900); do
	grep -q "cleave is up" "$DATA/up.out" 2>/dev/null && break
	if ! kill -0 "$UP_PID" 2>/dev/null; then
		echo "bench: cleave up exited before it was up:" >&2
		cat "$DATA/up.out" "$DATA/up.log" >&2
		exit 1
	fi
	sleep 0.1
done
grep -q "cleave is up" "$DATA/up.out" || { echo "bench: cleave up not up within 90s" >&2; exit 1; }

# Per-run limit: the duration, plus preload and the loadgen's own hang guard.
case $DURATION in
[0-9]s | [0-9][0-9]s | [0-9][0-9][0-9]s) LIMIT=$((${DURATION%s} + 120))s ;;
*) LIMIT=900s ;;
esac
RAN=()
SKIPPED=()
# run NAME ARGS...: one loadgen run, JSON to $OUT/NAME.json, HTML to $OUT/NAME.html.
run() {
	local name=$1
	shift
	printf 'bench: %-18s %s\n' "$name" "$*"
	# The loadgen stops waiting for a hung call itself; timeout is the last resort.
	if timeout -k 5 "$LIMIT" "$LOADGEN" --router "$ROUTER" --prefix "b-$name" --duration "$DURATION" -o json \
		--report "$OUT/$name.html" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"; then
		RAN+=("$OUT/$name.json")
		rm -f "$OUT/$name.err"
	else
		SKIPPED+=("$name: $(head -c 300 "$OUT/$name.err" | tr '\n' ' ') (full text in $OUT/$name.err)")
		rm -f "$OUT/$name.json" "$OUT/$name.html"
	fi
	# A run with errors is kept and listed: its JSON says which codes.
}

run put-1k-c1      --workload put --size 1KiB --clients 1
run put-1k-c16     --workload put --size 1KiB --clients 16
run put-1k-c64     --workload put --size 1KiB --clients 64
run get-1k-c1      --workload get --size 1KiB --clients 1 --files 1000
run get-1k-c16     --workload get --size 1KiB --clients 16 --files 1000
run get-1k-c64     --workload get --size 1KiB --clients 64 --files 1000
run mixed-90-c64   --workload mixed --read-ratio 0.9 --size 1KiB --clients 64 --files 1000
run list-1000-c16  --workload list --roots 1 --files 1000 --size 1KiB --clients 16
run append-1k-c16  --workload append --size 1KiB --clients 16 --files 1000
run stream-64m-c1  --workload stream --size 64MiB --clients 1 --files 4

{
	echo "cleave bench $STAMP: $(nproc) cores, cleave up (3 routers, 2 clusters x 3 nodes), ${DURATION} per run"
	echo
	if [ ${#RAN[@]} -gt 0 ]; then "$LOADGEN" summary "${RAN[@]}"; fi
	if [ ${#SKIPPED[@]} -gt 0 ]; then
		echo
		echo "not run:"
		for s in "${SKIPPED[@]}"; do echo "  $s"; done
	fi
} | tee "$OUT/summary.txt"
if [ ${#RAN[@]} -gt 0 ]; then
	"$LOADGEN" report --title "cleave bench $STAMP" -o "$OUT/index.html" "${RAN[@]}"
fi
ln -sfn "$(basename "$OUT")" bench/results/latest 2>/dev/null || true
echo "bench: results in $OUT (index.html has every run)"
