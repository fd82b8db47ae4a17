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
# 3. A runner that has fired a timer waits for no stock or holdings row
#    (NOWAIT) and for no other lock for long (50 ms), so it cannot deadlock
#    with buyers over the stock rows of the timers it fired earlier in the
#    call (which gave the buyers 40P01: even a 50 ms wait could be the one
#    a buyer's deadlock check found).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

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

# 3. a runner never waits long for a lock: the stock rows of the timers it
#    fired stay locked until its call ends, and it takes them in due order,
#    not in the SKU order buyers take them in.  Order X (SKU DL-B) is due
#    before order Y (DL-A); one buyer holds DL-A, another has asked for DL-A
#    and then DL-B.  The runner expires X (now holding DL-B) and goes on to
#    Y, which needs DL-A: had it waited, the first buyer's commit would have
#    handed DL-A to the second, who then waits for the runner's DL-B while
#    the runner waits for DL-A, a deadlock the second buyer's check (after
#    1 s; the runner's own is set to 10 s) would end with 40P01 for the
#    buyer.  The runner gives up on Y after a short lock wait instead (its
#    timer is put back), ends its call and so lets the buyer on.  (X, the
#    first timer of the call, holds nothing yet and waits as the session
#    would.)
$holder->{h}->finish;
$node->safe_psql('postgres', q{
SELECT order_ext.set_stock('DL-A', 10), order_ext.set_stock('DL-B', 10);
CREATE TABLE dl AS SELECT 'X' AS tag, order_ext.new_order_id() AS id;
INSERT INTO dl SELECT 'Y', order_ext.new_order_id();
INSERT INTO dl SELECT 'Z', order_ext.new_order_id();
SELECT count(*) FROM dl, LATERAL order_ext.create_order(dl.id, 11,
  jsonb_build_array(jsonb_build_object('sku', CASE tag WHEN 'X' THEN 'DL-B' WHEN 'Y' THEN 'DL-A' ELSE 'DL-Z' END,
                                       'qty', 1, 'unit_price', 100))) o;
UPDATE order_ext.timers t SET due_at = now() - CASE d.tag WHEN 'X' THEN interval '2 s' WHEN 'Y' THEN interval '1 s'
                                                          ELSE interval '0.5 s' END
  FROM dl d WHERE t.order_id = d.id;
});
my ($x, $y) = map { $node->safe_psql('postgres', "SELECT id FROM dl WHERE tag = '$_'") } qw(X Y);
# (Z, due after Y, needs nothing anyone holds: the call ends at Y, so that
# X's rows are let go at once, and Z is left due for the next call)
my $buyer1 = open_session($node, q{BEGIN; SELECT status FROM order_ext.create_order(order_ext.new_order_id(), 12, '[{"sku":"DL-A","qty":1,"unit_price":100}]');});
my $buyer2 = open_session($node, 'BEGIN;');
$buyer2->{in} .= q{SELECT status FROM order_ext.create_order(order_ext.new_order_id(), 13, '[{"sku":"DL-A","qty":1,"unit_price":100},{"sku":"DL-B","qty":1,"unit_price":100}]');} . "\nCOMMIT;\nSELECT 'buyer2 done';\n";
$buyer2->{h}->pump_nb;
ok(wait_for($node, 'postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'}, 10),
	'the second buyer waits for DL-A, which the first holds');
my %runner = (in => "SET deadlock_timeout = '10s';\nSELECT order_ext.run_timers_claimed(100);\n", out => '', err => '');
$runner{h} = IPC::Run::start([ 'psql', '-X', '-Atq', '-d', $node->connstr('postgres') ],
	'<', \$runner{in}, '>', \$runner{out}, '2>', \$runner{err},
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
$runner{h}->pump while length $runner{in};	# its input is written only while pumped
# the runner expires X, then waits for DL-A only briefly, and commits
ok(wait_for($node, 'postgres', "SELECT status = 'cancelled' FROM order_ext.orders WHERE order_id = $x", 10),
	'the runner expires X and ends its call (X is seen cancelled only once the call has committed)');
usleep(300_000);
session_do($buyer1, 'COMMIT;');
$buyer2->{h}->pump until $buyer2->{out} =~ /buyer2 done/ || $buyer2->{err} =~ /ERROR/;
$runner{h}->finish;
unlike($buyer2->{err}, qr/deadlock detected/, 'the second buyer gets no deadlock error');
like($buyer2->{out}, qr/pending_payment/, 'and its order is made');
is($runner{out} =~ s/\s+\z//r, '2', 'the runner (the worker\'s call) handled X and Y only: it fired X and put Y back');
like($runner{err}, qr/timer expire of order $y \(pending_payment at version 1\) put back for 5 s: could not obtain lock on row in relation "stock_buckets"/,
	'and put back Y, whose stock row it would have had to wait for, without waiting for it');
is($node->safe_psql('postgres', "SELECT string_agg(status, ',' ORDER BY tag) FROM dl JOIN order_ext.orders o ON o.order_id = dl.id"),
	'cancelled,pending_payment,pending_payment', 'X expired; Y waits for its timer, due again later');
is($node->safe_psql('postgres', q{SELECT count(*) FROM order_ext.timers t JOIN dl ON dl.id = t.order_id
	WHERE dl.tag = 'Z' AND t.due_at <= now()}), '1', 'and the call ended at Y: Z is still due, for the next call');
# run_timers() (pg_cron's, once a minute) does not end at a held lock: it
# puts that timer back and goes on to the rest
$node->safe_psql('postgres', q{
CREATE TABLE dl2 AS SELECT 'P' AS tag, order_ext.new_order_id() AS id;
INSERT INTO dl2 SELECT 'Q', order_ext.new_order_id();
INSERT INTO dl2 SELECT 'R', order_ext.new_order_id();
INSERT INTO dl2 SELECT 'Q2', order_ext.new_order_id();
INSERT INTO dl2 SELECT 'Q3', order_ext.new_order_id();
SELECT count(*) FROM dl2, LATERAL order_ext.create_order(dl2.id, 12,
  jsonb_build_array(jsonb_build_object('sku', CASE WHEN tag LIKE 'Q%' THEN 'DL-A' ELSE 'DL-Z' END,
                                       'qty', 1, 'unit_price', 100))) o;
UPDATE order_ext.timers t SET due_at = now() - CASE d.tag WHEN 'P' THEN interval '3 s' WHEN 'Q' THEN interval '2 s'
                                                          WHEN 'R' THEN interval '1 s' ELSE interval '0.5 s' END
  FROM dl2 d WHERE t.order_id = d.id;
});
my $holder2 = open_session($node, "BEGIN; SELECT 1 FROM order_ext.stock_buckets WHERE sku = 'DL-A' FOR UPDATE;");
my $t0 = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
($rc, $out, $err) = $node->psql('postgres', q{SELECT order_ext.run_timers()});
my $q = $node->safe_psql('postgres', "SELECT id FROM dl2 WHERE tag = 'Q'");
like($err, qr/timer expire of order $q \(pending_payment at version 1\) put back for 5 s/,
	'run_timers() puts back the timer whose stock row is held, naming the first');
my $put_back = $node->safe_psql('postgres', qq{SELECT count(*) FROM order_ext.timers
	WHERE due_at >= '$t0'::timestamptz + interval '5 s'});
cmp_ok($put_back, '>=', 3, 'the Qs (and any earlier order of DL-A due again) were put back');
my ($more) = $err =~ /WARNING:  order_ext: (\d+) more timers put back for 5 s: other transactions held their rows\n?\z/;
is($more, $put_back - 1, 'and the others are counted in one warning at the end');
is(scalar(() = $err =~ /WARNING/g), 2, 'two warnings in all');
is($node->safe_psql('postgres', q{SELECT string_agg(o.status, ',' ORDER BY tag) FROM dl2 JOIN order_ext.orders o ON o.order_id = dl2.id}),
	'cancelled,pending_payment,pending_payment,pending_payment,cancelled', 'and goes on: P and R expired, the Qs wait for their timers');
session_do($holder2, 'COMMIT;');
$holder2->{h}->finish;

# nor for a buyer's holdings row: order H (buyer 30, purchase-limited SKU
# DL-L) is due after P2; buyer 30 is making another order of DL-L (its
# holdings row locked); the runner fires P2, then puts back H at once
$node->safe_psql('postgres', q{
SELECT order_ext.set_purchase_limit('DL-L', 5);
CREATE TABLE dl3 AS SELECT 'P2' AS tag, order_ext.new_order_id() AS id;
INSERT INTO dl3 SELECT 'H', order_ext.new_order_id();
SELECT count(*) FROM dl3, LATERAL order_ext.create_order(dl3.id, CASE tag WHEN 'H' THEN 30 ELSE 31 END,
  jsonb_build_array(jsonb_build_object('sku', CASE tag WHEN 'H' THEN 'DL-L' ELSE 'DL-Z' END,
                                       'qty', 1, 'unit_price', 100))) o;
UPDATE order_ext.timers t SET due_at = now() - CASE d.tag WHEN 'P2' THEN interval '2 s' ELSE interval '1 s' END
  FROM dl3 d WHERE t.order_id = d.id;
});
my $h = $node->safe_psql('postgres', "SELECT id FROM dl3 WHERE tag = 'H'");
my $holder3 = open_session($node, q{BEGIN; SELECT status FROM order_ext.create_order(order_ext.new_order_id(), 30, '[{"sku":"DL-L","qty":1,"unit_price":100}]');});
($rc, $out, $err) = $node->psql('postgres', q{SET lock_timeout = '5s'; SELECT order_ext.run_timers_claimed(100)});
like($err, qr/timer expire of order $h \(pending_payment at version 1\) put back for 5 s: could not obtain lock on row in relation "buyer_holdings"/,
	'a runner that has fired a timer does not wait for a buyer\'s holdings row either');
is($node->safe_psql('postgres', q{SELECT string_agg(o.status, ',' ORDER BY tag) FROM dl3 JOIN order_ext.orders o ON o.order_id = dl3.id}),
	'pending_payment,cancelled', 'P2 expired, H waits for its timer');
session_do($holder3, 'COMMIT;');
$holder3->{h}->finish;
# (H alone due: the other timers, the new order's included, later)
$node->safe_psql('postgres', "UPDATE order_ext.timers SET due_at = CASE WHEN order_id = $h THEN now() ELSE now() + interval '1 hour' END");
is($node->safe_psql('postgres', 'SELECT order_ext.run_timers()'), '1', 'the next run fires H');
is($node->safe_psql('postgres', q{SELECT qty FROM order_ext.buyer_holdings WHERE buyer_id = 30 AND sku = 'DL-L'}), '1',
	'and buyer 30 holds only the units of the order it made meanwhile');

# two more due timers: the second fires with the short lock wait, and the
# session has its own lock_timeout back afterwards
$node->safe_psql('postgres', q{SELECT count(*) FROM generate_series(1, 2) g,
  LATERAL order_ext.create_order(order_ext.new_order_id(), 20 + g, '[{"sku":"TR-1","qty":1,"unit_price":100}]') o});
my ($rc2, $lt) = $node->psql('postgres', q{SET lock_timeout = '7s'; SELECT order_ext.run_timers(); SHOW lock_timeout});
like($lt, qr/^([2-9]|\d\d+)\n7s$/, 'a session whose run_timers fired several timers has its lock_timeout back afterwards');

$buyer1->{h}->finish;
$buyer2->{h}->finish;
$node->stop;
done_testing();
