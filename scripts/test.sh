#!/usr/bin/env bash
# scripts/test.sh — the whole order_ext test suite on a throw-away cluster.
#
#     bash scripts/test.sh          (as root; CI runs it through .ci/run)
#
# 1. installs missing Debian packages, builds (-Wall -Wextra -Werror) and
#    installs the extension;
# 2. copies the working tree (no .git, no build products) to
#    /tmp/order_ext_test/work, owned by postgres, because the test tools write
#    results/, output_iso/ and tmp_check/ next to the tests;
# 3. starts a cluster in /tmp/order_ext_test/cluster on port 54321 with
#    shared_preload_libraries = 'pg_cron,order_ext';
# 4. runs, as the postgres OS user, each suite whatever happened to the one
#    before:
#      a. pg_regress           sql/*.sql against expected/*.out
#      b. pg_isolation_regress test/isolation/specs/*.spec
#      c. prove                test/t/*.pl (TAP; they start their own clusters)
#      d. pg_prove             test/pgtap/*.sql (pgTAP; a fresh database each)
#    The test lists and options come from the Makefile (REGRESS, REGRESS_OPTS,
#    ISOLATION, ISOLATION_OPTS, PROVE_TESTS), so this script and
#    `make installcheck` run the same thing.
# 5. prints why things failed (diffs, TAP logs), stops the cluster, and ends
#    with exactly one line "N passed, N failed" — nothing after it. The exit
#    status is non-zero when anything failed or when no test ran at all.
#
# Counting: one per pg_regress test file, one per isolation spec, one per TAP
# assertion ("ok N" / "not ok N" lines of prove -v; a TODO counts as passed, a
# skip counts as neither) and the same for pgTAP assertions. A TAP or pgTAP
# file that dies or breaks its plan with no failed assertion adds one failure.
#
# The work tree is kept after the run for a look at results/ and the logs;
# the next run removes it. Environment: OE_SUITE_TIMEOUT (seconds, default
# 1800) bounds each pg_regress/isolation run and each TAP or pgTAP file.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null	# CI has no stdin; nothing here may wait for one

BASE=${OE_TMP}_test
CLUSTER=$BASE/cluster
WORK=$BASE/work
LOGS=$BASE/logs
PORT=$((OE_PORT_BASE + 0))
SUITE_TIMEOUT=${OE_SUITE_TIMEOUT:-1800}
# What the tests' own processes see: PostgreSQL 15 first, nothing from root's home.
TEST_PATH=$OE_PGBIN:/usr/local/bin:/usr/bin:/bin

PASSED=0
FAILED=0
FINISHED=0
SUMMARY=()	# one line per suite
FAILURES=()	# what failed, one entry each

# Final words, printed by lib.sh's EXIT trap after the cluster is gone, so
# the summary is the last line whatever happened before.
oe_after_cleanup() {
	local rc=$1
	oe_stop_leftovers "$WORK/tmp_check"	# TAP clusters, if we were interrupted
	if [ "$FINISHED" != 1 ]; then
		echo "test.sh stopped early (exit status $rc); counting that as a failure"
		FAILED=$((FAILED + 1))
	fi
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ] && [ $((PASSED + FAILED)) -gt 0 ]
}

heading() { printf '\n=== %s ===\n' "$*"; }

# record SUITE PASSED FAILED [note]
record() {
	PASSED=$((PASSED + $2))
	FAILED=$((FAILED + $3))
	SUMMARY+=("$(printf '%-12s %4d passed, %4d failed  %s' "$1" "$2" "$3" "${4:-}")")
}

# A Makefile variable as the Makefile (and PGXS) define it, e.g. REGRESS_OPTS.
# Should make be unable to read the Makefile, the values it had when this
# script was written.
make_var() {
	# shellcheck disable=SC2016  # $(info …) is make syntax, not shell
	if (cd "$WORK" && make -s --no-print-directory -f Makefile \
		-f <(printf 'oe-print-%%:\n\t@:$(info $($*))\n') \
		PG_CONFIG="$OE_PG_CONFIG" "oe-print-$1" 2>/dev/null); then
		return 0
	fi
	echo "warning: make could not read the Makefile; using default $1" >&2
	case $1 in
	REGRESS) work_glob 'sql/*.sql' | sed 's|^sql/||; s|\.sql$||' ;;
	REGRESS_OPTS) echo "--inputdir=. --load-extension=pgtap --dbname=contrib_regression" ;;
	ISOLATION) work_glob 'test/isolation/specs/*.spec' | sed 's|.*/||; s|\.spec$||' ;;
	ISOLATION_OPTS) echo "--inputdir=test/isolation --dbname=isolation_regression" ;;
	PROVE_TESTS) work_glob 'test/t/*.pl' ;;
	esac
}

# Files matching a glob under $WORK, one per line, sorted ("" if none).
work_glob() { (cd "$WORK" && shopt -s nullglob && for f in $1; do echo "$f"; done | sort); }

# The value of --NAME=VALUE among the given options, or the default $2.
opt_value() {
	local name=$1 value=$2 o
	shift 2
	for o in "$@"; do
		case $o in "--$name="*) value=${o#--"$name"=} ;; esac
	done
	echo "$value"
}

# The status word pg_regress printed for test $2 in log $1 ("ok", "FAILED",
# "failed"), or nothing if the test never ran. PostgreSQL 15 prints
#   test ids                          ... ok           23 ms
# (or "     name ... ok" inside a parallel group).
regress_status() {
	awk -v t="$2" '{ for (i = 1; i < NF - 1; i++) if ($i == t && $(i + 1) == "...") { print $(i + 2); exit } }' "$1"
}

# Counts from TAP output in $1: prints "PASSED FAILED SKIPPED". Only top-level
# test lines count (subtest lines are indented and summed in their parent).
tap_counts() {
	awk '
		/^ok [0-9]+/     { if (tolower($0) ~ /# *skip/) s++; else p++; next }
		/^not ok [0-9]+/ { if (tolower($0) ~ /# *todo/) p++; else f++; next }
		END { printf "%d %d %d\n", p, f, s }
	' "$1"
}

# Print at most $2 lines of file $1, saying so when it is cut.
show_file() {
	local file=$1 max=$2 n
	[ -f "$file" ] || return 0
	n=$(wc -l <"$file")
	echo "----- $file ($n lines) -----"
	head -n "$max" "$file"
	[ "$n" -le "$max" ] || echo "----- (cut at $max lines; the whole file is $file) -----"
}

# Expected output files that do not exist yet make pg_regress abort the whole
# run ("diff command failed"). Give each an empty one in the work copy, so the
# test fails on its own, its whole output shows as the diff, and results/ holds
# the file to review and copy into expected/.
stub_missing_expected() {
	local dir=$1 t
	shift
	for t in "$@"; do
		if [ ! -f "$WORK/$dir/$t.out" ]; then
			echo "note: $dir/$t.out does not exist: $t fails and its whole output shows as the diff"
			oe_as_postgres mkdir -p "$WORK/$dir"
			oe_as_postgres touch "$WORK/$dir/$t.out"
		fi
	done
}

# run_pg_regress SUITE TOOL DIFFS_FILE OPTS_VAR TESTS_VAR [extra options]
# Runs one pg_regress-style tool over the tests the Makefile lists, counts one
# per test, and prints the diffs on failure.
run_pg_regress() {
	local suite=$1 tool=$2 diffs=$3 opts_var=$4 tests_var=$5
	shift 5
	local tests=() opts=() t st p=0 f=0 log="$LOGS/$suite.log" inputdir
	read -ra tests <<<"$(make_var "$tests_var" | tr '\n' ' ')"
	read -ra opts <<<"$(make_var "$opts_var")"
	opts+=("$@")
	heading "$suite (${#tests[@]} tests)"
	if [ ${#tests[@]} -eq 0 ]; then
		echo "no tests"
		record "$suite" 0 0 "(no tests)"
		return 0
	fi
	inputdir=$(opt_value inputdir . "${opts[@]}")
	stub_missing_expected "$inputdir/expected" "${tests[@]}"
	(cd "$WORK" && oe_as_postgres env PATH="$TEST_PATH" \
		timeout --foreground -k 30 "$SUITE_TIMEOUT" "$tool" --bindir="$OE_PGBIN" \
		--host="$CLUSTER" --port="$PORT" "${opts[@]}" "${tests[@]}") 2>&1 |
		tee "$log" || true
	for t in "${tests[@]}"; do
		st=$(regress_status "$log" "$t")
		if [ "$st" = ok ]; then
			p=$((p + 1))
		else
			f=$((f + 1))
			FAILURES+=("$suite: $t (${st:-did not run})")
		fi
	done
	record "$suite" "$p" "$f"
	if [ "$f" -gt 0 ]; then
		show_file "$WORK/$diffs" 1000
	fi
}

# run_tap_files SUITE FILE... — runs each file with the command in
# the array TAP_CMD (file appended), counts its assertions, shows logs on failure.
run_tap_files() {
	local suite=$1 f name log rc p f_ s tp=0 tf=0 ts=0
	shift
	heading "$suite ($# files)"
	if [ $# -eq 0 ]; then
		echo "no tests"
		record "$suite" 0 0 "(no tests)"
		return 0
	fi
	for f in "$@"; do
		name=$(basename "$f")
		name=${name%.*}
		log="$LOGS/$suite-$name.log"
		[ -n "${TAP_BEFORE_EACH:-}" ] && "$TAP_BEFORE_EACH"
		rc=0
		(cd "$WORK" && oe_as_postgres timeout --foreground -k 30 "$SUITE_TIMEOUT" "${TAP_CMD[@]}" "$f") \
			>"$log" 2>&1 || rc=$?
		read -r p f_ s <<<"$(tap_counts "$log")"
		if [ "$rc" -ne 0 ] && [ "$f_" -eq 0 ]; then
			f_=1	# died, bad plan or timed out without a failed assertion
			FAILURES+=("$suite: $f (exit status $rc, no failed assertion: died, bad plan or timeout)")
		elif [ "$f_" -gt 0 ]; then
			FAILURES+=("$suite: $f ($f_ failed)")
		fi
		printf '%-40s %4d passed, %4d failed, %d skipped (%s)\n' "$f" "$p" "$f_" "$s" \
			"$([ "$rc" -eq 0 ] && echo ok || echo "exit $rc")"
		tp=$((tp + p))
		tf=$((tf + f_))
		ts=$((ts + s))
		if [ "$f_" -gt 0 ]; then
			show_file "$log" 300
			[ -n "${TAP_AFTER_FAILURE:-}" ] && "$TAP_AFTER_FAILURE" "$name"
		fi
	done
	record "$suite" "$tp" "$tf" "$([ "$ts" -gt 0 ] && echo "($ts skipped)")"
}

# After a failed TAP file: the tails of its own log and of its servers' logs.
tap_logs() {
	local name=$1 l
	for l in "$WORK/tmp_check/log/regress_log_$name" "$WORK/tmp_check/log/${name}"_*.log; do
		[ -f "$l" ] || continue
		echo "----- tail of $l -----"
		tail -n 80 "$l"
	done
}

# Before each pgTAP file: a fresh database (the files create what they need).
fresh_pgtap_db() {
	oe_psql "$CLUSTER" "$PORT" -q -d postgres \
		-c 'DROP DATABASE IF EXISTS oe_pgtap' -c 'CREATE DATABASE oe_pgtap' >/dev/null 2>&1 ||
		echo "warning: could not recreate database oe_pgtap"
}

# ---------------------------------------------------------------------------
heading "setup"
SECONDS=0
# Whatever an earlier run left: its cluster, TAP clusters of a killed run, files.
oe_stop_leftovers "$BASE"
rm -rf "$BASE"
mkdir -p "$BASE"
chown "$OE_OS_USER:" "$BASE"
install -d -o "$OE_OS_USER" "$LOGS"

oe_ensure_deps
echo "build and install (log: $LOGS/build.log)"
if ! oe_build_install "$LOGS/build.log"; then
	FAILURES+=("build: make or make install failed (-Wall -Wextra -Werror)")
	record build 0 1
	FINISHED=1
	exit 1
fi

# The working tree without .git and build products: the files git would see
# (tracked or untracked, not ignored); a plain copy when this is not a checkout.
echo "copying the working tree to $WORK"
mkdir -p "$WORK"
if git -C "$OE_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$OE_ROOT" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done |
		tar --null -T - -cf -) | tar -C "$WORK" -xf -
else
	tar -C "$OE_ROOT" --anchored --exclude=./.git --exclude='*.o' --exclude='*.so' \
		--exclude='*.bc' --exclude=./results --exclude=./output_iso \
		--exclude=./tmp_check --exclude=./log --exclude=./regression.diffs \
		--exclude=./regression.out --exclude=./test/bench/results -cf - . |
		tar -C "$WORK" -xf -
fi
chown -R "$OE_OS_USER:" "$WORK"

echo "starting a cluster in $CLUSTER on port $PORT"
# pg_cron may only be created in cron.database_name: make that the database
# pg_regress creates, so a regression test can schedule jobs. (Until the
# database exists, the pg_cron launcher logs a FATAL once a second; harmless.)
if ! oe_cluster_start "$CLUSTER" "$PORT" "cron.database_name = 'contrib_regression'"; then
	FAILURES+=("cluster: the server did not start with shared_preload_libraries = '$OE_PRELOAD'")
	record cluster 0 1
	FINISHED=1
	exit 1
fi

# ---------------------------------------------------------------------------
# a. pg_regress (options as `make installcheck` passes them)
run_pg_regress regress "$OE_PG_REGRESS" regression.diffs REGRESS_OPTS REGRESS

# b. isolation (PGXS adds --outputdir=output_iso for installcheck)
run_pg_regress isolation "$OE_PG_ISOLATION_REGRESS" output_iso/regression.diffs \
	ISOLATION_OPTS ISOLATION --outputdir=output_iso

# c. TAP, the way PGXS's prove_installcheck runs it, one prove per file.
mapfile -t tap_files < <(make_var PROVE_TESTS | tr ' ' '\n' | sed '/^$/d')
oe_as_postgres rm -rf "$WORK/tmp_check"
oe_as_postgres mkdir -p "$WORK/tmp_check"
TAP_CMD=(env -u PGPORT -u PGHOST TESTDIR="$WORK" PATH="$TEST_PATH"
	PG_REGRESS="$OE_PG_REGRESS" prove -v -I "$OE_PG_PERL" -I . -I test/t)
TAP_BEFORE_EACH=
TAP_AFTER_FAILURE=tap_logs
run_tap_files tap ${tap_files[@]+"${tap_files[@]}"}
oe_stop_leftovers "$WORK/tmp_check"	# clusters of a TAP file that was killed

# d. pgTAP, against the throw-away cluster, a fresh database per file.
mapfile -t pgtap_files < <(work_glob 'test/pgtap/*.sql')
TAP_CMD=(env PATH="$TEST_PATH" pg_prove -v --psql-bin "$OE_PGBIN/psql"
	-h "$CLUSTER" -p "$PORT" -U postgres -d oe_pgtap)
TAP_BEFORE_EACH=fresh_pgtap_db
TAP_AFTER_FAILURE=
run_tap_files pgtap ${pgtap_files[@]+"${pgtap_files[@]}"}

# ---------------------------------------------------------------------------
# A crashed backend explains many failures at once: show it.
if grep -E 'PANIC|TRAP:|terminated by signal|was terminated by exception' \
	"$CLUSTER/server.log" >"$LOGS/crashes.log" 2>/dev/null; then
	heading "the server crashed during the run"
	head -n 40 "$LOGS/crashes.log"
	echo "(server log: $CLUSTER/server.log is removed with the cluster; copy kept in $LOGS/server.log)"
fi
cp "$CLUSTER/server.log" "$LOGS/server.log" 2>/dev/null || true

heading "summary (${SECONDS}s; work tree and logs kept in $BASE)"
printf '%s\n' "${SUMMARY[@]}"
if [ ${#FAILURES[@]} -gt 0 ]; then
	echo "failed:"
	printf '  %s\n' "${FAILURES[@]}"
fi
[ $((PASSED + FAILED)) -gt 0 ] || echo "no tests ran"
FINISHED=1
# lib.sh's EXIT trap stops the cluster, then oe_after_cleanup prints the last line.
