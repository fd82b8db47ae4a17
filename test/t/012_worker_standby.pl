# The worker on a standby (API.md "Archiving history orders", Background
# worker): the launcher starts after recovery, so a hot standby runs no
# order_ext worker (it could not write anyway); once promoted, it does.  A
# standby issues no order ids either, until it is promoted.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib 't', 'test/t';
use ArchiveTest;

my @conf = ("order_ext.worker_databases = 'postgres'", "order_ext.naptime = 1");
my $primary = archive_node('primary', 'order_ext', @conf);
$primary->safe_psql('postgres', 'CREATE EXTENSION order_ext');
my $ORDER_EXT = q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'order_ext %'};
ok(wait_for($primary, 'postgres',
	q{SELECT count(*) >= 2 FROM order_ext.worker_runs WHERE status = 'succeeded'}, 30),
	'the primary\'s worker runs');

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

# a standby: no launcher, no worker, while the primary's worker goes on
sleep 3;
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is($standby->safe_psql('postgres', $ORDER_EXT), 0, 'no order_ext launcher or worker on the standby');
# (the primary's worker goes on recording runs meanwhile: compare the runs
# up to the last one the primary had)
my ($last, $runs) = split /\|/, $primary->safe_psql('postgres', 'SELECT max(id), count(*) FROM order_ext.worker_runs');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', "SELECT count(*) FROM order_ext.worker_runs WHERE id <= $last"), $runs,
	'the standby sees the primary\'s runs');

# a standby issues no order ids: it shares the primary's node_id, and the two
# would hand out the same ids in the same millisecond
my ($rc, $out, $err) = $standby->psql('postgres', 'SELECT order_ext.new_order_id()');
like($err, qr/new_order_id\(\) cannot run during recovery/, 'new_order_id() on the standby is refused');

# an order whose id the primary took ahead of the clock (create_order
# accepts ids up to 10 s ahead): the standby's generator never saw it, so
# once promoted its first ids start past any id taken ahead
my $ahead = $primary->safe_psql('postgres', q{
SELECT order_id FROM order_ext.create_order(order_ext.min_order_id(clock_timestamp() + interval '9.5 seconds') + 7, 1,
                                            '[{"sku":"AHEAD","qty":1,"unit_price":5}]')});
$primary->wait_for_catchup($standby);

# promoted: its first id is past the one taken ahead (checked at once, in
# one statement with whether that id is still ahead of the clock: if not,
# the check says nothing and is skipped rather than passed); then the
# launcher and a worker start, and runs are recorded there
$primary->stop;
$standby->promote;
my ($past, $still_ahead) = split /\|/, $standby->safe_psql('postgres',
	"SELECT order_ext.new_order_id() > $ahead, order_ext.order_id_time($ahead) > clock_timestamp()");
SKIP:
{
	skip 'the promotion took longer than the 9.5 s the id was ahead', 1 unless $still_ahead eq 't';
	is($past, 't', 'its first id is past the one the primary took ahead of the clock');
}
ok(wait_for($standby, 'postgres',
	q{SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'order_ext worker' AND datname = 'postgres')}, 60),
	'after promotion the worker starts');
my $wpid = $standby->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_ext worker'});
ok(wait_for($standby, 'postgres',
	qq{SELECT count(*) >= 2 FROM order_ext.worker_runs WHERE pid = $wpid AND status = 'succeeded'}, 30),
	'and runs');
like($standby->safe_psql('postgres', 'SELECT order_ext.new_order_id()'), qr/^\d+$/, 'and it issues order ids');
$standby->stop;
done_testing();
