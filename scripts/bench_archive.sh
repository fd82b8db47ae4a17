# scripts/bench_archive.sh — the archiving benchmark, sourced by scripts/bench.sh
# (it uses bench.sh's cluster: DIR, PORT, BENCH, CLIENTS, JOBS).
#
#   BENCH_ONLY=archive bash scripts/bench.sh     this section alone
#
# 1. whole-month path: a month of BENCH_ARCHIVE_ORDERS (default 1,000,000)
#    finished orders, 3 lines each (test/bench/archive_month.sql: one
#    INSERT ... SELECT generate_series per table), archived by one archive()
#    call: its seconds;
# 2. batch path: another such month with one order left open (so it cannot
#    move whole), archived with batch_size 1000 while pgbench creates orders
#    at a steady BENCH_ARCHIVE_RATE (default 200) per second: orders
#    archived per second, and create_order's p99 latency during the
#    archiving divided by its p99 with nothing else running.
# 3. the same p99 ratio, interleaved: a third such month is archived in
#    windows of BENCH_ARCHIVE_WINDOW (default 5) seconds, archive() being
#    cancelled at the end of each window and called again after an idle window
#    of the same length, while one pgbench run goes on throughout; p99 of the
#    transactions inside archive windows divided by p99 of those inside idle
#    windows. On a shared 2-CPU virtual machine the idle p99 alone swings by
#    2x from one half-minute to the next; interleaving puts both sides in the
#    same weather. It also exercises cancel-and-resume under load.
# Goals (issue 6): whole month < 1 s; batch >= 20,000 orders/s; p99 ratio <= 1.5.

# "p99 n": the 99th percentile (ms) of the latencies (us) on stdin, and their count.
archive_bench_pct99() {
	sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.2f %d", v[i] / 1000, NR }'
}

# p99 latency (ms) of create_order at a steady rate for BENCH_ARCHIVE_SECONDS.
archive_bench_p99() {
	local logdir
	logdir=$(mktemp -d)
	"$OE_PGBIN/pgbench" -h "$DIR" -p "$PORT" -U postgres -n -M prepared -c "$CLIENTS" -j "$JOBS" \
		-R "${BENCH_ARCHIVE_RATE:-200}" -T "${BENCH_ARCHIVE_SECONDS:-20}" \
		-f "$BENCH/create_order.ours.sql" --log --log-prefix="$logdir/tx" postgres >/dev/null 2>&1 ||
		{ rm -rf "$logdir"; return 1; }
	# per-transaction log: field 3 is the latency in microseconds
	cat "$logdir"/tx.* | awk '{ print $3 }' | archive_bench_pct99 | cut -d' ' -f1
	rm -rf "$logdir"
}

# p99 (ms) of the transactions of pgbench logs $1/tx.* whose end falls inside
# the windows of $2 (lines "start end kind") of kind $3, skipping each window's
# first 0.2 s.
archive_bench_window_p99() {
	cat "$1"/tx.* | awk '{ printf "%d.%06d %d\n", $5, $6, $3 }' |
		awk -v kind="$3" 'NR == FNR { if ($3 == kind) { a[++m] = $1 + 0.2; b[m] = $2 } next }
			{ for (i = 1; i <= m; i++) if ($1 >= a[i] && $1 < b[i]) { print $2; break } }' "$2" - |
		archive_bench_pct99
}

# Interleaved windows (3. above) over the month being built with one order
# left open; sets ilv_idle, ilv_busy (p99 ms), ilv_n (samples each side),
# ilv_moved and ilv_secs (time inside archive windows).
archive_bench_interleaved() {
	local w=${BENCH_ARCHIVE_WINDOW:-5} logdir marks pgb a b rc i t apid out n_busy
	local q=(oe_psql "$DIR" "$PORT" -q -At -d postgres)
	logdir=$(mktemp -d)
	marks=$logdir/marks
	out=$logdir/out
	: >"$marks"
	"$OE_PGBIN/pgbench" -h "$DIR" -p "$PORT" -U postgres -n -M prepared -c "$CLIENTS" -j "$JOBS" \
		-R "${BENCH_ARCHIVE_RATE:-200}" -T 3600 \
		-f "$BENCH/create_order.ours.sql" --log --log-prefix="$logdir/tx" postgres >/dev/null 2>&1 &
	pgb=$!
	sleep 3
	ilv_secs=0
	for ((i = 0; i < 1000; i++)); do
		a=$(archive_bench_now)
		sleep "$w"
		echo "$a $(archive_bench_now) idle" >>"$marks"
		a=$(archive_bench_now)
		"${q[@]}" -c "SELECT order_ext.archive('30 days', 1000)" >"$out" 2>&1 &
		apid=$!
		for ((t = 0; t < w * 10; t++)); do
			sleep 0.1
			kill -0 "$apid" 2>/dev/null || break
		done
		"${q[@]}" -c "SELECT pg_catalog.pg_cancel_backend(pid) FROM pg_catalog.pg_stat_activity
		              WHERE query LIKE 'SELECT order_ext.archive(%' AND pid <> pg_catalog.pg_backend_pid()" >/dev/null
		rc=0
		wait "$apid" || rc=$?
		b=$(archive_bench_now)
		echo "$a $b busy" >>"$marks"
		ilv_secs=$(awk -v x="$ilv_secs" -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", x + b - a }')
		[ "$rc" = 0 ] && break
		grep -q 'canceling statement due to user request' "$out" ||
			{ echo "archive() failed: $(cat "$out")"; kill "$pgb"; rm -rf "$logdir"; return 1; }
	done
	# the lines still in pgbench's buffers when it is stopped are from after the last window
	sleep 2
	kill "$pgb" 2>/dev/null
	wait "$pgb" 2>/dev/null
	read -r ilv_idle ilv_n < <(archive_bench_window_p99 "$logdir" "$marks" idle)
	read -r ilv_busy n_busy < <(archive_bench_window_p99 "$logdir" "$marks" busy)
	ilv_n="$ilv_n / $n_busy"
	ilv_moved=$("${q[@]}" -c "SELECT count(*) FROM order_ext.orders_history WHERE order_id >= order_ext.min_order_id('2024-03-01')")
	rm -rf "$logdir"
}

# Seconds since the epoch, with fractions.
archive_bench_now() { date +%s.%N; }

archive_bench() {
	local n=${BENCH_ARCHIVE_ORDERS:-1000000} t0 t1 moved whole_s batch_s rate p99_idle p99_busy ratio apid out
	local q=(oe_psql "$DIR" "$PORT" -q -At -d postgres)
	out=$(mktemp)

	echo "archive: building January 2024, $n finished orders ..."
	"${q[@]}" -v month=2024-01-01 -v n="$n" -v open=0 -f "$BENCH/archive_month.sql" >/dev/null
	"${q[@]}" -c "VACUUM ANALYZE" -c CHECKPOINT
	t0=$(archive_bench_now)
	moved=$("${q[@]}" -c "SELECT order_ext.archive('30 days', 1000)")
	t1=$(archive_bench_now)
	whole_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	echo "archive: whole-month path moved $moved orders in $whole_s s"

	echo "archive: building February 2024, $n orders, one left open ..."
	"${q[@]}" -v month=2024-02-01 -v n="$n" -v open=1 -f "$BENCH/archive_month.sql" >/dev/null
	"${q[@]}" -c "VACUUM ANALYZE" -c CHECKPOINT
	p99_idle=$(archive_bench_p99)
	echo "archive: create_order p99 without archiving: $p99_idle ms"

	t0=$(archive_bench_now)
	"${q[@]}" -c "SELECT order_ext.archive('30 days', 1000)" >"$out" 2>&1 &
	apid=$!
	p99_busy=$(archive_bench_p99)
	wait "$apid" || { echo "archive() failed: $(cat "$out")"; rm -f "$out"; return 1; }
	t1=$(archive_bench_now)
	moved=$(cat "$out")
	rm -f "$out"
	batch_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	rate=$(awk -v m="$moved" -v s="$batch_s" 'BEGIN { printf "%.0f", m / s }')
	ratio=$(awk -v a="$p99_idle" -v b="$p99_busy" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
	echo "archive: batch path moved $moved orders in $batch_s s; create_order p99 during it: $p99_busy ms"

	echo "archive: building March 2024, $n orders, one left open ..."
	"${q[@]}" -c "VACUUM" >/dev/null
	"${q[@]}" -v month=2024-03-01 -v n="$n" -v open=1 -f "$BENCH/archive_month.sql" >/dev/null
	"${q[@]}" -c "VACUUM ANALYZE" -c CHECKPOINT
	echo "archive: interleaved windows of ${BENCH_ARCHIVE_WINDOW:-5} s, archiving and idle ..."
	archive_bench_interleaved || return 1
	local ilv_ratio ilv_rate
	ilv_ratio=$(awk -v a="$ilv_idle" -v b="$ilv_busy" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
	ilv_rate=$(awk -v m="$ilv_moved" -v s="$ilv_secs" 'BEGIN { printf "%.0f", m / s }')
	echo "archive: interleaved: $ilv_moved orders in $ilv_secs s of archive windows; p99 idle $ilv_idle ms, archiving $ilv_busy ms"

	ARCHIVE_TABLE=$(
		printf '%s\n' "archiving, $n orders a month, pgbench create_order at ${BENCH_ARCHIVE_RATE:-200}/s with $CLIENTS clients:"
		printf '  %-44s %10s   %s\n' "whole-month path (detach/attach), seconds" "$whole_s" "(goal < 1)"
		printf '  %-44s %10s   %s\n' "batch path, orders archived per second" "$rate" "(goal >= 20000)"
		printf '  %-44s %10s   %s\n' "create_order p99 ms: idle / during batches" "$p99_idle / $p99_busy" ""
		printf '  %-44s %10s   %s\n' "p99 ratio (during / idle)" "$ratio" "(goal <= 1.5)"
		printf '%s\n' "interleaved: ${BENCH_ARCHIVE_WINDOW:-5} s archive windows (archive() cancelled, then resumed) and idle windows, one pgbench run:"
		printf '  %-44s %10s   %s\n' "orders archived per second inside windows" "$ilv_rate" "(restarts included)"
		printf '  %-44s %10s   %s\n' "create_order p99 ms: idle / archiving" "$ilv_idle / $ilv_busy" "(n = $ilv_n)"
		printf '  %-44s %10s   %s\n' "p99 ratio (archiving / idle windows)" "$ilv_ratio" "(goal <= 1.5)"
	)
	echo
	echo "$ARCHIVE_TABLE"
}
