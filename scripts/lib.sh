# scripts/lib.sh — helpers shared by test.sh, demo.sh and bench.sh.
#
# Source it from a script that runs `set -euo pipefail`:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# What it gives you:
#   oe_ensure_deps                 apt-get install the Debian packages that are missing
#   oe_build_install [LOG]         make -j2 && make install (as root); output to LOG if given
#   oe_cluster_start DIR PORT [conf line ...]
#                                  a throw-away cluster in DIR (data in DIR/data,
#                                  socket in DIR, log in DIR/server.log), run by the
#                                  postgres OS user; stopped and removed when the
#                                  calling script exits, also on failure
#   oe_cluster_stop DIR            stop it (fast) and remove DIR; quiet, idempotent
#   oe_stop_leftovers DIR          stop every postmaster whose data directory lies
#                                  under DIR (TAP clusters left by a killed run)
#   oe_psql DIR PORT [psql args]   psql -X as superuser postgres, ON_ERROR_STOP=1
#   oe_as_postgres CMD ...         run CMD as the postgres OS user
#   oe_say / oe_warn / oe_die      messages
#
# initdb and postgres refuse to run as root, so every server runs as the
# postgres OS user, in a private directory under /tmp with a private socket and
# no TCP listener: nothing touches the machine's own clusters.
#
# Knobs (environment), mainly for working on this harness itself:
#   OE_PRELOAD     shared_preload_libraries (default 'pg_cron,order_ext')
#   OE_SKIP_BUILD  if 1, oe_build_install does nothing
#   OE_PGPREFIX    root of a private copy of PostgreSQL 15 (its usr/lib/postgresql/15,
#                  usr/share/postgresql/15 and usr/include/postgresql), so that two
#                  working copies can build, install and test side by side;
#                  PostgreSQL finds its share and lib directories relative to
#                  its binaries. Empty (the default): the system's installation.
#   OE_TMP         prefix of the scratch directories (default /tmp/order_ext)
#   OE_PORT_BASE   first of the three ports test/demo/bench use (default 54321)

# ---------------------------------------------------------------------------
# Where things are
# ---------------------------------------------------------------------------
# shellcheck disable=SC2034  # the OE_* paths are for the scripts that source this
OE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OE_PGPREFIX=${OE_PGPREFIX:-}	# a relocated copy of PostgreSQL (parallel work); empty = the system's
OE_PGBIN=$OE_PGPREFIX/usr/lib/postgresql/15/bin
OE_PG_CONFIG=$OE_PGBIN/pg_config
OE_PGXS=$OE_PGPREFIX/usr/lib/postgresql/15/lib/pgxs
OE_PG_REGRESS=$OE_PGXS/src/test/regress/pg_regress
OE_PG_ISOLATION_REGRESS=$OE_PGXS/src/test/isolation/pg_isolation_regress
OE_PG_PERL=$OE_PGXS/src/test/perl
OE_OS_USER=postgres
OE_PRELOAD=${OE_PRELOAD:-pg_cron,order_ext}
OE_TMP=${OE_TMP:-/tmp/order_ext}
OE_PORT_BASE=${OE_PORT_BASE:-54321}

# Debian packages the harness needs. A fresh CI machine has only postgresql-15.
OE_DEPS=(
	postgresql-15
	postgresql-server-dev-15
	postgresql-15-pgtap
	postgresql-15-cron
	libtap-parser-sourcehandler-pgtap-perl
	libipc-run-perl
	libfaketime
	make
	gcc
)

# Settings from the caller's environment would leak into psql, pg_regress and
# the TAP tests: every connection here names its host and port explicitly.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGPASSFILE \
	PGSERVICE PGSERVICEFILE PGOPTIONS PGSSLMODE PGTARGETSESSIONATTRS \
	PGCONNECT_TIMEOUT PGDATA PGCLIENTENCODING PGTZ PGDATESTYLE || true
export LANG=C.UTF-8
unset LC_ALL LANGUAGE || true

# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------
oe_say() { printf '%s\n' "$*"; }
oe_warn() { printf '%s\n' "$*" >&2; }
oe_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# Run a command as the postgres OS user (directly if we already are that user).
# The current directory and the environment are kept.
oe_as_postgres() {
	if [ "$(id -un)" = "$OE_OS_USER" ]; then
		"$@"
	else
		runuser -u "$OE_OS_USER" -- "$@"
	fi
}

# Run a command as root (via sudo if we are not root).
oe_as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		oe_warn "need root for: $*"
		return 1
	fi
}

# ---------------------------------------------------------------------------
# Dependencies and build
# ---------------------------------------------------------------------------

# Install the packages of OE_DEPS that are not installed yet (apt-get update
# once, only when something is missing).
oe_ensure_deps() {
	local p missing=()
	for p in "${OE_DEPS[@]}"; do
		if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
			missing+=("$p")
		fi
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	oe_say "installing missing packages: ${missing[*]}"
	oe_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null || return 1
	oe_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" </dev/null || return 1
}

# make -j2 && make install in the repository, against PostgreSQL 15's
# pg_config. The Makefile builds with -Wall -Wextra -Werror, so a warning fails
# here. With LOG, the output goes there and its tail is printed on failure.
oe_build_install() {
	local log=${1:-}
	[ "${OE_SKIP_BUILD:-0}" = 1 ] && return 0
	if [ -z "$log" ]; then
		make -C "$OE_ROOT" -j2 PG_CONFIG="$OE_PG_CONFIG" &&
			oe_as_root make -C "$OE_ROOT" install PG_CONFIG="$OE_PG_CONFIG"
		return
	fi
	if make -C "$OE_ROOT" -j2 PG_CONFIG="$OE_PG_CONFIG" >"$log" 2>&1 &&
		oe_as_root make -C "$OE_ROOT" install PG_CONFIG="$OE_PG_CONFIG" >>"$log" 2>&1; then
		return 0
	fi
	oe_warn "build or install failed; last lines of $log:"
	tail -n 40 "$log" >&2
	return 1
}

# ---------------------------------------------------------------------------
# Throw-away clusters
# ---------------------------------------------------------------------------
OE_CLUSTERS=()	# directories of the clusters this script started

# Stop the postmaster of data directory $1 if one runs there: fast shutdown,
# then immediate, then SIGKILL of the pid in its own postmaster.pid.
oe_stop_datadir() {
	local data=$1 pid
	[ -f "$data/postmaster.pid" ] || return 0
	oe_as_postgres "$OE_PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 && return 0
	oe_as_postgres "$OE_PGBIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 && return 0
	pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
	case $pid in '' | *[!0-9]*) return 0 ;; esac
	kill -KILL "$pid" 2>/dev/null || true
}

# Stop every postmaster whose data directory lies under $1 (for instance the
# clusters of TAP tests that were killed before their END block ran).
oe_stop_leftovers() {
	local top=$1 pidfile
	[ -d "$top" ] || return 0
	while IFS= read -r -d '' pidfile; do
		oe_stop_datadir "$(dirname "$pidfile")"
	done < <(find "$top" -name postmaster.pid -print0 2>/dev/null)
}

# oe_cluster_stop DIR: stop the cluster in DIR and remove DIR. Quiet; fine to
# call when nothing is there.
oe_cluster_stop() {
	local dir=$1 i
	[ -n "$dir" ] && [ "$dir" != / ] || return 1
	oe_stop_datadir "$dir/data"
	rm -rf "$dir"
	for i in "${!OE_CLUSTERS[@]}"; do
		[ "${OE_CLUSTERS[$i]}" = "$dir" ] && unset 'OE_CLUSTERS[i]'
	done
	return 0
}

# oe_cluster_start DIR PORT [conf line ...]
# A fresh cluster in DIR listening only on the socket DIR/.s.PGSQL.PORT.
# Whatever an earlier run left in DIR is stopped and removed first. Extra
# arguments are appended to postgresql.conf as given (later lines win), e.g.
#   oe_cluster_start /tmp/x 54399 "shared_buffers = '1GB'" "max_connections = 200"
oe_cluster_start() {
	local dir=$1 port=$2
	shift 2
	oe_cluster_stop "$dir"
	mkdir -p "$dir" && chown "$OE_OS_USER:" "$dir" && chmod 700 "$dir" || return 1
	if ! oe_as_postgres "$OE_PGBIN/initdb" -D "$dir/data" --auth=trust \
		--username=postgres --encoding=UTF8 --locale=C.UTF-8 \
		>"$dir/initdb.log" 2>&1; then
		oe_warn "initdb failed:"
		cat "$dir/initdb.log" >&2
		return 1
	fi
	{
		echo
		echo "# ---- scripts/lib.sh (order_ext harness) ----"
		echo "port = $port"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		echo "shared_preload_libraries = '$OE_PRELOAD'"
		echo "max_connections = 100"
		echo "max_worker_processes = 16"
		echo "fsync = on"
		echo "lc_messages = 'C'"
		echo "log_line_prefix = '%m [%p] %q%a '"
		echo "log_min_messages = warning"
		local line
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
	OE_CLUSTERS+=("$dir")
	if ! oe_as_postgres "$OE_PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
		-w -t 120 start >"$dir/pg_ctl.log" 2>&1; then
		oe_warn "the server in $dir did not start; last lines of its log:"
		tail -n 30 "$dir/server.log" >&2 || true
		return 1
	fi
}

# oe_psql DIR PORT [psql args ...]: psql as superuser postgres on that cluster,
# without ~/.psqlrc, stopping at the first error (a later -v overrides).
oe_psql() {
	local dir=$1 port=$2
	shift 2
	"$OE_PGBIN/psql" -X -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 "$@"
}

# ---------------------------------------------------------------------------
# Clean-up when the calling script exits, however it exits.
# A script may define oe_after_cleanup (called with the exit status, after the
# clusters are gone) to print last words; it is the last thing that runs.
# ---------------------------------------------------------------------------
oe_on_exit() {
	local rc=$? dir
	trap - EXIT
	set +e
	for dir in "${OE_CLUSTERS[@]}"; do
		oe_cluster_stop "$dir"
	done
	if declare -F oe_after_cleanup >/dev/null; then
		oe_after_cleanup "$rc"
		rc=$?
	fi
	exit "$rc"
}
trap oe_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
