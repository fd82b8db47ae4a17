# The whole-month path and live traffic (README "Archiving history orders"):
# a month moves whole in one transaction that takes ACCESS EXCLUSIVE locks
# on the live parents, and every query of those tables queues behind such a
# request while it waits.  So all the month's lock waits of one attempt come
# out of one budget of order_ext.ddl_lock_timeout:
#   1. two tables held by readers, each for less than the timeout but longer
#      together: the first attempt gives up when the budget is spent, the
#      second moves the month, and a reader of orders never waited much
#      longer than the timeout (before, the waits added up: 1.8 s here);
#   2. a table held for longer than three attempts: the month is left for
#      the next run, nothing of it moved, the reader again never waited much
#      longer than the timeout; a caller's own ddl_lock_timeout (SET in its
#      session) is the one its archive process keeps to; once the table is
#      free, the next run moves the month whole.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IPC::Run;

use lib 't', 'test/t';
use ArchiveTest;

my $TIMEOUT_MS = 1000;
my $node = archive_node('archive_whole_locks', 'order_ext', 'log_min_messages = log',
	"order_ext.ddl_lock_timeout = $TIMEOUT_MS");
$node->safe_psql('postgres', 'CREATE EXTENSION order_ext');
my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my $tmp = PostgreSQL::Test::Utils::tempdir();

# archive()'s output and errors (start_archive)
my ($aout, $aerr);

# a reader of order_ext.orders for 8 s, one query after the other, every
# latency logged; returns the harness and the log files' prefix
my $readers = 0;
sub start_reader
{
	my $prefix = "$tmp/reader" . ++$readers;
	open my $f, '>', "$prefix.sql" or die $!;
	print $f "SELECT count(*) FROM order_ext.orders WHERE order_id = 1;\n";
	close $f;
	my $h = IPC::Run::start(
		[ 'pgbench', '-n', '-c', '1', '-T', '8', '-f', "$prefix.sql", '-l',
		  '--log-prefix', $prefix, '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \my $out, '2>', \my $err, IPC::Run::timeout($timeout + 8));
	return ($h, $prefix);
}

# the reader's longest latency in ms and its number of queries, once it is done
sub stop_reader
{
	my ($h, $prefix) = @_;
	$h->finish;
	my ($max, $n) = (0, 0);
	for my $file (glob("$prefix.[0-9]*"))
	{
		open my $f, '<', $file or die $!;
		while (<$f>)
		{
			my @c = split;
			$n++;
			$max = $c[2] if $c[2] > $max;
		}
	}
	return ($max / 1000, $n);
}

# wait until the archive process waits for a lock on order_ext.$table
sub archive_waits_for
{
	my ($table) = @_;
	return wait_for($node, 'postgres', qq{SELECT EXISTS (SELECT 1 FROM pg_locks l
		JOIN pg_stat_activity a USING (pid)
		WHERE a.backend_type = 'order_ext archive' AND NOT l.granted
		AND l.relation = 'order_ext.$table'::regclass)}, $timeout);
}

# 1. two tables held, 0.9 s each, one after the other
make_month($node, 'postgres', '2024-01-01', 50, 0);
my $items = open_session($node, 'BEGIN; LOCK TABLE ONLY order_ext.order_items IN ACCESS SHARE MODE;');
my $payments = open_session($node, 'BEGIN; LOCK TABLE ONLY order_ext.order_payments IN ACCESS SHARE MODE;');
my @reader = start_reader();
sleep 1;
my $from = -s $node->logfile;
my $h = start_archive($node, \$aout, \$aerr);
ok(archive_waits_for('order_items'), 'the move waits for order_items');
usleep(900_000);
session_do($items, 'COMMIT;');
ok(archive_waits_for('order_payments'), 'then for order_payments');
usleep(900_000);
session_do($payments, 'COMMIT;');
$h->finish;
chomp $aout;
is($aout, '50', 'the month moved') or diag($aerr);
my ($max, $n) = stop_reader(@reader);
cmp_ok($n, '>', 10, "the reader ran ($n queries)");
cmp_ok($max, '<', $TIMEOUT_MS + 400,
	"a reader of orders waited at most about ddl_lock_timeout ($TIMEOUT_MS ms): $max ms");
my $runlog = slurp_file($node->logfile, $from);
like($runlog, qr/month from order id \d+ busy \(.*\), attempt 1 of 3/,
	'the first attempt gave up when its budget was spent, and the log says so');
like($runlog, qr/moved month orders_p2024_01 as a whole \(50 orders/, 'a later one moved the month whole');
is(placement($node, 'postgres'), '50|0|0|150|50|50|100', 'every order in one place with all its rows');

# 2. one table held past three attempts, then free
make_month($node, 'postgres', '2024-02-01', 50, 0);
my $events = open_session($node, 'BEGIN; LOCK TABLE ONLY order_ext.order_events IN ACCESS SHARE MODE;');
@reader = start_reader();
sleep 1;
$from = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '0',
	'with order_events held throughout, the month does not move');
($max, $n) = stop_reader(@reader);
cmp_ok($n, '>', 10, "the reader ran ($n queries)");
cmp_ok($max, '<', $TIMEOUT_MS + 400,
	"a reader of orders waited at most about ddl_lock_timeout ($TIMEOUT_MS ms): $max ms");
$runlog = slurp_file($node->logfile, $from);
like($runlog, qr/attempt 3 of 3/, 'after three attempts');
like($runlog, qr/month orders_p2024_02 left for the next run: its tables stayed busy/, 'it is left for the next run');
is($node->safe_psql('postgres', q{SELECT count(*) FROM order_ext.orders}), '50', 'its orders are all live');
# the caller's own order_ext.ddl_lock_timeout goes to the archive process:
# three attempts of 200 ms take well under the three of 1 s above
my $t0 = time;
is($node->safe_psql('postgres', "SET order_ext.ddl_lock_timeout = '200ms'; SELECT order_ext.archive('30 days', 1000)"),
	'0', 'with a session ddl_lock_timeout of 200 ms, the month does not move either');
my $took = time - $t0;
cmp_ok($took, '<', 2.5, "its three attempts took ${\ sprintf('%.1f', $took)} s (3 s or more at 1 s)");
session_do($events, 'COMMIT;');
$from = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '50', 'the next run moves it');
like(slurp_file($node->logfile, $from), qr/moved month orders_p2024_02 as a whole/, 'whole');
is(placement($node, 'postgres'), '100|0|0|300|100|100|200', 'every order in one place with all its rows');

$_->{h}->finish for ($items, $payments, $events);
$node->stop;
done_testing();
