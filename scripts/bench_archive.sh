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
# 3. the same p99 ratio, interleaved, what order_ext.archive_pause buys, and
#    what the C mover buys over the SQL statements it replaced:
#    a third month (BENCH_ARCHIVE_ILV_ORDERS, default twice as many orders)
#    is archived in windows of BENCH_ARCHIVE_WINDOW
#    (default 3) seconds, archive() being cancelled at the end of each window
#    and called again after an idle window of the same length, with the pauses
#    of BENCH_ARCHIVE_PAUSES (default "10 10:0/1000 100 sql10 floor none" ms;
#    N: pause N with the server's rests, order_ext.archive_rest's default
#    unless set; sqlN: the same with order_ext.archive_statements on; N:R/E:
#    pause N with rests of R us after every E us of work, N:0/E without
#    rests; floor: no archive() but
#    test/bench/probe/cpu_share.c keeping the CPU the archiver keeps to busy,
#    at its nice and with its yield check: what any archiver that uses one
#    of the machine's CPUs costs create_order here; floor-stream: the same,
#    writing a byte of every cache line of 128 MB round and round, the
#    memory traffic of moving rows without the rows; floor-io: the floor,
#    while another process writes a file at the archiver's WAL rate with
#    the WAL writer's flushes, the I/O without the rows; floor-idle: the
#    floor at SCHED_IDLE; none: a window with
#    nothing in it, the method's own noise) in turn, while one pgbench
#    run goes on throughout; per pause, orders archived per second inside its
#    windows and p99 of the transactions inside them divided by p99 of those
#    inside idle windows, with the interval it fell in over 90% of 400
#    resamples of the run's windows (test/bench/window_p99.pl: how sure
#    one run is of it); and that ratio again without pgbench's schedule lag
#    (pgbench runs on the same two CPUs, and its threads waking late while
#    the archiver has one CPU count in its latencies before the call is even
#    sent). On a shared 2-CPU virtual machine the idle p99 alone
#    swings by 2x from one half-minute to the next; interleaving puts every
#    side in the same weather. It also exercises cancel-and-resume under load.
# BENCH_ARCHIVE_KEEP=DIR keeps the interleaved section's pgbench logs (tx.*)
# and its windows (marks: "start end kind") in DIR, for a closer look.
# Goals (issue 6): whole month < 1 s; batch >= 20,000 orders/s; p99 ratio <= 1.5.

ARCHIVE_WINDOW=${BENCH_ARCHIVE_WINDOW:-3}
ARCHIVE_PAUSES=${BENCH_ARCHIVE_PAUSES:-10 10:0/1000 100 sql10 floor none}

# $1 / $2 printed with format $3; 0 when $2 is 0.
archive_bench_div() {
	awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { printf f, (b > 0 ? a / b : 0) }'
}

# p99 latency (ms) of create_order at a steady rate for BENCH_ARCHIVE_SECONDS.
archive_bench_p99() {
	local logdir
	logdir=$(mktemp -d)
	"$OE_PGBIN/pgbench" -h "$DIR" -p "$PORT" -U postgres -n -M prepared -c "$CLIENTS" -j "$JOBS" \
		-R "${BENCH_ARCHIVE_RATE:-200}" -T "${BENCH_ARCHIVE_SECONDS:-20}" \
		-f "$BENCH/create_order.ours.sql" --log --log-prefix="$logdir/tx" postgres >/dev/null 2>&1 ||
		{ rm -rf "$logdir"; return 1; }
	archive_bench_latencies "$logdir" | perl "$BENCH/window_p99.pl" - all | cut -d' ' -f1
	rm -rf "$logdir"
}

# "p99_ms n low high" of the transactions of pgbench logs $1/tx.* whose end
# falls inside the windows of $2 (lines "start end kind") of kind $3, skipping
# each window's first 0.2 s: their p99 and count, and where the ratio of that
# p99 to the idle windows' fell over 90% of resamples of the windows
# (test/bench/window_p99.pl; "- -" for kind idle). With $4 = nolag, of their
# latencies less pgbench's schedule lag (field 7 with -R: how late pgbench
# started the transaction, its own threads waking late), so from the call
# being sent to its answer, and without the interval.
archive_bench_window_p99() {
	archive_bench_latencies "$1" "${4:-}" |
		perl "$BENCH/window_p99.pl" "$2" "$3" "$([ -n "${4:-}" ] && echo 0 || echo 400)"
}

# "epoch_seconds latency_us" of every transaction in pgbench's logs in $1;
# without the schedule lag if $2 is not empty.
archive_bench_latencies() {
	cat "$1"/tx.* | awk -v nolag="${2:-}" '{ printf "%d.%06d %d\n", $5, $6, $3 - (nolag != "" ? $7 : 0) }'
}

# Interleaved windows (3. above) over the month being built with one order
# left open, one archive window per pause of BENCH_ARCHIVE_PAUSES in turn, each
# after an idle window. Sets ilv_idle and ilv_n (p99 ms and samples of the idle
# windows) and, per pause P, ilv_p99[P], ilv_cnt[P], ilv_moved[P] and
# ilv_secs[P] (time inside its archive windows); ilv_idle_nolag and
# ilv_nolag[P] are the p99s without pgbench's schedule lag; ilv_lo[P] and
# ilv_hi[P] bound P's ratio (test/bench/window_p99.pl).
declare -A ilv_p99 ilv_cnt ilv_moved ilv_secs ilv_nolag ilv_lo ilv_hi
archive_bench_interleaved() {
	local w=$ARCHIVE_WINDOW logdir marks pgb a b rc i apid out pause h0 h1 done=0
	local q=(oe_psql "$DIR" "$PORT" -q -At -d postgres)
	local pauses=($ARCHIVE_PAUSES)
	local count="SELECT count(*) FROM order_ext.orders_history WHERE order_id >= order_ext.min_order_id('2024-03-01')"
	logdir=$(mktemp -d)
	if [[ " ${pauses[*]} " == *" floor"* ]]; then
		ARCHIVE_PROBE=$logdir/cpu_share
		cc -O2 -o "$ARCHIVE_PROBE" "$BENCH/probe/cpu_share.c" || { rm -rf "$logdir"; return 1; }
	fi
	marks=$logdir/marks
	out=$logdir/out
	: >"$marks"
	for pause in "${pauses[@]}"; do
		ilv_moved[$pause]=0
		ilv_secs[$pause]=0
	done
	"$OE_PGBIN/pgbench" -h "$DIR" -p "$PORT" -U postgres -n -M prepared -c "$CLIENTS" -j "$JOBS" \
		-R "${BENCH_ARCHIVE_RATE:-200}" -T 7200 \
		-f "$BENCH/create_order.ours.sql" --log --log-prefix="$logdir/tx" postgres >/dev/null 2>&1 &
	pgb=$!
	sleep 3
	for ((i = 0; i < 3000 && done == 0; i++)); do
		pause=${pauses[i % ${#pauses[@]}]}
		h0=$("${q[@]}" -c "$count")
		a=$(archive_bench_now)
		sleep "$w"
		echo "$a $(archive_bench_now) idle" >>"$marks"
		a=$(archive_bench_now)
		if [ "$pause" = none ]; then
			sleep "$w" &	# nothing at all: the windows' own noise
		elif [[ $pause == floor* ]]; then
			# no database work: the CPU the archiver keeps to, kept busy as it does
			setsid "$ARCHIVE_PROBE" hog "$(($(nproc) - 1))" "$w" "$(archive_bench_floor_mode "$pause")" >"$out" 2>&1 &
		else
			PGOPTIONS=$(archive_bench_options "$pause" "$w") \
				"${q[@]}" -c "SELECT order_ext.archive('30 days', 1000)" >"$out" 2>&1 &
		fi
		apid=$!
		# archive() ends itself at the window's end (statement_timeout): no
		# polling and no cancelling session inside the window, which idle
		# windows would not have (the variant none measures what is left)
		rc=0
		wait "$apid" || rc=$?
		b=$(archive_bench_now)
		echo "$a $b p$pause" >>"$marks"
		ilv_secs[$pause]=$(awk -v x="${ilv_secs[$pause]}" -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", x + b - a }')
		if [[ $pause == floor* || $pause == none ]]; then
			[ "$rc" = 0 ] || { echo "the $pause window failed: $(cat "$out")"; kill "$pgb"; rm -rf "$logdir"; return 1; }
			continue
		fi
		h1=$("${q[@]}" -c "$count")
		ilv_moved[$pause]=$((ilv_moved[$pause] + h1 - h0))
		if [ "$rc" = 0 ]; then
			done=1
		elif ! grep -q 'canceling statement due to statement timeout' "$out"; then
			echo "archive() failed: $(cat "$out")"
			kill "$pgb"
			rm -rf "$logdir"
			return 1
		fi
	done
	# the lines still in pgbench's buffers when it is stopped are from after the last window
	sleep 2
	kill "$pgb" 2>/dev/null
	wait "$pgb" 2>/dev/null
	read -r ilv_idle ilv_n _ _ < <(archive_bench_window_p99 "$logdir" "$marks" idle)
	read -r ilv_idle_nolag _ _ _ < <(archive_bench_window_p99 "$logdir" "$marks" idle nolag)
	for pause in "${pauses[@]}"; do
		read -r "ilv_p99[$pause]" "ilv_cnt[$pause]" "ilv_lo[$pause]" "ilv_hi[$pause]" \
			< <(archive_bench_window_p99 "$logdir" "$marks" "p$pause")
		read -r "ilv_nolag[$pause]" _ _ _ < <(archive_bench_window_p99 "$logdir" "$marks" "p$pause" nolag)
	done
	if [ -n "${BENCH_ARCHIVE_KEEP:-}" ]; then
		mkdir -p "$BENCH_ARCHIVE_KEEP" && cp "$logdir"/tx.* "$marks" "$BENCH_ARCHIVE_KEEP"/
	fi
	rm -rf "$logdir"
}

# The session options of interleaved variant $1 in windows of $2 seconds: "N"
# is order_ext.archive_pause N ms with the mover, "sqlN" the same with the SQL
# statements, "N:R/E" pause N ms with rests of R us after every E us of work
# (order_ext.archive_rest, archive_rest_every); statement_timeout cancels
# archive() at the window's end.
archive_bench_options() {
	local rest
	case $1 in
	sql*) echo "-c order_ext.archive_pause=${1#sql} -c order_ext.archive_statements=on -c statement_timeout=${2}s" ;;
	*:*/*)
		rest=${1#*:}
		echo "-c order_ext.archive_pause=${1%%:*} -c order_ext.archive_rest=${rest%/*}" \
			"-c order_ext.archive_rest_every=${rest#*/} -c statement_timeout=${2}s"
		;;
	*) echo "-c order_ext.archive_pause=$1 -c statement_timeout=${2}s" ;;
	esac
}

# The row label of an interleaved variant.
archive_bench_label() {
	case $1 in
	none) echo "none: a window with nothing in it" ;;
	floor) echo "floor: one CPU kept busy, no archiving" ;;
	floor-stream) echo "floor, writing 128 MB round and round" ;;
	floor-io) echo "floor, and 56 MB/s written and flushed" ;;
	floor-idle) echo "floor at SCHED_IDLE" ;;
	sql*) echo "archive_pause ${1#sql} ms, SQL statements" ;;
	*:0/*) echo "archive_pause ${1%%:*} ms, no rests" ;;
	*:*/*) echo "archive_pause ${1%%:*} ms, rest ${1#*:} us" ;;
	*) echo "archive_pause $1 ms, rests as set" ;;
	esac
}

# The probe's hog mode of a floor variant: floor yields as the archiver does,
# floor-stream also writes memory as it goes, floor-io has a file written and
# flushed meanwhile, floor-idle yields at SCHED_IDLE (any waking task
# preempts it, and the kernel places waking tasks on its CPU as on an idle one).
archive_bench_floor_mode() {
	case $1 in
	floor) echo yield ;;
	floor-stream) echo stream-yield ;;
	floor-io) echo io-yield ;;
	floor-idle) echo idle-yield ;;
	*) echo "unknown variant $1" >&2; return 1 ;;
	esac
}

# Seconds since the epoch, with fractions.
archive_bench_now() { date +%s.%N; }

archive_bench() {
	local n=${BENCH_ARCHIVE_ORDERS:-1000000} ilv_n_orders t0 t1 moved whole_s batch_s rate p99_idle p99_busy ratio apid out
	local q=(oe_psql "$DIR" "$PORT" -q -At -d postgres)
	out=$(mktemp)
	# the interleaved month: enough for a dozen windows of every variant
	ilv_n_orders=${BENCH_ARCHIVE_ILV_ORDERS:-$((2 * n))}

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
	rate=$(archive_bench_div "$moved" "$batch_s" %.0f)
	ratio=$(archive_bench_div "$p99_busy" "$p99_idle" %.2f)
	echo "archive: batch path moved $moved orders in $batch_s s; create_order p99 during it: $p99_busy ms"

	echo "archive: building March 2024, $ilv_n_orders orders, one left open ..."
	"${q[@]}" -c "VACUUM" >/dev/null
	"${q[@]}" -v month=2024-03-01 -v n="$ilv_n_orders" -v open=1 -f "$BENCH/archive_month.sql" >/dev/null
	"${q[@]}" -c "VACUUM ANALYZE" -c CHECKPOINT
	echo "archive: interleaved windows of $ARCHIVE_WINDOW s, idle and archiving with pauses of $ARCHIVE_PAUSES ms in turn ..."
	archive_bench_interleaved || return 1
	local pause ilv_rows=""
	for pause in $ARCHIVE_PAUSES; do
		echo "archive: interleaved, $(archive_bench_label "$pause"): ${ilv_moved[$pause]} orders in ${ilv_secs[$pause]} s of its windows; p99 idle $ilv_idle ms, in its windows ${ilv_p99[$pause]} ms"
		if [ "${ilv_cnt[$pause]:-0}" = 0 ]; then
			# the month ran out before this variant's first window
			ilv_rows+=$(printf '  %-44s %10s %10s %12s %12s   %s' "$(archive_bench_label "$pause")" - - - - \
				"(no window: the month was archived before its turn; raise BENCH_ARCHIVE_ILV_ORDERS)")$'\n'
			continue
		fi
		ilv_rows+=$(printf '  %-44s %10s %10s %12s %12s   %s' \
			"$(archive_bench_label "$pause")" \
			"$(archive_bench_div "${ilv_moved[$pause]}" "${ilv_secs[$pause]}" %.0f)" \
			"$(archive_bench_div "${ilv_p99[$pause]}" "$ilv_idle" %.2f)" \
			"${ilv_lo[$pause]}-${ilv_hi[$pause]}" \
			"$(archive_bench_div "${ilv_nolag[$pause]}" "$ilv_idle_nolag" %.2f)" \
			"(p99 ${ilv_p99[$pause]} ms, ${ilv_nolag[$pause]} without lag, n = ${ilv_cnt[$pause]})")$'\n'
	done

	ARCHIVE_TABLE=$(
		printf '%s\n' "archiving, $n orders a month, pgbench create_order at ${BENCH_ARCHIVE_RATE:-200}/s with $CLIENTS clients:"
		printf '  %-44s %10s   %s\n' "whole-month path (detach/attach), seconds" "$whole_s" "(goal < 1)"
		printf '  %-44s %10s   %s\n' "batch path, orders archived per second" "$rate" "(goal >= 20000)"
		printf '  %-44s %10s   %s\n' "create_order p99 ms: idle / during batches" "$p99_idle / $p99_busy" ""
		printf '  %-44s %10s   %s\n' "p99 ratio (during / idle)" "$ratio" "(goal <= 1.5)"
		printf '%s\n' "interleaved: $ARCHIVE_WINDOW s archive windows (archive() cancelled, then resumed), each after an idle window, one pgbench run;"
		printf '%s\n' "idle windows' create_order p99 $ilv_idle ms ($ilv_idle_nolag without pgbench's schedule lag; n = $ilv_n); per order_ext.archive_pause:"
		printf '  %-44s %10s %10s %12s %12s\n' "" "orders/s" "p99 ratio" "90% interval" "without lag"
		printf '%s' "$ilv_rows"
		printf '  %-44s\n' "(orders/s inside windows, restarts included; p99 ratio = archiving / idle windows, goal <= 1.5;"
		printf '  %-44s\n' " 90% interval: where the ratio fell in 90% of 400 resamples of the run's windows (test/bench/window_p99.pl);"
		printf '  %-44s\n' " without lag: the same, less the schedule lag pgbench logs (its threads starting a transaction late))"
	)
	echo
	echo "$ARCHIVE_TABLE"
}
