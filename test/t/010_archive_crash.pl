# Archiving survives a crash (API.md "Archiving history orders": never loses
# or duplicates a row, also if killed midway).
#
# 20,000 finished orders of January 2024 with 8 rows each, plus one that is
# still open (so the month cannot move as a whole and goes by batches of
# 100).  While archive() runs, every process of the server is SIGKILLed
# (postmaster and children at once, as in a power cut).  After the restart:
# every order is in exactly one of live or history with all its rows there
# too, the interrupted run is marked failed in worker_runs, and a second
# archive() moves the rest.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IPC::Run;

use lib 't', 'test/t';
use ArchiveTest;

my $N = 20000;
my $node = archive_node('archive_crash', 'order_ext');
$node->safe_psql('postgres', 'CREATE EXTENSION order_ext');
make_month($node, 'postgres', '2024-01-01', $N, 1);
is(placement($node, 'postgres'), join('|', $N, 0, 0, 3 * $N, $N, $N, 2 * $N), 'the month is there, all live');

# archive in the background, paced so that it takes a few seconds
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
	  '-c', "SET order_ext.archive_pause = 20", '-c', "SELECT order_ext.archive('30 days', 100)" ],
	'>', \$out, '2>', \$err);

# wait until it is well under way, then kill every process of the server
ok(wait_for($node, 'postgres', 'SELECT count(*) > 3000 FROM order_ext.orders_history', 60),
	'archive() is moving batches');
my $moved_before = $node->safe_psql('postgres', 'SELECT count(*) FROM order_ext.orders_history');
cmp_ok($moved_before, '<', $N - 1, "killed midway ($moved_before of " . ($N - 1) . ' moved)');
my $pm = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
my @children = grep { /^\d+$/ } split /\s+/, `ps -o pid= --ppid $pm`;
kill 'KILL', $pm, @children;
$node->kill9;	# (already dead; this tells the test framework)
$h->finish;
ok($err =~ /server closed the connection|terminat|connection/i, 'the archive() call lost its server');

# wait for every old process to be gone, then start (crash recovery)
for (my $i = 0; $i < 100 && kill(0, $pm, @children); $i++) { usleep(100_000); }
ok(!kill(0, $pm, @children), 'every server process is gone');
$node->start;
my $after = placement($node, 'postgres');
my ($orders, $not_one, $misplaced, @rows) = split /\|/, $after;
is($orders, $N, 'after the crash: every order still exists');
is($not_one, 0, 'after the crash: every order is in exactly one of live and history');
is($misplaced, 0, 'after the crash: every child row is on its order\'s side');
is(join('|', @rows), join('|', 3 * $N, $N, $N, 2 * $N), 'after the crash: no row lost or duplicated');
my $hist = $node->safe_psql('postgres', 'SELECT count(*) FROM order_ext.orders_history');
cmp_ok($hist, '>=', 3000, "batches committed before the crash stayed archived ($hist)");

# a second run finishes the job and marks the interrupted one failed
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), $N - 1 - $hist,
	'a second archive() moves exactly the rest');
is(placement($node, 'postgres'), join('|', $N, 0, 0, 3 * $N, $N, $N, 2 * $N), 'after the second run: all in one place');
is($node->safe_psql('postgres', 'SELECT count(*) FROM order_ext.orders'), 1, 'only the open order is live');
is($node->safe_psql('postgres', q{SELECT string_agg(status || ':' || (message IS NOT NULL), ',' ORDER BY id) FROM order_ext.worker_runs}),
	'failed:true,succeeded:false', 'worker_runs: the interrupted run failed, the second succeeded');

$node->stop;
done_testing();
