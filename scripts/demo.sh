#!/usr/bin/env bash
# scripts/demo.sh — order_ext at work, step by step.
#
#     bash scripts/demo.sh          (as root; `make demo` runs it too)
#
# Installs missing packages, builds and installs the extension, starts a
# throw-away cluster in /tmp/order_ext_demo (port 54322; see lib.sh knobs) with
# shared_preload_libraries = 'pg_cron,order_ext', and runs scripts/demo.sql
# with psql echoing every statement before its result. The demo itself lives
# in scripts/demo.sql; extend it there. The cluster is stopped and removed at
# the end, also when the demo fails; running it twice in a row is fine.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

DIR=${OE_TMP}_demo
PORT=$((OE_PORT_BASE + 1))
BUILD_LOG=${OE_TMP}_demo_build.log

oe_ensure_deps
echo "building and installing order_ext (log: $BUILD_LOG) ..."
oe_build_install "$BUILD_LOG" || oe_die "the build failed"
echo "starting a throw-away cluster in $DIR (port $PORT) ..."
oe_cluster_start "$DIR" "$PORT" || oe_die "the server did not start"

# psql -e echoes each statement; stderr (the error the demo provokes) joins
# stdout line-buffered so it shows right under its statement.
rc=0
stdbuf -oL -eL "$OE_PGBIN/psql" -X -h "$DIR" -p "$PORT" -U postgres -d postgres \
	-e -v ON_ERROR_STOP=1 -f "$OE_ROOT/scripts/demo.sql" 2>&1 || rc=$?

if [ "$rc" -ne 0 ]; then
	echo
	echo "The demo stopped early (psql exit status $rc). Last lines of the server log:"
	tail -n 20 "$DIR/server.log" || true
	exit "$rc"
fi
echo
echo "done; stopping and removing the cluster in $DIR"
