# Archiving survives a crash (API.md "Archiving history orders": never loses
# or duplicates a row, also if killed midway).
#
# 40,000 finished orders of January 2024 with 8 rows each, plus one that is
# still open (so the month cannot move as a whole and goes by batches of
# 100).  While archive() runs, every process of the server is SIGKILLed
# (postmaster and children at once, as in a power cut), three times.  After
# each restart: every order is in exactly one of live or history with all
# its rows there too.  Then the interrupted runs are marked failed in
# worker_runs and another archive() moves the rest.  Last, a run whose
# caller is cancelled stops, records itself as failed, and a rerun finishes
# it; so do a run whose caller is terminated and one whose archive process
# is.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IPC::Run;

use lib 't', 'test/t';
use ArchiveTest;

my $N = 40000;
my $node = archive_node('archive_crash', 'order_ext');
my ($out, $err, $h, $hist) = ('', '', undef, 0);
$node->safe_psql('postgres', 'CREATE EXTENSION order_ext');
make_month($node, 'postgres', '2024-01-01', $N, 1);
is(placement($node, 'postgres'), join('|', $N, 0, 0, 3 * $N, $N, $N, 2 * $N), 'the month is there, all live');

# archive('30 days', 100) in the background with the given pause (ms);
# errors with their SQLSTATE
sub start_archive
{
	my ($pause) = @_;
	($out, $err) = ('', '');
	return IPC::Run::start(
		[ 'psql', '-X', '-At', '-v', 'VERBOSITY=verbose', '-d', $node->connstr('postgres'),
		  '-c', "SET order_ext.archive_pause = $pause", '-c', "SELECT order_ext.archive('30 days', 100)" ],
		'>', \$out, '2>', \$err);
}

# Three times: archive in the background without pauses (so that the kill
# lands inside a batch, between its statements, rather than between two
# batches), wait until it has moved another 2,000 orders, then kill every
# process of the server at once and restart (crash recovery).
for my $round (1 .. 3)
{
	$h = start_archive(0);
	ok(wait_for($node, 'postgres', 'SELECT count(*) > ' . ($hist + 2000) . ' FROM order_ext.orders_history', 60),
		"round $round: archive() is moving batches");
	my $moved_before = $node->safe_psql('postgres', 'SELECT count(*) FROM order_ext.orders_history');
	cmp_ok($moved_before, '<', $N - 1, "round $round: killed midway ($moved_before of " . ($N - 1) . ' moved)');
	my $pm = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
	my @children = grep { /^\d+$/ } split /\s+/, `ps -o pid= --ppid $pm`;
	kill 'KILL', $pm, @children;
	$node->kill9;	# (already dead; this tells the test framework)
	$h->finish;
	ok($err =~ /server closed the connection|terminat|connection/i, "round $round: the archive() call lost its server");
	for (my $i = 0; $i < 100 && kill(0, $pm, @children); $i++) { usleep(100_000); }
	ok(!kill(0, $pm, @children), "round $round: every server process is gone");
	$node->start;

	my ($orders, $not_one, $misplaced, @rows) = split /\|/, placement($node, 'postgres');
	is($orders, $N, "round $round: after the crash every order still exists");
	is($not_one, 0, "round $round: every order is in exactly one of live and history");
	is($misplaced, 0, "round $round: every child row is on its order's side");
	is(join('|', @rows), join('|', 3 * $N, $N, $N, 2 * $N), "round $round: no row lost or duplicated");
	$hist = $node->safe_psql('postgres', 'SELECT count(*) FROM order_ext.orders_history');
}
cmp_ok($hist, '>=', 4000, "batches committed before the crashes stayed archived ($hist)");

# a second run finishes the job and marks the interrupted one failed
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), $N - 1 - $hist,
	'a second archive() moves exactly the rest');
is(placement($node, 'postgres'), join('|', $N, 0, 0, 3 * $N, $N, $N, 2 * $N), 'after the second run: all in one place');
is($node->safe_psql('postgres', 'SELECT count(*) FROM order_ext.orders'), 1, 'only the open order is live');
is($node->safe_psql('postgres', q{SELECT string_agg(status || ':' || (message IS NOT NULL), ',' ORDER BY id) FROM order_ext.worker_runs}),
	'failed:true,failed:true,failed:true,succeeded:false', 'worker_runs: the interrupted runs failed, the last succeeded');

# cancel: the caller of archive() is cancelled mid-run; the archive process
# stops with it, finished batches stay, the rest stays live, a rerun finishes
make_month($node, 'postgres', '2024-02-01', $N, 1);
$h = start_archive(20);
ok(wait_for($node, 'postgres', q{SELECT count(*) > 3000 FROM order_ext.orders_history WHERE order_id >= order_ext.min_order_id('2024-02-01')}, 60),
	'a second month is being archived');
like($node->safe_psql('postgres', q{SELECT query FROM pg_stat_activity WHERE backend_type = 'order_ext archive'}),
	qr/^order_ext archive: batches of orders_p2024_02; \d+ orders moved so far$/, 'its progress shows in pg_stat_activity');
$node->safe_psql('postgres', q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT order_ext.archive(%'});
$h->finish;
like($err, qr/ERROR:  57014: canceling statement due to user request/, 'archive() was cancelled');
ok(wait_for($node, 'postgres', q{SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'order_ext archive')}, 30),
	'and its archive process stopped');
my $STOPPED = q{SELECT status || ': ' || message FROM order_ext.worker_runs ORDER BY id DESC LIMIT 1};
is($node->safe_psql('postgres', $STOPPED),
	'failed: the archive process was asked to stop (its caller was cancelled or ended, or DROP DATABASE, DROP EXTENSION, a rename or copy of the database, a shutdown or pg_terminate_backend)',
	'the cancelled run is recorded as failed as it stops, not left running');
ok($node->log_contains(qr/order_ext archive: stopped on request; the batches committed so far stay archived/),
	'the server log says it stopped on request');
my $feb = $node->safe_psql('postgres', q{SELECT count(*) FROM order_ext.orders_history WHERE order_id >= order_ext.min_order_id('2024-02-01')});
cmp_ok($feb, '<', $N - 1, "cancelled midway ($feb moved)");
is($node->safe_psql('postgres', q{SELECT results->>'archive' FROM order_ext.worker_runs ORDER BY id DESC LIMIT 1}),
	$feb, 'the failed run still records the orders it moved before it stopped');
is(placement($node, 'postgres'), join('|', 2 * $N, 0, 0, 6 * $N, 2 * $N, 2 * $N, 4 * $N), 'after the cancel: all in one place');
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), $N - 1 - $feb, 'a rerun moves exactly the rest');
is($node->safe_psql('postgres', 'SELECT count(*) FROM order_ext.orders'), 2, 'only the two open orders are live');

# terminate: pg_terminate_backend on the caller (which exits without
# unwinding) stops the archive process too, rather than leaving it running
# on its own
make_month($node, 'postgres', '2024-03-01', $N, 1);
$h = start_archive(200);
ok(wait_for($node, 'postgres', q{SELECT count(*) > 500 FROM order_ext.orders_history WHERE order_id >= order_ext.min_order_id('2024-03-01')}, 60),
	'a third month is being archived');
$node->safe_psql('postgres',
	q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT order_ext.archive(%' AND backend_type = 'client backend'});
$h->finish;
ok(wait_for($node, 'postgres', q{SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'order_ext archive')}, 10),
	'after pg_terminate_backend of the caller, its archive process stopped too');
like($node->safe_psql('postgres', $STOPPED), qr/^failed: the archive process was asked to stop/,
	'the run of the terminated caller is recorded as failed too');
my $mar = $node->safe_psql('postgres', q{SELECT count(*) FROM order_ext.orders_history WHERE order_id >= order_ext.min_order_id('2024-03-01')});
cmp_ok($mar, '<', $N - 1, "stopped midway ($mar moved)");
is(placement($node, 'postgres'), join('|', 3 * $N, 0, 0, 9 * $N, 3 * $N, 3 * $N, 6 * $N), 'after the terminate: all in one place');

# pg_terminate_backend on the archive process itself: the caller's error says
# why, and the run is recorded as failed
$h = start_archive(200);
ok(wait_for($node, 'postgres', q{SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'order_ext archive' AND query LIKE '%batches of%'}, 60),
	'the third month is being archived again');
$node->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'order_ext archive'});
$h->finish;
like($err, qr/ERROR:  57P01: archive failed: the archive process was asked to stop/,
	"archive()'s caller says its archive process was stopped (57P01, admin_shutdown)");
like($node->safe_psql('postgres', $STOPPED), qr/^failed: the archive process was asked to stop/,
	'and the run is recorded as failed');
is(placement($node, 'postgres'), join('|', 3 * $N, 0, 0, 9 * $N, 3 * $N, 3 * $N, 6 * $N), 'after that: all in one place');

$node->stop;
done_testing();
