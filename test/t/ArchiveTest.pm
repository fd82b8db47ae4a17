# test/t/ArchiveTest.pm — helpers shared by the archiving and worker TAP
# tests (010-016): a node with order_ext preloaded, a month of orders made
# by test/bench/archive_month.sql, the check that every order is in
# exactly one of live or history with all its rows, sessions that hold a
# transaction open, and archive() in the background.
package ArchiveTest;

use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IPC::Run;

use Exporter 'import';
our @EXPORT = qw(archive_node make_month placement wait_for open_session session_do start_archive);

my $MONTH_SQL = dirname(__FILE__) . '/../bench/archive_month.sql';

# A started node with order_ext (and whatever else) preloaded; extra lines
# go to postgresql.conf.
sub archive_node
{
	my ($name, $preload, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 1);
	$node->append_conf('postgresql.conf', join("\n",
		"shared_preload_libraries = '$preload'",
		"max_worker_processes = 20",
		"log_min_messages = warning", "restart_after_crash = on",
		@conf) . "\n");
	$node->start;
	return $node;
}

# A month of n finished orders (the first 'open' of them unfinished).
sub make_month
{
	my ($node, $db, $month, $n, $open) = @_;
	my ($rc, $out, $err) = $node->psql($db, undef,
		extra_params => [ '-v', 'ON_ERROR_STOP=1', '-v', "month=$month", '-v', "n=$n",
			'-v', "open=$open", '-f', $MONTH_SQL ]);
	die "archive_month.sql failed: $err" if $rc != 0;
}

# "orders|not_in_one_place|children_on_the_other_side|items|payments|discounts|events"
sub placement
{
	my ($node, $db) = @_;
	return $node->safe_psql($db, q{
WITH o AS (SELECT order_id, 'l' AS side FROM order_ext.orders
           UNION ALL SELECT order_id, 'h' FROM order_ext.orders_history),
c AS (SELECT order_id, 'l' AS side, 'i' AS t FROM order_ext.order_items
      UNION ALL SELECT order_id, 'h', 'i' FROM order_ext.order_items_history
      UNION ALL SELECT order_id, 'l', 'p' FROM order_ext.order_payments
      UNION ALL SELECT order_id, 'h', 'p' FROM order_ext.order_payments_history
      UNION ALL SELECT order_id, 'l', 'd' FROM order_ext.order_discounts
      UNION ALL SELECT order_id, 'h', 'd' FROM order_ext.order_discounts_history
      UNION ALL SELECT order_id, 'l', 'e' FROM order_ext.order_events
      UNION ALL SELECT order_id, 'h', 'e' FROM order_ext.order_events_history)
SELECT (SELECT count(DISTINCT order_id) FROM o),
       (SELECT count(*) FROM (SELECT order_id FROM o GROUP BY 1 HAVING count(*) <> 1) x),
       (SELECT count(*) FROM c LEFT JOIN o USING (order_id, side) WHERE o.order_id IS NULL),
       (SELECT count(*) FROM c WHERE t = 'i'), (SELECT count(*) FROM c WHERE t = 'p'),
       (SELECT count(*) FROM c WHERE t = 'd'), (SELECT count(*) FROM c WHERE t = 'e')});
}

# Poll a query until it returns 't' (up to $secs seconds); true if it did.
sub wait_for
{
	my ($node, $db, $sql, $secs) = @_;
	for (my $i = 0; $i < $secs * 10; $i++)
	{
		# while the server restarts after a crash psql can exit before it
		# reads its input, and IPC::Run dies of the broken pipe: try again
		my ($rc, $out) = eval { $node->psql($db, $sql) };
		return 1 if defined $rc && $rc == 0 && $out eq 't';
		usleep(100_000);
	}
	return 0;
}

# A session that holds a transaction open: run $sql and wait for it.
sub open_session
{
	my ($node, $sql) = @_;
	my %s = (in => '', out => '', err => '');
	$s{h} = IPC::Run::start(
		[ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', \$s{in}, '>', \$s{out}, '2>', \$s{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	session_do(\%s, $sql);
	return \%s;
}

# Run $sql in a session of open_session and wait for it.
sub session_do
{
	my ($s, $sql) = @_;
	$s->{out} = '';
	$s->{in} .= "$sql\nSELECT 'ready';\n";
	$s->{h}->pump until $s->{out} =~ /ready/ || $s->{err} ne '';
	die "session: $s->{err}" if $s->{err} ne '';
}

# archive('30 days', 1000) in the background: its harness; what it prints
# and its errors land in $$out and $$err.
sub start_archive
{
	my ($node, $out, $err) = @_;
	($$out, $$err) = ('', '');
	return IPC::Run::start(
		[ 'psql', '-X', '-At', '-v', 'VERBOSITY=verbose', '-d', $node->connstr('postgres'),
		  '-c', "SELECT order_ext.archive('30 days', 1000)" ],
		'>', $out, '2>', $err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

1;
