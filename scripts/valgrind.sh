#!/usr/bin/env bash
# scripts/valgrind.sh — the pg_regress suite against a server running under
# valgrind (memcheck).  Slow (tens of minutes on two cores); not part of CI.
#
#     bash scripts/valgrind.sh [test ...]   (as root, like scripts/test.sh)
#
# With test names (files of sql/ without .sql) only those run.
# Builds and installs the extension, starts a throw-away cluster whose
# postmaster and every backend run under valgrind (--trace-children=yes,
# --error-exitcode, the suppressions in scripts/valgrind.supp), runs the
# tests of sql/ with the Makefile's REGRESS_OPTS, stops the server and
# reports every valgrind error with its stack.  A backend with a valgrind
# error exits with status 70, which the postmaster treats as a crash, so an
# error also shows as failing tests.
#
# Output: $OE_TMP_valgrind/{regress.log,vg/*.log,errors.txt}; exit status 0
# only if every test passed and valgrind reported nothing.
# Environment as for test.sh (OE_PGPREFIX, OE_TMP, OE_PORT_BASE); the server
# listens on OE_PORT_BASE + 1.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

BASE=${OE_TMP}_valgrind
CLUSTER=$BASE/cluster
VG=$BASE/vg
WORK=$BASE/work
PORT=$((OE_PORT_BASE + 1))
SUPP=$OE_ROOT/scripts/valgrind.supp

oe_stop_leftovers "$BASE"
rm -rf "$BASE"
install -d -o "$OE_OS_USER" "$BASE" "$VG"
OE_DEPS+=(valgrind)
oe_ensure_deps
oe_build_install "$BASE/build.log" || oe_die "build failed (log: $BASE/build.log)"

# the tests write results/ next to themselves: a copy of the tree, owned by postgres
mkdir -p "$WORK"
(cd "$OE_ROOT" && tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - sql expected) |
	tar -C "$WORK" -xf -
chown -R "$OE_OS_USER:" "$WORK"
install -m 644 "$SUPP" "$BASE/valgrind.supp"

# pg_ctl starts "postgres" through this wrapper
cat >"$BASE/postgres" <<WRAP
#!/bin/sh
exec valgrind --quiet --trace-children=yes --error-exitcode=70 \\
	--suppressions=$BASE/valgrind.supp --gen-suppressions=all \\
	--track-origins=yes --read-var-info=no --num-callers=40 --leak-check=no \\
	--log-file=$VG/%p.log $OE_PGBIN/postgres "\$@"
WRAP
chmod 755 "$BASE/postgres"

oe_say "cluster in $CLUSTER (port $PORT), first without valgrind for initdb"
oe_cluster_start "$CLUSTER" "$PORT" "shared_preload_libraries = 'order_ext'" \
	"jit = off" "fsync = off" "autovacuum = off" "max_connections = 20" \
	"shared_buffers = '32MB'" || oe_die "the cluster did not start"
oe_as_postgres "$OE_PGBIN/pg_ctl" -D "$CLUSTER/data" -m fast -w stop >/dev/null
oe_say "starting the server under valgrind (log: $CLUSTER/server.log)"
oe_as_postgres "$OE_PGBIN/pg_ctl" -D "$CLUSTER/data" -l "$CLUSTER/server.log" -p "$BASE/postgres" \
	-w -t 600 start >/dev/null || oe_die "the server did not start under valgrind"

read -ra opts <<<"$(sed -n 's/^REGRESS_OPTS *= *//p' "$OE_ROOT/Makefile")"
if [ $# -gt 0 ]; then
	tests=("$@")
else
	mapfile -t tests < <(cd "$WORK" && ls sql/*.sql | sed 's|^sql/||; s|\.sql$||')
fi
oe_say "pg_regress: ${tests[*]}"
rc=0
SECONDS=0
(cd "$WORK" && oe_as_postgres "$OE_PG_REGRESS" --bindir="$OE_PGBIN" --host="$CLUSTER" --port="$PORT" \
	"${opts[@]}" "${tests[@]}") >"$BASE/regress.log" 2>&1 || rc=$?
cat "$BASE/regress.log"
oe_say "pg_regress took ${SECONDS}s"
oe_as_postgres "$OE_PGBIN/pg_ctl" -D "$CLUSTER/data" -m fast -w -t 600 stop >/dev/null || true
cp "$CLUSTER/server.log" "$BASE/server.log" 2>/dev/null || true
[ -f "$WORK/regression.diffs" ] && cp "$WORK/regression.diffs" "$BASE/"

# every process's log that holds an error, with its stacks
: >"$BASE/errors.txt"
errors=0
for log in "$VG"/*.log; do
	[ -s "$log" ] || continue
	if grep -qE '^==[0-9]+== (Invalid|Conditional|Use of uninitialised|Syscall param|Source and destination|Mismatched|Argument)' "$log"; then
		errors=$((errors + 1))
		{ echo "===== $log"; cat "$log"; } >>"$BASE/errors.txt"
	fi
done
if [ "$errors" -gt 0 ]; then
	oe_say "valgrind: errors in $errors process(es); see $BASE/errors.txt"
	head -n 200 "$BASE/errors.txt"
else
	oe_say "valgrind: no errors ($(find "$VG" -name '*.log' | wc -l) processes)"
fi
[ "$rc" -eq 0 ] || oe_say "pg_regress failed (status $rc); diffs: $BASE/regression.diffs"
[ "$rc" -eq 0 ] && [ "$errors" -eq 0 ]
