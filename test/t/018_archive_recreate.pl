# create_order() with the id of an order that archive() is moving (orders.c,
# create_order): the insert waits for the archiver's delete of the order row,
# then finds the order archived, and is refused with 40001; the retry returns
# the archived order.  The order left a timer behind (its pending_payment
# expire, not due yet, as versions before timers left with their status
# did: here put back by hand), and the insert of the new timer row used to
# fail on it with a unique violation (23505) before the 40001 check.
#
# A session holds a lock on one of the order's item rows, so the archiver's
# batch stops after deleting the order row (its child rows wait); the
# create_order comes then.  (archive() runs in a background worker, so an
# isolation spec cannot see its waits: a TAP test.)
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib 't', 'test/t';
use ArchiveTest;

my $node = archive_node('archive_recreate', 'order_ext');
$node->safe_psql('postgres', q{
CREATE EXTENSION order_ext;
SELECT order_ext.create_partitions('2024-01-01', '2024-01-01');
CREATE TABLE ids AS SELECT 'a'::text AS name, order_ext.min_order_id('2024-01-10') AS id
          UNION ALL SELECT 'p', order_ext.min_order_id('2024-01-12');
SELECT count(*) FROM ids, LATERAL order_ext.create_order(ids.id, 7, '[{"sku":"RC-1","qty":1,"unit_price":100}]') o;
SELECT status FROM order_ext.fire((SELECT id FROM ids WHERE name = 'a'), 'cancel', actor => 'buyer');
INSERT INTO order_ext.timers (order_id, subject, subject_id, status, version, event, due_at)
SELECT id, 'order', id, 'pending_payment', 1, 'expire', now() + interval '30 minutes' FROM ids WHERE name = 'a';
});
my $a = $node->safe_psql('postgres', q{SELECT id FROM ids WHERE name = 'a'});
my $CREATE = qq{SELECT status FROM order_ext.create_order($a, 7, '[{"sku":"RC-1","qty":1,"unit_price":100}]')};
is($node->safe_psql('postgres', "SELECT count(*) FROM order_ext.timers WHERE order_id = $a"), '1',
	'the cancelled order has a leftover expire timer (not due yet)');

my $holder = open_session($node,
	"BEGIN; SELECT line_no FROM order_ext.order_items WHERE order_id = $a FOR UPDATE;");
my ($aout, $aerr);
my $archive = start_archive($node, \$aout, \$aerr);
my $WAITERS = q{SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'transactionid'};
ok(wait_for($node, 'postgres', "SELECT ($WAITERS) = 1", 60), 'the archiver waits for the held item row');
is($node->safe_psql('postgres', "SELECT count(*) FROM order_ext.orders WHERE order_id = $a"), '1',
	'the order row is still there for everyone else (its delete is not committed)');

my ($cout, $cerr) = ('', '');
my $create = IPC::Run::start(
	[ 'psql', '-X', '-At', '-v', 'VERBOSITY=verbose', '-d', $node->connstr('postgres'), '-c', $CREATE ],
	'>', \$cout, '2>', \$cerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
ok(wait_for($node, 'postgres', "SELECT ($WAITERS) = 2", 60), 'create_order waits for the archiver');

session_do($holder, 'COMMIT;');
$create->finish;
$archive->finish;
chomp $aout;
is($aout, '1', 'the archiver moved the order');
like($cerr, qr/ERROR:  40001: order $a was archived while it was being created again/,
	'create_order is refused with 40001, not a unique violation');
unlike($cerr, qr/23505/, 'no unique violation');
is($node->safe_psql('postgres', $CREATE), 'cancelled', 'the retry returns the archived order');
is($node->safe_psql('postgres', qq{
SELECT (SELECT count(*) FROM order_ext.orders WHERE order_id = $a) || ' ' ||
       (SELECT count(*) FROM order_ext.orders_history WHERE order_id = $a) || ' ' ||
       (SELECT count(*) FROM order_ext.order_items_history WHERE order_id = $a)}), '0 1 1',
	'the order is in history only, with its item');

# the archived order's timer, once due, is dropped by run_timers: its order
# is in no live table, so nothing fires
$node->safe_psql('postgres', "UPDATE order_ext.timers SET due_at = now() - interval '1 second' WHERE order_id = $a");
is($node->safe_psql('postgres', 'SELECT order_ext.run_timers()'), '0', 'run_timers fires nothing for the archived order');
is($node->safe_psql('postgres', "SELECT count(*) FROM order_ext.timers WHERE order_id = $a"), '0',
	'and drops its timer');

$holder->{h}->finish;
$node->stop;
done_testing();
