# A timer that cannot fire now is left for later, not lost (API.md "Moving
# orders through their state machine": timers fire exactly once).
#
# 1. Another session holds the order's row: run_timers() does not wait for
#    it (each timer is claimed under its order's lock, taken with SKIP
#    LOCKED); the other timers fire, that one stays due, untouched, and the
#    next run after the holder is gone fires it.
# 2. A timer whose firing fails for the moment is put back: the timer is
#    claimed (deleted) and fires in a subtransaction; a failure there drops
#    it when the failure is about the timer (a guard, say), but a lock
#    timeout, a deadlock or a serialization failure says nothing about it.
#    Here another session holds the stock row the expire must give units
#    back to, and run_timers() runs with a short lock_timeout: the timer is
#    put back, due again 5 s later, with a warning that says so.  Before,
#    it was dropped, and the order stayed pending_payment for good.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib 't', 'test/t';
use ArchiveTest;

my $node = archive_node('timer_retry', 'order_ext', 'log_min_messages = warning');
$node->safe_psql('postgres', q{
CREATE EXTENSION order_ext;
UPDATE order_ext.timeouts SET after = '0' WHERE machine = 'physical' AND status = 'pending_payment';
CREATE TABLE ids AS SELECT g AS n, order_ext.new_order_id() AS id FROM generate_series(1, 3) g;
SELECT count(*) FROM ids, LATERAL order_ext.create_order(ids.id, 7,
  '[{"sku":"TR-1","qty":1,"unit_price":100}]') o;
});
my $first = $node->safe_psql('postgres', 'SELECT id FROM ids WHERE n = 1');
my $TIMERS = "SELECT count(*) FROM order_ext.timers WHERE order_id = $first";
is($node->safe_psql('postgres', $TIMERS), '1', 'the order has its expire timer');

# 1. another session holds order 1's row
my $holder = open_session($node, "BEGIN; SELECT 1 FROM order_ext.orders WHERE order_id = $first FOR UPDATE;");
my ($rc, $out, $err) = $node->psql('postgres',
	"SET lock_timeout = '5s'; SELECT order_ext.run_timers()");
is($out, '2', 'run_timers fires the other two timers, without waiting for the held order');
is($err, '', 'and says nothing of the one it left');
is($node->safe_psql('postgres', "$TIMERS AND due_at <= now()"), '1', 'that timer is still there, still due');
is($node->safe_psql('postgres', "SELECT status FROM order_ext.orders WHERE order_id = $first"), 'pending_payment',
	'the order has not moved');
session_do($holder, 'COMMIT;');
is($node->safe_psql('postgres', 'SELECT order_ext.run_timers()'), '1', 'the next run fires it');
is($node->safe_psql('postgres', "SELECT status FROM order_ext.orders WHERE order_id = $first"), 'cancelled',
	'and the order expired');

# 2. another session holds the stock row the expire gives units back to
$node->safe_psql('postgres', q{
SELECT order_ext.set_stock('TR-S', 10);
CREATE TABLE ids3 AS SELECT order_ext.new_order_id() AS id;
SELECT order_ext.create_order(id, 9, '[{"sku":"TR-S","qty":2,"unit_price":100}]') FROM ids3;
});
my $third = $node->safe_psql('postgres', 'SELECT id FROM ids3');
my $TIMERS3 = "SELECT count(*) FROM order_ext.timers WHERE order_id = $third";
$holder->{h}->finish;
$holder = open_session($node, "BEGIN; SELECT 1 FROM order_ext.stock_buckets WHERE sku = 'TR-S' FOR UPDATE;");
($rc, $out, $err) = $node->psql('postgres',
	"SET lock_timeout = '200ms'; SELECT order_ext.run_timers()");
is($out, '0', 'run_timers fires nothing while the stock row is held');
like($err, qr/WARNING:  order_ext: timer expire of order $third \(pending_payment at version 1\) put back for 5 s: canceling statement due to lock timeout/,
	'and warns that it put back the one it could not fire');
is($node->safe_psql('postgres', "$TIMERS3 AND due_at > now()"), '1', 'the timer is there again, due later');
is($node->safe_psql('postgres', "SELECT status FROM order_ext.orders WHERE order_id = $third"), 'pending_payment',
	'the order has not moved');
session_do($holder, 'COMMIT;');

# due again: the next run fires it
$node->safe_psql('postgres', "UPDATE order_ext.timers SET due_at = now() WHERE order_id = $third");
is($node->safe_psql('postgres', 'SELECT order_ext.run_timers()'), '1', 'the next run fires it');
is($node->safe_psql('postgres', "SELECT status FROM order_ext.orders WHERE order_id = $third"), 'cancelled',
	'and the order expired');
is($node->safe_psql('postgres', "SELECT order_ext.available('TR-S')"), '10', 'its units are back');

# a failure about the timer itself still drops it: a guard that fails
$node->safe_psql('postgres', q{
CREATE TABLE ids2 AS SELECT order_ext.new_order_id() AS id;
SELECT order_ext.create_order(id, 8, '[{"sku":"TR-1","qty":1,"unit_price":100}]') FROM ids2;
});
my $second = $node->safe_psql('postgres', 'SELECT id FROM ids2');
$node->safe_psql('postgres', "UPDATE order_ext.timers SET event = 'no_such_event' WHERE order_id = $second");
($rc, $out, $err) = $node->psql('postgres', 'SELECT order_ext.run_timers()');
like($err, qr/timer no_such_event of order $second .* dropped/, 'a timer whose transition fails is dropped');
is($node->safe_psql('postgres', "SELECT count(*) FROM order_ext.timers WHERE order_id = $second"), '0',
	'and not put back');

$holder->{h}->finish;
$node->stop;
done_testing();
