#!/usr/bin/env bash
# scripts/bench.sh — order_ext against plain SQL doing the same job (pgbench).
#
#     bash scripts/bench.sh         (as root; `make bench` runs it too)
#
# Builds and installs the extension, starts a throw-away cluster in
# /tmp/order_ext_bench (port 54323; see OE_TMP, OE_PORT_BASE in lib.sh), runs test/bench/setup.sql once, then for
# each comparison below runs the baseline (A) and order_ext (B) alternately,
# A B A B …, so drift (table growth, caches, checkpoints) hits both sides
# alike. Prints each side's mean tps and the ratio order_ext / baseline, and
# writes the same to test/bench/results/latest.txt.
#
# Environment: BENCH_SECONDS (per run, default 15), BENCH_ROUNDS (A-B pairs,
# default 2), BENCH_CLIENTS (default 8), BENCH_JOBS (default 2), BENCH_ONLY
# (space-separated names: run only those comparisons), BENCH_HUGE_PAGES (on:
# the cluster's shared memory in 2 MB huge pages, below; default off, as a
# fresh Debian install has none reserved).
#
# Adding a comparison: write test/bench/<name>.baseline.sql and
# test/bench/<name>.ours.sql (pgbench scripts; setup.sql creates what they
# need) and add a line to COMPARISONS. Two optional fields follow the
# scripts: the number of clients (default BENCH_CLIENTS) and "sync" to run
# both sides with synchronous_commit = on (commits wait for the WAL flush,
# as they would in production; the stock comparisons use it because how
# long a row lock is held is the point there).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

#   name            baseline script (A)          order_ext script (B)
COMPARISONS=(
	"create_order   create_order.baseline.sql    create_order.ours.sql"
	"create_order_allrows create_order_allrows.baseline.sql create_order_allrows.ours.sql"
	"new_order_id   new_order_id.baseline.sql    new_order_id.ours.sql"
	"fire           fire.baseline.sql            fire.ours.sql"
	"flash_normal   flash.baseline.sql           flash_normal.ours.sql   64 sync"
	"flash_hot      flash.baseline.sql           flash_hot.ours.sql      64 sync"
	"random_skus    random_skus.baseline.sql     random_skus.ours.sql    64 sync"
	"life_order     life_order.baseline.sql      life_order.ours.sql"
	"life_order_allrows life_order_allrows.baseline.sql life_order.ours.sql"
)

# BENCH_ONLY=archive: only the archiving section (scripts/bench_archive.sh)
[ "${BENCH_ONLY:-}" = archive ] && COMPARISONS=()
# shellcheck source=scripts/bench_archive.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_archive.sh"

DIR=${OE_TMP}_bench
PORT=$((OE_PORT_BASE + 2))
BENCH=$OE_ROOT/test/bench
RESULTS=$BENCH/results
SECS=${BENCH_SECONDS:-15}
ROUNDS=${BENCH_ROUNDS:-2}
CLIENTS=${BENCH_CLIENTS:-8}
JOBS=${BENCH_JOBS:-2}
# Server settings, the same for both sides of every comparison.
SETTINGS=(
	"shared_buffers = '1GB'"
	"max_connections = 200"
	"synchronous_commit = off"
	"max_wal_size = '8GB'"
	"checkpoint_timeout = '30min'"
)
# BENCH_SETTINGS_EXTRA="name = value; name = value": more server settings,
# after these (later lines win), for trying a setting's effect; the results
# header lists them with the rest.
IFS=';' read -r -a SETTINGS_EXTRA <<<"${BENCH_SETTINGS_EXTRA:-}"
for s in "${SETTINGS_EXTRA[@]}"; do
	s=$(echo "$s" | sed 's/^ *//; s/ *$//')
	[ -n "$s" ] && SETTINGS+=("$s")
done

# BENCH_HUGE_PAGES=on: reserve HUGE_PAGES_EXTRA more 2 MB pages in
# vm.nr_hugepages for the run (as root; 1.25 GiB, enough for the 1 GB of
# shared_buffers and the rest of the shared memory), start the cluster with
# huge_pages = on, and give the pages back when the script exits. On a
# virtual machine the first touch of each 4 kB page of shared memory by a
# new process can cost microseconds (see README, "Huge pages"): archive()'s
# process is new on every call, and reads the whole month.
HUGE_PAGES_EXTRA=640
HUGE_PAGES_BEFORE=""
if [ "${BENCH_HUGE_PAGES:-off}" = on ]; then
	HUGE_PAGES_BEFORE=$(cat /proc/sys/vm/nr_hugepages)
	echo $((HUGE_PAGES_BEFORE + HUGE_PAGES_EXTRA)) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
	if [ "$(cat /proc/sys/vm/nr_hugepages)" -lt $((HUGE_PAGES_BEFORE + HUGE_PAGES_EXTRA)) ]; then
		echo "$HUGE_PAGES_BEFORE" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
		oe_die "BENCH_HUGE_PAGES=on: could not reserve $HUGE_PAGES_EXTRA huge pages (vm.nr_hugepages; root and free memory needed)"
	fi
	SETTINGS+=("huge_pages = on")
fi
# after the cluster is gone (lib.sh calls this last)
oe_after_cleanup() {
	[ -n "$HUGE_PAGES_BEFORE" ] && echo "$HUGE_PAGES_BEFORE" >/proc/sys/vm/nr_hugepages 2>/dev/null
	return "$1"
}

oe_ensure_deps
echo "building and installing order_ext ..."
oe_build_install ${OE_TMP}_bench_build.log || oe_die "the build failed"
echo "starting a throw-away cluster in $DIR (port $PORT) ..."
oe_cluster_start "$DIR" "$PORT" "${SETTINGS[@]}" || oe_die "the server did not start"
oe_psql "$DIR" "$PORT" -q -d postgres -f "$BENCH/setup.sql" >/dev/null

# One pgbench run of script $1 with $2 clients, extra server options $3
# (PGOPTIONS); prints its tps (excluding connection time).
run_pgbench() {
	local script=$1 clients=$2 options=$3 out
	# the same start for every run: no autovacuum or checkpoint debt left over
	# from the previous run (either side's) lands inside this one
	oe_psql "$DIR" "$PORT" -q -d postgres -c "VACUUM ANALYZE" -c CHECKPOINT >/dev/null
	if ! out=$(PGOPTIONS="$options" "$OE_PGBIN/pgbench" -h "$DIR" -p "$PORT" -U postgres -n -M prepared \
		-c "$clients" -j "$JOBS" -T "$SECS" -f "$BENCH/$script" postgres 2>&1); then
		oe_warn "pgbench failed on $script:"
		printf '%s\n' "$out" | tail -n 20 >&2
		return 1
	fi
	printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p'
}

mean() { printf '%s\n' "$@" | awk '{ s += $1; n++ } END { if (n) printf "%.1f", s / n }'; }

header=$(
	echo "order_ext bench, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$OE_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo "pgbench -n -M prepared -c $CLIENTS -j $JOBS -T $SECS, sides alternated A B x $ROUNDS"
	echo "server (same for both sides): ${SETTINGS[*]}"
	echo "synchronous_commit = off for both sides unless a line says otherwise: commits do not wait"
	echo "for the WAL flush, so the numbers show CPU and locking cost rather than the fsync rate."
	echo "$(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
)
echo
echo "$header"

table=$(printf '%-22s %14s %14s %8s\n' comparison "baseline tps" "order_ext tps" ratio)
runs=""
status=0
for c in "${COMPARISONS[@]}"; do
	read -r name base ours nclients sync <<<"$c"
	nclients=${nclients:-$CLIENTS}
	options=""
	[ "${sync:-}" = sync ] && options="-c synchronous_commit=on"
	if [ -n "${BENCH_ONLY:-}" ] && ! [[ " $BENCH_ONLY " == *" $name "* ]]; then
		continue
	fi
	a_runs=() b_runs=() failed=0
	for ((r = 1; r <= ROUNDS; r++)); do
		for side in A B; do
			script=$([ "$side" = A ] && echo "$base" || echo "$ours")
			if tps=$(run_pgbench "$script" "$nclients" "$options") && [ -n "$tps" ]; then
				line=$(printf '  %-14s round %d %s %-28s %12.1f tps' "$name" "$r" "$side" "$script" "$tps")
				echo "$line"
				runs+=$'\n'$line
				if [ "$side" = A ]; then a_runs+=("$tps"); else b_runs+=("$tps"); fi
			else
				failed=1
			fi
		done
	done
	if [ "$failed" = 1 ]; then
		status=1
		table+=$'\n'$(printf '%-22s %14s %14s %8s' "$name" error error -)
		continue
	fi
	a=$(mean "${a_runs[@]}")
	b=$(mean "${b_runs[@]}")
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
	table+=$'\n'$(printf '%-22s %14s %14s %8s  (%s clients%s)' "$name" "$a" "$b" "$ratio" "$nclients" \
		"$([ -n "$options" ] && echo ', synchronous_commit on')")
done

echo
echo "$table"
echo "(ratio = order_ext tps / baseline tps; mean of the runs of each side)"

# archiving: its own measurements, at the end (it fills the cluster with two
# months of orders); BENCH_ARCHIVE=0 skips it
ARCHIVE_TABLE=""
if [ "${BENCH_ARCHIVE:-1}" = 1 ]; then
	echo
	archive_bench || status=1
fi
mkdir -p "$RESULTS"
printf '%s\n%s\n\n%s\n\n%s\n' "$header" "$runs" "$table" "$ARCHIVE_TABLE" >"$RESULTS/latest.txt"
echo "written to ${RESULTS#"$OE_ROOT"/}/latest.txt"
exit "$status"
