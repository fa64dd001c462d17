#!/usr/bin/env bash
# bench/run.sh runs cleave's standard benchmark suite (make bench) and, in
# the same invocation, the same workloads against a 3-member etcd cluster
# and, optionally, against a baseline build of cleave:
#
#   1. cleave: `cleave up` (3 routers, 2 clusters x 3 nodes, each its own
#      process, fsync on) in a temporary directory, every run of the suite;
#   2. etcd: three etcd members on 127.0.0.1 (Debian's etcd-server, installed
#      by scripts/install-etcd.sh when missing; fsync on, etcd's default),
#      each with its own data directory, the runs that make sense for a
#      key-value store (put, get, mixed); skipped with the reason printed if
#      etcd cannot be had;
#   3. baseline (BENCH_BASELINE=<git rev>): that revision's cleave, built
#      into a temporary directory, the headline runs.
#
# One system runs at a time (the others are stopped), so none pays for
# another's idle work. Every run measures the CPU (user + system, from
# /proc) of every server process of the system under test — the cleave up
# supervisor and its children, or the three etcd members — over exactly the
# measured window, reported as server CPU µs per operation.
#
# It writes one JSON and one HTML report per run plus index.html (every run
# on one page, with the side-by-side table) and summary.txt under
# bench/results/<UTC time>/ (git-ignored; bench/results/latest points at the
# newest), and prints the summary: one line per run, then per headline
# workload cleave, the baseline and etcd side by side with the ratios
# cleave / etcd and current / baseline.
#
# Environment:
#   BENCH_DURATION  measured time of each run (default 10s; about 4 minutes
#                   in all with etcd, 5 with a baseline)
#   BENCH_RUNS      which runs: "all" (default), "headline" (put-1k-c64,
#                   put-1k-c1, get-1k-c64, and cleave's put-1k-c64-router
#                   and get-1k-c64-router: make bench-quick) or run names,
#                   e.g. "put-1k-c64 mixed-90-c64"
#   BENCH_ROUNDS    run everything this many times, one system after the
#                   other in each round, each round on fresh deployments
#                   (default 1; make bench-quick: 3); the side-by-side table
#                   shows the median of each figure over the rounds
#   BENCH_ETCD=0    skip the etcd half
#   BENCH_DIRECT=0  cleave's runs go through a router; by default the
#                   loadgen holds the deployment's token and sends file
#                   operations straight to the owning cluster (--direct),
#                   and the runs named *-router show the router's path
#   BENCH_BASELINE  a git revision: also run the headline runs against it
#   BENCH_OUT       results directory (default bench/results/<UTC time>)
#   BENCH_KEEP=1    keep the deployments' data directories
#   CLEAVE, LOADGEN binaries (default: built into bin/)
#   ETCD            etcd binary (default: etcd on PATH)
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-all}
ROUNDS=${BENCH_ROUNDS:-1}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-bench/results/$STAMP}
CLEAVE=${CLEAVE:-bin/cleave}
LOADGEN=${LOADGEN:-bin/cleave-loadgen}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
HEADLINE="put-1k-c64 put-1k-c1 get-1k-c64 put-1k-c64-router get-1k-c64-router"
mkdir -p "$OUT"
case $ROUNDS in
'' | *[!0-9]* | 0)
	echo "bench: BENCH_ROUNDS=$ROUNDS: want a whole number of rounds, at least 1" >&2
	exit 2
	;;
esac

if [ -z "${CLEAVE_PREBUILT:-}" ]; then
	go build -o bin/cleave ./cmd/cleave
	go build -o bin/cleave-loadgen ./cmd/cleave-loadgen
fi

# free_ports N: N distinct free loopback ports (the kernel picks them).
free_ports() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss: s.close()' "$1"
	else
		local base=$((20000 + RANDOM % 20000)) i
		for ((i = 0; i < $1; i++)); do printf '%d ' $((base + 2 * i)); done
		echo
	fi
}
DATA=$(mktemp -d "${TMPDIR:-/tmp}/cleave-bench.XXXXXX")

UP_PID=
ETCD_PIDS=()
cleanup() {
	stop_cleave
	stop_etcd
	if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$DATA"; else echo "data kept in $DATA"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_cleave BINARY DIR: starts `BINARY up` with data under DIR; sets
# UP_PID and ROUTER. Returns non-zero, having said why, if it did not come up.
start_cleave() {
	local bin=$1 dir=$2
	ROUTER=127.0.0.1:$(free_ports 1)
	mkdir -p "$dir"
	echo "bench: starting $bin up on $ROUTER (data in $dir)"
	"$bin" up --data "$dir/data" --listen "$ROUTER" --log-level warn >"$dir/up.out" 2>"$dir/up.log" &
	UP_PID=$!
	UP_DATA=$dir/data
	for _ in $(seq 1 900); do
		grep -q "cleave is up" "$dir/up.out" 2>/dev/null && return 0
		if ! kill -0 "$UP_PID" 2>/dev/null; then
			echo "bench: $bin up exited before it was up:" >&2
			cat "$dir/up.out" "$dir/up.log" >&2
			UP_PID=
			return 1
		fi
		sleep 0.1
	done
	echo "bench: $bin up not up within 90s" >&2
	stop_cleave
	return 1
}

stop_cleave() {
	if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
		kill -TERM "$UP_PID" 2>/dev/null || true
		wait "$UP_PID" 2>/dev/null || true
	fi
	UP_PID=
}

# start_etcd DIR: starts three etcd members on loopback, each with its own
# data directory under DIR; sets ETCD_PIDS and ETCD_EPS. Returns non-zero
# with the reason in ETCD_SKIP when etcd cannot be had or did not start.
start_etcd() {
	local dir=$1 bin=${ETCD:-}
	if [ -z "$bin" ]; then
		if ! command -v etcd >/dev/null 2>&1; then
			if ! ./scripts/install-etcd.sh >"$DATA/install-etcd.log" 2>&1; then
				ETCD_SKIP="etcd is not installed and scripts/install-etcd.sh could not install it: $(tail -n 1 "$DATA/install-etcd.log")"
				return 1
			fi
		fi
		bin=$(command -v etcd)
	fi
	local ports cluster="" eps="" i
	read -r -a ports <<<"$(free_ports 6)"
	for i in 1 2 3; do
		cluster+="${cluster:+,}e$i=http://127.0.0.1:${ports[2 * i - 1]}"
		eps+="${eps:+,}127.0.0.1:${ports[2 * i - 2]}"
	done
	ETCD_VERSION=$("$bin" --version 2>/dev/null | sed -n 's/^etcd Version: //p')
	echo "bench: starting etcd ${ETCD_VERSION:-?} x3 on $eps (data in $dir)"
	mkdir -p "$dir"
	for i in 1 2 3; do
		local c=http://127.0.0.1:${ports[2 * i - 2]} p=http://127.0.0.1:${ports[2 * i - 1]}
		"$bin" --name "e$i" --data-dir "$dir/e$i" \
			--listen-client-urls "$c" --advertise-client-urls "$c" \
			--listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
			--initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token cleave-bench \
			--logger zap --log-outputs stderr --log-level warn >"$dir/e$i.log" 2>&1 &
		ETCD_PIDS+=($!)
	done
	ETCD_EPS=$eps
	# Ready when a put (which needs an elected leader) succeeds.
	for _ in $(seq 1 60); do
		if "$LOADGEN" --target etcd --endpoints "$ETCD_EPS" --workload put --ops 1 --clients 1 \
			--prefix b-probe --timeout 2s -q >/dev/null 2>"$dir/probe.err"; then
			return 0
		fi
		for i in "${ETCD_PIDS[@]}"; do
			if ! kill -0 "$i" 2>/dev/null; then
				ETCD_SKIP="an etcd member exited at start: $(tail -n 2 "$dir"/e*.log | tr '\n' ' ')"
				stop_etcd
				return 1
			fi
		done
		sleep 1
	done
	ETCD_SKIP="etcd did not accept a put within 60s: $(tr '\n' ' ' <"$dir/probe.err")"
	stop_etcd
	return 1
}

stop_etcd() {
	local p
	for p in "${ETCD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${ETCD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	ETCD_PIDS=()
}

# build_baseline REV: builds REV's cleave into $DATA/base/bin, and a
# cleave-loadgen of this tree's loadgen over REV's SDK (falling back to this
# tree's loadgen if that does not build); sets BASE_CLEAVE, BASE_LOADGEN.
build_baseline() {
	local rev=$1 src=$DATA/base/src
	local commit
	commit=$(git rev-parse --verify --quiet "$rev^{commit}") || {
		echo "bench: BENCH_BASELINE=$rev: not a git revision of this repository" >&2
		exit 2
	}
	BASE_NAME="cleave@$(git rev-parse --short "$commit")"
	echo "bench: building the baseline $BASE_NAME ($rev)"
	mkdir -p "$src" "$DATA/base/bin"
	git archive "$commit" | tar -x -C "$src"
	(cd "$src" && go build -o "$DATA/base/bin/cleave" ./cmd/cleave) || {
		echo "bench: the baseline $rev does not build" >&2
		exit 1
	}
	BASE_CLEAVE=$DATA/base/bin/cleave
	rm -rf "$src/loadgen" "$src/cmd/cleave-loadgen"
	cp -r loadgen "$src/loadgen"
	cp -r cmd/cleave-loadgen "$src/cmd/cleave-loadgen"
	cp go.mod go.sum "$src/"
	if (cd "$src" && GOFLAGS=-mod=mod go build -o "$DATA/base/bin/cleave-loadgen" ./cmd/cleave-loadgen) 2>"$DATA/base/loadgen-build.log"; then
		BASE_LOADGEN=$DATA/base/bin/cleave-loadgen
	else
		echo "bench: this loadgen does not build over $BASE_NAME's SDK ($(head -n 3 "$DATA/base/loadgen-build.log" | tr '\n' ' ')); driving the baseline with this tree's SDK" >&2
		BASE_LOADGEN=$LOADGEN
	fi
}

# wanted NAME: whether BENCH_RUNS selects run NAME (a baseline runs only
# the headline runs).
wanted() {
	if [ "$SYSTEM" = baseline ] && [[ " $HEADLINE " != *" $1 "* ]]; then return 1; fi
	case $RUNS in
	all) return 0 ;;
	headline) [[ " $HEADLINE " == *" $1 "* ]] ;;
	*) [[ " ${RUNS//,/ } " == *" $1 "* ]] ;;
	esac
}

# Per-run limit: the duration, plus preload and the loadgen's own hang guard.
case $DURATION in
[0-9]s | [0-9][0-9]s | [0-9][0-9][0-9]s) LIMIT=$((${DURATION%s} + 120))s ;;
*) LIMIT=900s ;;
esac
RAN=()
SKIPPED=()
SYSTEM=cleave
SUFFIX= # .rN in rounds after the first
# run NAME ARGS...: one loadgen run against $SYSTEM (cleave, etcd or
# baseline) if BENCH_RUNS selects it; JSON to $OUT/[etcd-|base-]NAME.json,
# HTML beside it.
run() {
	local name=$1 file lg=$LOADGEN token=
	shift
	wanted "$name" || return 0
	local target=(--router "$ROUTER" --cpu-tree "$UP_PID" --label cleave)
	case $SYSTEM in
	etcd)
		file=etcd-$name
		target=(--target etcd --endpoints "$ETCD_EPS" --cpu-pids "$(
			IFS=,
			echo "${ETCD_PIDS[*]}"
		)")
		;;
	baseline)
		file=base-$name
		lg=$BASE_LOADGEN
		target=(--router "$ROUTER" --cpu-tree "$UP_PID" --label "$BASE_NAME" --baseline)
		;;
	*)
		file=$name
		if [[ $name == *-router ]]; then
			target=(--router "$ROUTER" --cpu-tree "$UP_PID" --label "cleave via router")
		elif [ "${BENCH_DIRECT:-1}" != 0 ]; then
			# Nodes accept the deployment's token, not anonymous clients.
			token=$(cat "$UP_DATA/token")
			target+=(--direct)
		fi
		;;
	esac
	file+=$SUFFIX
	printf 'bench: %-22s %s\n' "$file" "$*"
	# The loadgen stops waiting for a hung call itself; timeout is the last resort.
	if CLEAVE_TOKEN=$token timeout -k 5 "$LIMIT" "$lg" "${target[@]}" --clk-tck "$CLK_TCK" --prefix "b-$name" --duration "$DURATION" \
		-o json --report "$OUT/$file.html" "$@" >"$OUT/$file.json" 2>"$OUT/$file.err"; then
		RAN+=("$OUT/$file.json")
		rm -f "$OUT/$file.err"
	else
		SKIPPED+=("$file: $(head -c 300 "$OUT/$file.err" | tr '\n' ' ') (full text in $OUT/$file.err)")
		rm -f "$OUT/$file.json" "$OUT/$file.html"
	fi
	# A run with errors is kept and listed: its JSON says which codes.
}

# The key-value runs, which etcd runs too.
kv_runs() {
	run put-1k-c1 --workload put --size 1KiB --clients 1
	run put-1k-c16 --workload put --size 1KiB --clients 16
	run put-1k-c64 --workload put --size 1KiB --clients 64
	run get-1k-c1 --workload get --size 1KiB --clients 1 --files 1000
	run get-1k-c16 --workload get --size 1KiB --clients 16 --files 1000
	run get-1k-c64 --workload get --size 1KiB --clients 64 --files 1000
	run mixed-90-c64 --workload mixed --read-ratio 0.9 --size 1KiB --clients 64 --files 1000
}

# Any baseline is built before anything is measured.
if [ -n "${BENCH_BASELINE:-}" ]; then build_baseline "$BENCH_BASELINE"; fi

ETCD_NOTE="etcd: not run (BENCH_ETCD=0)"
BASE_NOTE=
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	if [ "$ROUNDS" -gt 1 ]; then
		SUFFIX=.r$ROUND
		echo "bench: round $ROUND of $ROUNDS"
	fi

	SYSTEM=cleave
	if ! start_cleave "$CLEAVE" "$DATA/cleave$SUFFIX"; then
		[ "$ROUND" -gt 1 ] || exit 1
		SKIPPED+=("round $ROUND and later: cleave up did not come up")
		break
	fi
	kv_runs
	run put-1k-c64-router --workload put --size 1KiB --clients 64
	run get-1k-c64-router --workload get --size 1KiB --clients 64 --files 1000
	run list-1000-c16 --workload list --roots 1 --files 1000 --size 1KiB --clients 16
	run append-1k-c16 --workload append --size 1KiB --clients 16 --files 1000
	run stream-64m-c1 --workload stream --size 64MiB --clients 1 --files 4
	stop_cleave

	if [ "${BENCH_ETCD:-1}" != 0 ] && [ -z "${ETCD_SKIP:-}" ]; then
		if start_etcd "$DATA/etcd$SUFFIX"; then
			SYSTEM=etcd
			kv_runs
			stop_etcd
			ETCD_NOTE="etcd ${ETCD_VERSION:-?} (3 members on loopback, fsync on)"
		else
			echo "bench: skipping etcd: $ETCD_SKIP" >&2
			ETCD_NOTE="etcd: not run: $ETCD_SKIP"
		fi
	fi

	if [ -n "${BENCH_BASELINE:-}" ]; then
		SYSTEM=baseline
		if start_cleave "$BASE_CLEAVE" "$DATA/base$SUFFIX"; then
			kv_runs # the headline runs only: see wanted
			stop_cleave
			BASE_NOTE="; baseline $BASE_NAME ($BENCH_BASELINE)"
		else
			BASE_NOTE="; baseline $BASE_NAME ($BENCH_BASELINE): not run: its cleave up did not come up"
		fi
	fi
done

{
	echo "cleave bench $STAMP: $(nproc) cores, cleave up (3 routers, 2 clusters x 3 nodes), ${DURATION} per run, $ROUNDS round(s); $ETCD_NOTE$BASE_NOTE"
	echo "CPU µs/op: user + system time of every server process over the measured window (/proc, CLK_TCK $CLK_TCK) per operation"
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
