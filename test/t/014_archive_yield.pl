# Archiving steps aside while live work waits for a CPU
# (order_ext.archive_yield, README "Archiving history orders").
#
# With more busy processes than CPUs, something is always waiting for a CPU:
# a batch run with archive_yield on sleeps at its yield points and says how
# long in its closing log line; with it off it never yields.  Both runs move
# every archivable order all the same.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX ();

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
# archive_yield set as given; returns the closing log line
sub archive_month
{
	my ($month, $yield) = @_;
	make_month($node, 'postgres', $month, $N, 1);
	my $offset = -s $node->logfile;
	my $moved = $node->safe_psql('postgres',
		"SET order_ext.archive_yield = $yield; SELECT order_ext.archive('30 days', 200)");
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
done_testing();
