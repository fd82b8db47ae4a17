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
# Goals (issue 6): whole month < 1 s; batch >= 20,000 orders/s; p99 ratio <= 1.5.

# p99 latency (ms) of create_order at a steady rate for BENCH_ARCHIVE_SECONDS.
archive_bench_p99() {
	local logdir
	logdir=$(mktemp -d)
	"$OE_PGBIN/pgbench" -h "$DIR" -p "$PORT" -U postgres -n -M prepared -c "$CLIENTS" -j "$JOBS" \
		-R "${BENCH_ARCHIVE_RATE:-200}" -T "${BENCH_ARCHIVE_SECONDS:-20}" \
		-f "$BENCH/create_order.ours.sql" --log --log-prefix="$logdir/tx" postgres >/dev/null 2>&1 ||
		{ rm -rf "$logdir"; return 1; }
	# per-transaction log: field 3 is the latency in microseconds
	cat "$logdir"/tx.* | awk '{ print $3 }' | sort -n |
		awk '{ a[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.2f", a[i] / 1000 }'
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

	ARCHIVE_TABLE=$(
		printf '%s\n' "archiving, $n orders a month, pgbench create_order at ${BENCH_ARCHIVE_RATE:-200}/s with $CLIENTS clients:"
		printf '  %-44s %10s   %s\n' "whole-month path (detach/attach), seconds" "$whole_s" "(goal < 1)"
		printf '  %-44s %10s   %s\n' "batch path, orders archived per second" "$rate" "(goal >= 20000)"
		printf '  %-44s %10s   %s\n' "create_order p99 ms: idle / during batches" "$p99_idle / $p99_busy" ""
		printf '  %-44s %10s   %s\n' "p99 ratio (during / idle)" "$ratio" "(goal <= 1.5)"
	)
	echo
	echo "$ARCHIVE_TABLE"
}
