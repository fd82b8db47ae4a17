# The background worker (API.md "Archiving history orders", Background
# worker): a launcher and one worker per database in
# order_ext.worker_databases, visible in pg_stat_activity.backend_type, that
# fires due timers and archives; it comes back after pg_terminate_backend
# (worker or launcher) and after a crash; SIGHUP changes its naptime; each
# run is recorded in worker_runs, a run stopped midway as failed; failed runs
# leave no kept statements behind; it does not block DROP DATABASE, and a
# DROP DATABASE bound to fail does not stop it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use lib 't', 'test/t';
use ArchiveTest;

my $node = archive_node('worker', 'order_ext',
	"order_ext.worker_databases = 'wdb, no_such_db'", "order_ext.naptime = 1");
$node->safe_psql('postgres', 'CREATE DATABASE wdb');
$node->safe_psql('wdb', 'CREATE EXTENSION order_ext');

my $WORKER = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_ext worker' AND datname = 'wdb'};
my $LAUNCHER = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_ext launcher'};
my $RUNS = q{SELECT count(*) FROM order_ext.worker_runs WHERE source = 'worker' AND status = 'succeeded'};

ok(wait_for($node, 'postgres', "SELECT EXISTS ($WORKER)", 30), 'a worker runs for wdb');
is($node->safe_psql('postgres', "SELECT count(*) FROM ($LAUNCHER) l"), 1, 'one launcher, connected to no database');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'order_ext worker'"), 1,
	'one worker in all (no_such_db has none)');
ok(wait_for($node, 'wdb', "SELECT ($RUNS) >= 2", 30), 'runs are recorded in worker_runs');
like($node->safe_psql('wdb', 'SELECT results::text FROM order_ext.worker_runs ORDER BY id DESC LIMIT 1'),
	qr/"archive": 0.*"maintain": 0.*"run_timers": 0/, 'each run records what each job did');
ok($node->log_contains(qr/database "no_such_db" in order_ext.worker_databases does not exist/),
	'a missing database is logged');

# it runs at nice 10, and so does its autogroup (Linux): each postmaster child
# is a session of its own, where the process's nice alone would not rank it
# below the backends
{
	my $wpid = $node->safe_psql('postgres', $WORKER);
	my @stat = split ' ', (slurp_file("/proc/$wpid/stat") =~ s/^.*\) //sr);
	is($stat[16], 10, 'the worker runs at nice 10');
  SKIP:
	{
		skip 'no autogroups on this kernel', 1
		  unless -e "/proc/$wpid/autogroup" && slurp_file('/proc/sys/kernel/sched_autogroup_enabled') =~ /1/;
		like(slurp_file("/proc/$wpid/autogroup"), qr/nice 10$/m, 'and so does its autogroup');
	}
}

# the jobs: a due timer fires, a finished order of an old month is archived
$node->safe_psql('wdb', q{
SELECT order_ext.create_partitions('2024-01-01', '2024-01-01');
SELECT order_ext.create_order(order_ext.min_order_id('2024-01-10'), 1, '[{"sku":"W","qty":1,"unit_price":5}]');
SELECT order_ext.fire(order_ext.min_order_id('2024-01-10'), 'cancel', actor => 'buyer');
CREATE TABLE t AS SELECT order_ext.new_order_id() AS id;
SELECT order_ext.create_order(id, 2, '[{"sku":"W","qty":1,"unit_price":5}]') FROM t;
UPDATE order_ext.timers SET due_at = now() - interval '1 second' WHERE order_id = (SELECT id FROM t);
});
ok(wait_for($node, 'wdb', q{SELECT status = 'cancelled' FROM order_ext.orders WHERE order_id = (SELECT id FROM t)}, 30),
	'the worker fired the due timer (payment timeout)');
ok(wait_for($node, 'wdb', q{SELECT EXISTS (SELECT 1 FROM order_ext.orders_history WHERE order_id = order_ext.min_order_id('2024-01-10'))}, 30),
	'the worker archived the finished order of January 2024');

# worker_runs counts the timers fired, not those handled: one due timer
# fires, a stale one (its order no longer at that version) is dropped
my $marker = $node->safe_psql('wdb', 'SELECT max(id) FROM order_ext.worker_runs');
$node->safe_psql('wdb', q{
CREATE TABLE tc AS SELECT g AS n, order_ext.new_order_id() AS id FROM generate_series(1, 2) g;
SELECT count(*) FROM tc, LATERAL order_ext.create_order(tc.id, 3, '[{"sku":"W","qty":1,"unit_price":5}]') o;
UPDATE order_ext.timers SET due_at = now() - interval '1 second',
                            version = CASE WHEN order_id = (SELECT id FROM tc WHERE n = 2) THEN 7 ELSE version END
WHERE order_id IN (SELECT id FROM tc);
});
ok(wait_for($node, 'wdb', q{SELECT NOT EXISTS (SELECT 1 FROM order_ext.timers WHERE order_id IN (SELECT id FROM tc))}, 30),
	'the worker handled both timers');
my $after = $node->safe_psql('wdb', 'SELECT max(id) FROM order_ext.worker_runs');
ok(wait_for($node, 'wdb', "SELECT EXISTS (SELECT 1 FROM order_ext.worker_runs WHERE id > $after AND finished_at IS NOT NULL)", 30),
	'and a later run finished');
is($node->safe_psql('wdb', "SELECT sum((results->>'run_timers')::int) FROM order_ext.worker_runs WHERE id > $marker"), '1',
	'the runs since count one timer fired (the stale one was dropped, not fired)');
is($node->safe_psql('wdb', q{SELECT string_agg(status, ',' ORDER BY n) FROM tc JOIN order_ext.orders o ON o.order_id = tc.id}),
	'cancelled,pending_payment', 'as the orders show');

# a database owner's defaults do not reach the worker's SQL: the owner (no
# superuser) sets the database's search_path to a schema of its own with an
# = operator on bigint that records who runs it; the worker, connected
# anew below, runs as a superuser and must not run it (it would then run
# anything the owner likes with a superuser's rights)
$node->safe_psql('postgres', 'CREATE ROLE wdb_owner LOGIN; ALTER DATABASE wdb OWNER TO wdb_owner');
$node->safe_psql('wdb', q{
CREATE SCHEMA own AUTHORIZATION wdb_owner;
SET ROLE wdb_owner;
CREATE TABLE own.seen (who name, backend text);
CREATE FUNCTION own.eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO own.seen SELECT current_user, backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid();
  RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR own.= (function = own.eq, leftarg = bigint, rightarg = bigint);
ALTER DATABASE wdb SET search_path = own, pg_catalog;
});
$node->safe_psql('wdb', 'SELECT 1::bigint = 1::bigint');
is($node->safe_psql('wdb', q{SELECT count(*) > 0 FROM own.seen WHERE backend = 'client backend'}), 't',
	'(the owner\'s = runs in a session that connects to wdb)');

# pg_terminate_backend: the worker comes back
my $pid = $node->safe_psql('postgres', $WORKER);
my $stop_from = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(wait_for($node, 'postgres', "SELECT EXISTS ($WORKER) AND NOT EXISTS ($WORKER AND pid = $pid)", 40),
	'after pg_terminate_backend the worker comes back (a new process)');
my $stop_log = slurp_file($node->logfile, $stop_from);
unlike($stop_log, qr/ERROR:\s+canceling statement due to user request/,
	'and its clean stop logged no false ERROR (the cancel its SIGTERM set was raised on the way out)');
my $runs = $node->safe_psql('wdb', $RUNS);
ok(wait_for($node, 'wdb', "SELECT ($RUNS) > $runs", 30), 'and runs again');
is($node->safe_psql('wdb', q{SELECT count(*) FROM own.seen WHERE backend <> 'client backend'}), 0,
	'the new worker ran none of the database owner\'s operators (its search_path is pinned)');
$node->safe_psql('wdb', 'ALTER DATABASE wdb RESET search_path');

# the launcher too (it exits with code 1, so the postmaster restarts it)
my $lpid = $node->safe_psql('postgres', $LAUNCHER);
$pid = $node->safe_psql('postgres', $WORKER);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($lpid)");
ok(wait_for($node, 'postgres', "SELECT EXISTS ($LAUNCHER) AND NOT EXISTS ($LAUNCHER AND pid = $lpid)", 40),
	'after pg_terminate_backend the launcher comes back');
ok(wait_for($node, 'postgres', "SELECT EXISTS ($WORKER) AND NOT EXISTS ($WORKER AND pid = $pid)", 40),
	'with a new worker');
ok(!$node->log_contains(qr/"order_ext launcher".*exited with exit code 0/), 'the launcher never exits with code 0');

# SIGHUP: naptime 1 h stops the runs, naptime 1 s brings them back
$node->safe_psql('postgres', "ALTER SYSTEM SET order_ext.naptime = 3600");
$node->reload;
sleep 2;
$runs = $node->safe_psql('wdb', $RUNS);
sleep 4;
is($node->safe_psql('wdb', $RUNS), $runs, 'after SIGHUP with naptime = 1 h: no new run');
$node->safe_psql('postgres', "ALTER SYSTEM SET order_ext.naptime = 1");
$node->reload;
ok(wait_for($node, 'wdb', "SELECT ($RUNS) > $runs + 1", 15), 'after SIGHUP with naptime = 1 s: runs again');

# a crash (SIGKILL of the worker: the postmaster restarts everything)
$pid = $node->safe_psql('postgres', $WORKER);
kill 'KILL', $pid;
ok(wait_for($node, 'postgres', "SELECT EXISTS ($WORKER) AND NOT EXISTS ($WORKER AND pid = $pid)", 60),
	'after a crash the worker comes back');
$runs = $node->safe_psql('wdb', $RUNS);
ok(wait_for($node, 'wdb', "SELECT ($RUNS) > $runs", 30), 'and runs again');
# a run left 'running' by a process that is gone is marked failed
$node->safe_psql('wdb', q{INSERT INTO order_ext.worker_runs (source, pid) VALUES ('worker', 999999)});
ok(wait_for($node, 'wdb', q{SELECT status = 'failed' FROM order_ext.worker_runs WHERE pid = 999999}, 30),
	'a run left running by a vanished process is marked failed');
# the cap of 1000 rows keeps a run that is still running (a long manual
# archive(), here one whose process, the launcher's stand-in, is alive),
# however many runs finish after it
my $lpid_now = $node->safe_psql('postgres', $LAUNCHER);
$node->safe_psql('wdb', qq{INSERT INTO order_ext.worker_runs (source, pid) VALUES ('archive', $lpid_now);
INSERT INTO order_ext.worker_runs (source, pid, status, finished_at) SELECT 'archive', 999998, 'succeeded', now() FROM generate_series(1, 1200);});
my $newest = $node->safe_psql('wdb', 'SELECT max(id) FROM order_ext.worker_runs');
ok(wait_for($node, 'wdb', "SELECT EXISTS (SELECT 1 FROM order_ext.worker_runs WHERE id > $newest AND status <> 'running')"
	. " AND (SELECT count(*) FROM order_ext.worker_runs WHERE status <> 'running') = 1000", 30),
	'the next run caps the finished rows at 1000 again, its own included');
is($node->safe_psql('wdb', "SELECT status FROM order_ext.worker_runs WHERE pid = $lpid_now"), 'running',
	'but keeps the row of a run still running, however old');
$node->safe_psql('wdb', "DELETE FROM order_ext.worker_runs WHERE pid = $lpid_now");

# a month that fails every run (a trigger of the DBA's on history refuses
# its rows): each run is recorded as failed, and the worker does not keep
# the statements of the failed runs (they live in CacheMemoryContext, and
# the worker's process lives on): its memory contexts show at most one
# run's worth (5), not 5 more after every run
make_month($node, 'wdb', '2023-12-01', 20, 1);
$node->safe_psql('wdb', q{
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'refused by the test'; END$$;
CREATE TRIGGER refuse BEFORE INSERT ON order_ext.orders_history FOR EACH ROW EXECUTE FUNCTION refuse();
});
my $refused = q{SELECT count(*) FROM order_ext.worker_runs WHERE status = 'failed' AND message LIKE '%refused by the test%'};
ok(wait_for($node, 'wdb', "SELECT ($refused) >= 6", 60), 'the month fails every run, recorded as failed');
$pid = $node->safe_psql('postgres', $WORKER);
my $offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
my $dump = '';
for (my $i = 0; $i < 300 && $dump !~ /Grand total/; $i++)
{
	usleep(100_000);
	$dump = slurp_file($node->logfile, $offset);
}
like($dump, qr/logging memory contexts of PID $pid/, 'the worker logged its memory contexts');
my $kept = () = $dump =~ /CachedPlanSource: [^\n]*(?:WITH pick AS|WITH moved AS \(DELETE)/g;
cmp_ok($kept, '<=', 5, "after 6 failed runs it keeps at most one run's statements ($kept)");
$node->safe_psql('wdb', 'DROP TRIGGER refuse ON order_ext.orders_history');
ok(wait_for($node, 'wdb', q{SELECT count(*) = 1 FROM order_ext.orders
	WHERE order_id BETWEEN order_ext.min_order_id('2023-12-01') AND order_ext.min_order_id('2023-12-31')}, 60),
	'without the trigger, the next run archives the month');

# a stop request in the middle of a run: the worker records the run as failed
# (rather than leaving it running) and comes back; it stays slow for the
# DROP DATABASE below, which so stops it mid-run too
make_month($node, 'wdb', '2024-02-01', 600, 1);
$node->safe_psql('postgres', 'ALTER SYSTEM SET order_ext.archive_pause = 1000');
$node->safe_psql('postgres', 'ALTER SYSTEM SET order_ext.archive_batch_size = 10');
$node->safe_psql('postgres', 'ALTER SYSTEM SET order_ext.naptime = 5');
$node->reload;
ok(wait_for($node, 'postgres', "SELECT EXISTS ($WORKER AND query LIKE 'order_ext archive: batches of%')", 60),
	'the worker archives a month in slow batches');
# the process, as it archives (looked up and terminated in one statement)
ok(wait_for($node, 'postgres', "SELECT count(pg_terminate_backend(pid)) = 1 FROM ($WORKER AND query LIKE 'order_ext archive: batches of%') w", 30),
	'terminated while archiving');
$pid = $node->safe_psql('wdb', "SELECT pid FROM order_ext.worker_runs WHERE source = 'worker' ORDER BY id DESC LIMIT 1");
ok(wait_for($node, 'postgres', "SELECT NOT EXISTS ($WORKER AND pid = $pid)", 10), 'it stops promptly mid-run');
is($node->safe_psql('wdb', "SELECT status || ': ' || message FROM order_ext.worker_runs WHERE pid = $pid ORDER BY id DESC LIMIT 1"),
	'failed: archive failed: the worker was asked to stop (pg_terminate_backend, DROP DATABASE or a shutdown)',
	'its run is recorded as failed, saying why');
ok($node->log_contains(qr/order_ext worker: stopped on request/), 'the log says it stopped on request');
ok(wait_for($node, 'postgres', "SELECT EXISTS ($WORKER AND pid <> $pid AND query LIKE 'order_ext archive: batches of%')", 60),
	'it comes back and carries on');

# a long backlog does not hold up the timers: a run archives for at most
# naptime (5 s here), and the next, due at once, fires the due timers first;
# this month's batches would take a minute
$node->safe_psql('wdb', q{
CREATE TABLE t2 AS SELECT order_ext.new_order_id() AS id;
SELECT order_ext.create_order(id, 3, '[{"sku":"W","qty":1,"unit_price":5}]') FROM t2;
UPDATE order_ext.timers SET due_at = now() - interval '1 second' WHERE order_id = (SELECT id FROM t2);
});
ok(wait_for($node, 'wdb', q{SELECT status = 'cancelled' FROM order_ext.orders WHERE order_id = (SELECT id FROM t2)}, 15),
	'a timer that falls due while the worker works through a backlog fires within seconds');
cmp_ok($node->safe_psql('wdb', q{SELECT count(*) FROM order_ext.orders
	WHERE order_id BETWEEN order_ext.min_order_id('2024-02-01') AND order_ext.min_order_id('2024-02-28')}),
	'>', 100, 'while most of the month is still to be archived');
ok($node->log_contains(qr/order_ext archive: stopping after 5000 ms of this run \(\d+ orders moved\); the rest is left for the next run/),
	'the log says when a run leaves the rest to the next');

# a DROP DATABASE that is bound to fail does not stop the worker: one by a
# role that does not own the database, one inside a transaction block
$pid = $node->safe_psql('postgres', $WORKER);
$node->safe_psql('postgres', 'CREATE ROLE intruder LOGIN');
my ($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE wdb', extra_params => [ '-U', 'intruder' ]);
like($err, qr/must be owner of database wdb/, 'DROP DATABASE by a role that does not own wdb fails');
($rc, $out, $err) = $node->psql('postgres', 'BEGIN; DROP DATABASE wdb;');
like($err, qr/cannot run inside a transaction block/, 'so does DROP DATABASE in a transaction block');
sleep 1;
is($node->safe_psql('postgres', "SELECT count(*) FROM ($WORKER AND pid = $pid) w"), 1,
	'neither stopped the worker: the same process is still there');
ok(!$node->log_contains(qr/stopped \d+ background process\(es\) of a database being dropped/),
	'and none of its processes was stopped');

# CREATE DATABASE ... TEMPLATE and ALTER DATABASE ... RENAME are not blocked
# by a worker's connection either (they failed after 5 s: "being accessed
# by other users"); a template database gets no worker at all (it would
# keep every CREATE DATABASE from copying it), and a renamed database's
# worker does not come back (the setting names the old name)
($rc, $out, $err) = $node->psql('postgres', 'CREATE DATABASE wdb_copy TEMPLATE wdb');
is($rc, 0, 'CREATE DATABASE ... TEMPLATE wdb succeeds while its worker runs') or diag($err);
ok(wait_for($node, 'postgres', "SELECT EXISTS ($WORKER)", 30), 'and the worker of wdb comes back');
$node->safe_psql('postgres', "ALTER SYSTEM SET order_ext.worker_databases = 'wdb, wdb_copy, template1'; SELECT pg_reload_conf()");
my $COPY_WORKER = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_ext worker' AND datname = 'wdb_copy'};
ok(wait_for($node, 'postgres', "SELECT EXISTS ($COPY_WORKER)", 30), 'the copy gets a worker of its own');
ok($node->wait_for_log(qr/database "template1" in order_ext.worker_databases is a template; it gets no worker/),
	'template1 gets none, with a warning that says why');
($rc, $out, $err) = $node->psql('postgres', 'ALTER DATABASE wdb_copy RENAME TO wdb_renamed');
is($rc, 0, 'ALTER DATABASE ... RENAME succeeds while its worker runs') or diag($err);
sleep 7;
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'order_ext worker' AND datname = 'wdb_renamed'}),
	'0', 'and no worker comes back for the renamed database');
$node->safe_psql('postgres', "ALTER SYSTEM SET order_ext.worker_databases = 'wdb, no_such_db'; SELECT pg_reload_conf()");
$node->safe_psql('postgres', 'DROP DATABASE wdb_renamed');

# DROP DATABASE is not blocked by the worker's connection
($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE wdb');
is($rc, 0, 'DROP DATABASE wdb succeeds while its worker runs') or diag($err);
sleep 7;
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'order_ext worker'"), 0,
	'and no worker comes back for the dropped database');
ok($node->safe_psql('postgres', "SELECT count(*) FROM ($LAUNCHER) l") == 1, 'the launcher is still there');

# a database that allows no connections is named as such; databases past
# the 64 one launcher serves are warned of, not ignored without a word
$node->safe_psql('postgres', 'CREATE DATABASE closed_db; ALTER DATABASE closed_db ALLOW_CONNECTIONS false');
my $many = join(',', 'closed_db', map { "nodb$_" } 1 .. 63) . ',past_the_limit';
$node->safe_psql('postgres', "ALTER SYSTEM SET order_ext.worker_databases = '$many'; SELECT pg_reload_conf()");
ok(wait_for($node, 'postgres', 'SELECT true', 5)
   && $node->wait_for_log(qr/database "closed_db" in order_ext.worker_databases does not exist or does not allow connections/),
	'a database that allows no connections is named as such');
ok($node->wait_for_log(qr/database "past_the_limit" in order_ext.worker_databases is past the 64 databases one launcher serves/),
	'a database past the 64th is warned of');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET order_ext.worker_databases; SELECT pg_reload_conf()');

# DROP EXTENSION while archive() works in that database: its process is
# stopped first (it holds locks on the order tables and waits for others:
# the DROP, taking its objects' locks one by one, deadlocked with it, or
# dropped tables under it); the call says so, and the extension can be made
# again
$node->safe_psql('postgres', 'CREATE EXTENSION order_ext');
make_month($node, 'postgres', '2024-03-01', 3000, 1);
my ($aout, $aerr);
my $arch = start_archive($node, \$aout, \$aerr);
ok(wait_for($node, 'postgres', q{SELECT EXISTS (SELECT 1 FROM pg_stat_activity
	WHERE backend_type = 'order_ext archive' AND query LIKE 'order_ext archive: batches of%')}, 30),
	'archive() works through a month in batches');
($rc, $out, $err) = $node->psql('postgres', 'SET client_min_messages = warning; DROP EXTENSION order_ext CASCADE');
is($rc, 0, 'DROP EXTENSION meanwhile succeeds') or diag($err);
$arch->finish;
like($aerr, qr/archive process was asked to stop/, 'the archive() call says its process was stopped');
ok($node->log_contains(qr/stopped 1 background process\(es\) of a database whose order_ext extension is being dropped/),
	'and the log says why');
is($node->safe_psql('postgres', 'CREATE EXTENSION order_ext; SELECT count(*) FROM order_ext.orders'), '0',
	'the extension can be made again');
# and DROP SCHEMA order_ext CASCADE, which drops the extension with it
make_month($node, 'postgres', '2024-03-01', 3000, 1);
$arch = start_archive($node, \$aout, \$aerr);
ok(wait_for($node, 'postgres', q{SELECT EXISTS (SELECT 1 FROM pg_stat_activity
	WHERE backend_type = 'order_ext archive' AND query LIKE 'order_ext archive: batches of%')}, 30),
	'archive() works through the month again');
my $drop_from = -s $node->logfile;
($rc, $out, $err) = $node->psql('postgres', 'SET client_min_messages = warning; DROP SCHEMA order_ext CASCADE');
is($rc, 0, 'DROP SCHEMA order_ext CASCADE meanwhile succeeds') or diag($err);
$arch->finish;
like(slurp_file($node->logfile, $drop_from), qr/stopped 1 background process\(es\) of a database whose order_ext extension is being dropped/,
	'having stopped the archive process first');

# SIGTERM (fast shutdown) stops everything promptly
my $t0 = time;
$node->stop('fast');
cmp_ok(time - $t0, '<', 10, 'fast shutdown is prompt');
done_testing();
