#!/usr/bin/env bash
# bench/idle.sh measures what an idle deployment costs (make bench-idle):
# it starts `cleave up` (3 routers, 2 clusters x 3 nodes) in a temporary
# directory, lets it settle, then reads the CPU time (user + system, from
# /proc/PID/stat) of every process over IDLE_SECONDS with no client
# connected, and prints milliseconds of CPU per second for each process and
# in all. With IDLE_BASELINE=<git rev> it builds that revision too and runs
# both deployments side by side over the same window, so both see the same
# machine.
#
# Environment: IDLE_SECONDS (default 30), IDLE_SETTLE (seconds before
# measuring, default 15), IDLE_BASELINE (optional git revision).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${IDLE_SECONDS:-30}
settle=${IDLE_SETTLE:-15}
tmp=$(mktemp -d)
ups=()
cleanup() {
	for p in "${ups[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${ups[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

bins=(current)
[ -x bin/cleave ] || go build -o bin/cleave ./cmd/cleave
cp bin/cleave "$tmp/cleave-current"
if [ -n "${IDLE_BASELINE:-}" ]; then
	git worktree add -q --detach "$tmp/src" "$IDLE_BASELINE"
	(cd "$tmp/src" && go build -o "$tmp/cleave-baseline" ./cmd/cleave)
	git worktree remove --force "$tmp/src"
	bins+=(baseline)
fi

port=$((17000 + RANDOM % 1000))
for b in "${bins[@]}"; do
	"$tmp/cleave-$b" up --data "$tmp/data-$b" --listen "127.0.0.1:$port" >"$tmp/$b.out" 2>"$tmp/$b.log" &
	ups+=($!)
	port=$((port + 1))
done
for i in "${!bins[@]}"; do
	for _ in $(seq 120); do grep -q "cleave is up" "$tmp/${bins[$i]}.out" && break; sleep 0.5; done
	grep -q "cleave is up" "$tmp/${bins[$i]}.out" || { echo "cleave up (${bins[$i]}) did not come up:"; tail "$tmp/${bins[$i]}.log"; exit 1; }
done
sleep "$settle"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
declare -A before
for up in "${ups[@]}"; do for p in $(pgrep -P "$up"); do before[$p]=$(ticks "$p"); done; done
sleep "$secs"
for i in "${!bins[@]}"; do
	total=0
	printf '%s (idle %ss): ms of CPU per second\n' "${bins[$i]}" "$secs"
	for p in $(pgrep -P "${ups[$i]}"); do
		d=$(( $(ticks "$p") - ${before[$p]:-0} ))
		total=$((total + d))
		printf '  %-28s %6.1f\n' "$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{print $2, $3, $4, $5, $6}')" "$(echo "$d * 1000 / $hz / $secs" | bc -l)"
	done
	printf '  %-28s %6.1f\n' "all" "$(echo "$total * 1000 / $hz / $secs" | bc -l)"
done
