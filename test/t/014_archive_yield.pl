# Archiving steps aside while live work waits for a CPU
# (order_ext.archive_yield, README "Archiving history orders").
#
# With more busy processes than CPUs, something is always waiting for a CPU:
# a batch run with archive_yield on sleeps at its yield points and says how
# long in its closing log line; with it off it never yields.  Both runs move
# every archivable order all the same.  A run with it on also keeps to one
# CPU, the last the server may use; with it off, it may use them all.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX ();
use Time::HiRes qw(usleep);
use IPC::Run;

use lib 't', 'test/t';
use ArchiveTest;

plan skip_all => 'needs /proc/loadavg' unless -r '/proc/loadavg';

my $N = 2000;
my $node = archive_node('archive_yield', 'order_ext', 'log_min_messages = log');
$node->safe_psql('postgres', 'CREATE EXTENSION order_ext');

# one busy loop more than there are CPUs, for as long as the test runs
my ($ncpu) = `getconf _NPROCESSORS_ONLN` =~ /(\d+)/;
$ncpu //= 2;
my @hogs;
for (1 .. $ncpu + 1)
{
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		my $deadline = time + 300;
		1 while time < $deadline;
		POSIX::_exit(0);
	}
	push @hogs, $pid;
}
END { kill 'KILL', @hogs if @hogs; }

# archive a month of $N orders, one left open (so it goes by batches), with
# archive_yield set as given and no rests; returns the closing log line
sub archive_month
{
	my ($month, $yield) = @_;
	make_month($node, 'postgres', $month, $N, 1);
	my $offset = -s $node->logfile;
	my $moved = $node->safe_psql('postgres',
		"SET order_ext.archive_yield = $yield; SET order_ext.archive_rest = 0; "
		  . "SELECT order_ext.archive('30 days', 200)");
	is($moved, $N - 1, "archive_yield $yield: every finished order of $month moved");
	my $log = slurp_file($node->logfile, $offset);
	my ($done) = $log =~ /(order_ext archive: done[^\n]*)/;
	return $done // '';
}

my $off = archive_month('2024-01-01', 'off');
like($off, qr/done; \d+ orders moved/, 'archive_yield off: the run closes without yielding');

my $on = archive_month('2024-02-01', 'on');
like($on, qr/done, \d+ ms yielded to live work/, 'archive_yield on: the run says how long it yielded');
my ($ms) = $on =~ /done, (\d+) ms yielded/;
cmp_ok($ms // 0, '>', 0, "archive_yield on, with the CPUs oversubscribed: it yielded (${\ ($ms // 0)} ms)");

is(placement($node, 'postgres'), join('|', 2 * $N, 0, 0, 3 * 2 * $N, 2 * $N, 2 * $N, 2 * 2 * $N),
	'every order is in exactly one place with all its rows');

kill 'KILL', @hogs;
waitpid($_, 0) for @hogs;
@hogs = ();

# order_ext.archive_rest: with yield off, a run rests archive_rest us after
# every archive_rest_every us of work, with the mover and with the
# statements alike; its closing log line counts the rests, and they took
# their time: rests of 5 ms after every 0.1 ms of work come to several
# times what the run takes without them (a few hundred ms), so a run that
# counted its rests without sleeping would end well before their sum
sub rest_month
{
	my ($month, $statements) = @_;
	make_month($node, 'postgres', $month, $N, 1);
	my $offset = -s $node->logfile;
	my $t0 = Time::HiRes::time();
	my $moved = $node->safe_psql('postgres',
		"SET order_ext.archive_yield = off; SET order_ext.archive_rest = 5000; "
		  . "SET order_ext.archive_rest_every = 100; SET order_ext.archive_statements = $statements; "
		  . "SELECT order_ext.archive('30 days', 200)");
	my $secs = Time::HiRes::time() - $t0;
	is($moved, $N - 1, "archive_rest, statements $statements: every finished order of $month moved");
	my $log = slurp_file($node->logfile, $offset);
	my ($done) = $log =~ /(order_ext archive: done[^\n]*)/;
	my ($rests) = ($done // '') =~ /done, (\d+) rests of 5000 us after every 100 us of work \(\d+ ms\)/;
	cmp_ok($rests // 0, '>=', 100, "archive_rest, statements $statements: the run rested ($done)");
	cmp_ok($secs, '>=', ($rests // 0) * 0.005,
		"archive_rest, statements $statements: the run lasted at least as long as its rests ($secs s)");
	unlike($done // '', qr/yielded/, "archive_rest, statements $statements: with archive_yield off it never yields");
}
rest_month('2024-06-01', 'off');
rest_month('2024-07-01', 'on');
is(placement($node, 'postgres'), join('|', 4 * $N, 0, 0, 3 * 4 * $N, 4 * $N, 4 * $N, 2 * 4 * $N),
	'after the runs with rests every order is in exactly one place with all its rows');

# the CPUs process $pid may run on, as a list ("0-3,6" -> "0,1,2,3,6")
sub cpus_of
{
	my ($pid) = @_;
	my ($list) = (slurp_file("/proc/$pid/status") =~ /^Cpus_allowed_list:\s*(\S+)/m);
	return join(',', map { /^(\d+)-(\d+)$/ ? ($1 .. $2) : $_ } split(/,/, $list // ''));
}

SKIP:
{
	my $pm = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
	my @all = split /,/, cpus_of($pm);
	skip 'needs two CPUs and /proc/PID/status', 7 if @all < 2;
	like($on, qr/, kept to CPU $all[-1];/, 'archive_yield on: the closing log line names the CPU');
	my $month = 3;
	for my $yield ('on', 'off')
	{
		# a run slow enough to be looked at: batches of 10, 1 s apart
		my $first = "order_ext.min_order_id('2024-0$month-01')";
		make_month($node, 'postgres', "2024-0$month-01", 200, 1);
		$month++;
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start(
			[ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
			  '-c', "SET order_ext.archive_yield = $yield", '-c', 'SET order_ext.archive_pause = 1000',
			  '-c', "SELECT order_ext.archive('30 days', 10)" ],
			'>', \$out, '2>', \$err);
		ok(wait_for($node, 'postgres',
				"SELECT count(*) > 0 FROM order_ext.orders_history WHERE order_id >= $first", 60),
			"archive_yield $yield: a run is moving batches");
		my $pid = $node->safe_psql('postgres',
			q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_ext archive'});
		is(cpus_of($pid), $yield eq 'on' ? $all[-1] : join(',', @all),
			$yield eq 'on' ? "archive_yield on: the run keeps to CPU $all[-1]"
			: 'archive_yield off: the run may use every CPU');
		$node->safe_psql('postgres',
			q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity
			  WHERE query LIKE 'SELECT order_ext.archive(%' AND backend_type = 'client backend'});
		$h->finish;
	}

	# the worker runs archive() itself; between its runs it has every CPU back
	$node->safe_psql('postgres', "ALTER SYSTEM SET order_ext.worker_databases = 'postgres'");
	$node->safe_psql('postgres', "ALTER SYSTEM SET order_ext.naptime = 1");
	$node->reload;
	ok(wait_for($node, 'postgres',
			q{SELECT count(*) >= 2 FROM order_ext.worker_runs WHERE source = 'worker' AND status = 'succeeded'}, 60),
		'the worker has finished archive runs');
	my $wpid = $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_ext worker'});
	my $back = 0;
	for (my $i = 0; $i < 50 && !$back; $i++)
	{
		$back = cpus_of($wpid) eq join(',', @all);
		usleep(100_000) unless $back;
	}
	ok($back, 'after its runs the worker may use every CPU again');
}
done_testing();
