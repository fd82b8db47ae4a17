# The batch path's mover (src/archive_move.c) against concurrent writers
# (README "Archiving history orders"): it deletes each order row by the
# tuple id its scan found, so
#   1. an order another transaction is updating while the batch runs (the
#      delete does not wait for it) stays live for the next run, with every
#      row of its own, and the next run moves it with what the update added;
#   2. so does an order a writer only locked while adding a child row (a
#      late payment, say): the batch does not wait for it either, and the
#      next run, after the writer commits, moves it with that row;
#   3. a child row changed by someone who did not lock its order first makes
#      the batch wait for that change and then fail whole (40001): nothing
#      of it moved, and a rerun moves it.
#   4. a month with row-level security on one of its tables goes by the
#      statements instead, and the log says why;
#   5. so does a month whose history tables generate a column (added to a
#      live table and its twin alike), and the statements leave it to be
#      generated (before, they tried to copy it, and every run failed);
#   6. and one whose history table has a column of its own (it gets its
#      default), or a column of another type than its live twin's;
#   7. with those columns dropped again, the next month goes by the mover,
#      mapping around the dropped columns;
#   8. an index history has and live lacks is built on a finished month's
#      live partitions before the month moves whole (not by ATTACH inside the
#      move, with the live tables locked), and on no partition of a month
#      that is not finished;
#   9. a finished month whose partitions history would not take as they
#      are (a column of history's own; a CHECK constraint of history's) goes
#      by batches instead of failing the run, and the log says why.
#  10. nothing is built for a month whose orders are all finished but one of
#      which has an after-sale that can still move (it goes by batches);
#  11. a live partition too busy for its index to be built beforehand is
#      left to ATTACH: the log says so, and the month still moves whole;
#  12. a month with a live partition of another table access method goes by
#      the statements, and the log says why;
#  13. with archive() owned by a role that may not delete from one live
#      partition, the month goes by the statements, the log says why, the
#      statements are refused naming that partition, and nothing of the
#      batch moves; given back to its owner, archive() moves it; a caller
#      at its connection limit archives too (its archive process logs in as
#      the caller).
# Every other month here goes by the mover, never by the statements.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IPC::Run;

use lib 't', 'test/t';
use ArchiveTest;

my $N = 200;
my $node = archive_node('archive_mover', 'order_ext', 'log_min_messages = log');
$node->safe_psql('postgres', 'CREATE EXTENSION order_ext');
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# archive()'s output and errors (start_archive)
my ($aout, $aerr);

my $waiting = q{SELECT count(*) > 0 FROM pg_stat_activity
                WHERE backend_type = 'order_ext archive' AND wait_event = 'transactionid'};

sub rows_of
{
	my ($id, $side) = @_;
	my $h = $side eq 'history' ? '_history' : '';
	return $node->safe_psql('postgres', 'SELECT ' . join(' || \'|\' || ', map {
		"(SELECT count(*) FROM order_ext.$_$h WHERE order_id = $id)"
	} qw(orders order_items order_payments order_discounts order_events)));
}

# A month of $N finished orders and three paid ones: the first run moves the
# finished ones (so history has the month's partitions, and the rest goes by
# batches); each scenario then finishes one of the three and archives it.
make_month($node, 'postgres', '2024-01-01', $N, 3);
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), $N - 3, 'the finished orders moved');
my @open = split /\n/, $node->safe_psql('postgres', q{SELECT order_id FROM order_ext.orders ORDER BY 1});
is(scalar(@open), 3, 'three orders are left');
sub finish
{
	my ($id) = @_;
	$node->safe_psql('postgres', qq{
SELECT order_ext.fire($id, 'ship', actor => 'merchant');
SELECT order_ext.fire($id, 'confirm_receipt', actor => 'buyer');
SELECT order_ext.fire($id, 'complete');});
}
# archive() while a session holds $session_sql open: it waits for that
# session ($waits) or finishes before it commits
sub run_against
{
	my ($session_sql, $what, $waits) = @_;
	my $a = open_session($node, $session_sql);
	my $h = start_archive($node, \$aout, \$aerr);
	if ($waits)
	{
		ok(wait_for($node, 'postgres', $waiting, 60), "archive() waits for $what");
		session_do($a, 'COMMIT;');
		$h->finish;
	}
	else
	{
		$h->finish;
		ok(1, "archive() finished without waiting for $what");
		session_do($a, 'COMMIT;');
	}
	chomp $aout;
}

# 1. updated after the scan saw it: stays for the next run
my $x = $open[0];
finish($x);
run_against(qq{BEGIN; UPDATE order_ext.orders SET attrs = attrs || '{"late": 1}' WHERE order_id = $x;},
	'the order being updated', 0);
is($aout, '0', 'archive() left the order updated meanwhile') or diag($aerr);
my $x_live = rows_of($x, 'live');
like($x_live, qr/^1\|3\|1\|1\|\d+$/, "the updated order is live with all its rows ($x_live)");
is(rows_of($x, 'history'), '0|0|0|0|0', 'nothing of it is in history');
is($node->safe_psql('postgres', "SELECT attrs->>'late' FROM order_ext.orders WHERE order_id = $x"), '1',
	'the update stands');
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '1', 'the next run moves it');
is(rows_of($x, 'history'), $x_live, 'with every row it had, the update\'s included');

# 2. locked while a child row is added: stays, then moves with that row
my $y = $open[1];
finish($y);
my $y_live = rows_of($y, 'live');
run_against(qq{BEGIN;
SELECT 1 FROM order_ext.orders WHERE order_id = $y FOR UPDATE;
INSERT INTO order_ext.order_payments (order_id, kind, txn_id, amount) VALUES ($y, 'payment', 'late-$y', 1);},
	'the order being locked', 0);
is($aout, '0', 'archive() left the order locked meanwhile') or diag($aerr);
my @y = split /\|/, $y_live;
$y[2]++;
is(rows_of($y, 'live'), join('|', @y), 'it is live, with the payment added under the lock');
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '1', 'the next run moves it');
is(rows_of($y, 'history'), join('|', @y), 'with the payment');
is(rows_of($y, 'live'), '0|0|0|0|0', 'nothing of it stayed live');

# 3. a child row changed without its order locked: the batch fails whole
my $z = $open[2];
finish($z);
my $z_live = rows_of($z, 'live');
run_against(qq{BEGIN; UPDATE order_ext.order_items SET qty = qty WHERE order_id = $z AND line_no = 2;},
	'the item row being updated', 1);
like($aerr, qr/40001.*changed while it was archived/s, 'the run fails with 40001, naming the change');
is(rows_of($z, 'history'), '0|0|0|0|0', 'nothing of the failed batch moved');
is(rows_of($z, 'live'), $z_live, 'the order is live with all its rows');
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '1', 'a rerun moves it');
is(rows_of($z, 'history'), $z_live, 'with all its rows');

my ($orders, $not_one, $misplaced) = split /\|/, placement($node, 'postgres');
is("$orders|$not_one|$misplaced", $N . '|0|0', 'every order in one place, with its rows');
my $log = slurp_file($node->logfile);
unlike($log, qr/moves by SQL statements/, 'every month went by the mover');
# the month is empty now: later runs pass it over without a word (they
# logged "batches of orders_p2024_01" on every run, the worker's included)
is($node->safe_psql('postgres', "SELECT count(*) FROM order_ext.orders_p2024_01"), '0', 'January is empty');
my $quiet_from = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '0', 'a run moves nothing');
unlike(slurp_file($node->logfile, $quiet_from), qr/batches of orders_p2024_01/,
	'and says nothing of the emptied month');
# nor of a month whose orders are all still under way (it logged "batches
# of ..." on every run, for as long as one order there stayed open)
make_month($node, 'postgres', '2023-11-01', 3, 3);	# (3 orders more below)
$quiet_from = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '0',
	'a month of orders all under way: nothing moves');
unlike(slurp_file($node->logfile, $quiet_from), qr/orders_p2023_11/, 'and nothing is said of it');

# 4. row-level security on a live partition: the mover reads below it, so
#    that month goes by the statements (which apply it), and the log says why
make_month($node, 'postgres', '2024-03-01', 50, 2);
$node->safe_psql('postgres', 'ALTER TABLE order_ext.order_payments_p2024_03 ENABLE ROW LEVEL SECURITY');
my $offset = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '48',
	'the month with row-level security moved its finished orders');
like(slurp_file($node->logfile, $offset),
	qr/orders_p2024_03 moves by SQL statements: order_payments_p2024_03 or order_payments_history_p2024_03 has triggers, rules or row-level security/,
	'by the statements, and the log says why');
($orders, $not_one, $misplaced) = split /\|/, placement($node, 'postgres');
is("$orders|$not_one|$misplaced", ($N + 53) . '|0|0', 'every order in one place, with its rows');
$node->safe_psql('postgres', 'ALTER TABLE order_ext.order_payments_p2024_03 DISABLE ROW LEVEL SECURITY');

# Archive a new month of 30 orders (2 left open) with $ddl in place: the
# moved count, and the log of the run.
my $total = $N + 53;	# (the 3 of May still under way included)
sub month_with
{
	my ($month, $ddl) = @_;
	make_month($node, 'postgres', $month, 30, 2);
	$node->safe_psql('postgres', $ddl) if $ddl ne '';
	my $from = -s $node->logfile;
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT order_ext.archive('30 days', 1000)");
	$total += 30;
	return ($rc == 0 ? $out : "failed: $err", slurp_file($node->logfile, $from));
}

# 5. a generated column on orders and orders_history alike
my ($moved, $runlog) = month_with('2024-05-01', q{
ALTER TABLE order_ext.orders ADD COLUMN twice_version int GENERATED ALWAYS AS (version * 2) STORED;
ALTER TABLE order_ext.orders_history ADD COLUMN twice_version int GENERATED ALWAYS AS (version * 2) STORED;});
is($moved, '28', 'a month whose history generates a column moved its finished orders');
like($runlog, qr/orders_p2024_05 moves by SQL statements: column twice_version of orders_history_p2024_05 is generated/,
	'by the statements, and the log says why');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE twice_version = version * 2) || '/' || count(*)
	FROM order_ext.orders_history WHERE order_id >= order_ext.min_order_id('2024-05-01')}), '28/28',
	'history computed the generated column of every order moved');
$node->safe_psql('postgres', 'ALTER TABLE order_ext.orders DROP COLUMN twice_version;
	ALTER TABLE order_ext.orders_history DROP COLUMN twice_version');

# 6. a history column of its own, then one of another type
($moved, $runlog) = month_with('2024-06-01',
	q{ALTER TABLE order_ext.order_items_history ADD COLUMN archived_by text DEFAULT 'archive'});
is($moved, '28', 'a month whose history table has a column of its own moved its finished orders');
like($runlog, qr/orders_p2024_06 moves by SQL statements: column archived_by of order_items_history_p2024_06 is not in order_items_p2024_06/,
	'by the statements, and the log says why');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE archived_by = 'archive') || '/' || count(*)
	FROM order_ext.order_items_history WHERE order_id >= order_ext.min_order_id('2024-06-01')}), '84/84',
	'its moved rows have the column\'s default');
$node->safe_psql('postgres', 'ALTER TABLE order_ext.order_items_history DROP COLUMN archived_by');
($moved, $runlog) = month_with('2024-07-01',
	q{ALTER TABLE order_ext.order_discounts_history ALTER COLUMN code TYPE varchar(40)});
is($moved, '28', 'a month whose history table has a column of another type moved its finished orders');
like($runlog, qr/orders_p2024_07 moves by SQL statements: column code of order_discounts_history_p2024_07 differs from its live twin's/,
	'by the statements, and the log says why');
$node->safe_psql('postgres', 'ALTER TABLE order_ext.order_discounts_history ALTER COLUMN code TYPE text');

# 7. with the dropped columns left behind, the mover again, every value in
#    its column (the rows of the finished orders read the same in history)
my $rows_of_month = q{SELECT md5(string_agg(r::text, ',' ORDER BY r.order_id, r.line_no))
	FROM order_ext.%s r JOIN order_ext.%s o USING (order_id)
	WHERE r.order_id >= order_ext.min_order_id('2024-08-01') AND o.status = 'completed'};
make_month($node, 'postgres', '2024-08-01', 30, 2);
my $items_before = $node->safe_psql('postgres', sprintf($rows_of_month, 'order_items', 'orders'));
my $from = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '28',
	'the next month moved its finished orders');
$total += 30;
unlike(slurp_file($node->logfile, $from), qr/moves by SQL statements/, 'by the mover, around the dropped columns');
is($node->safe_psql('postgres', sprintf($rows_of_month, 'order_items_history', 'orders_history')), $items_before,
	'its item rows read in history as they did live');

# 8. indexes of history's own: built before a whole month's move
$node->safe_psql('postgres', q{
CREATE INDEX orders_history_completed ON order_ext.orders_history (completed_at);
CREATE INDEX order_items_history_sku ON order_ext.order_items_history (sku, order_id);});
my $live_indexes = q{SELECT count(*) FROM pg_index WHERE indrelid IN
	('order_ext.orders_p2024_10'::regclass, 'order_ext.order_items_p2024_10'::regclass)};
make_month($node, 'postgres', '2024-09-01', 40, 0);
make_month($node, 'postgres', '2024-10-01', 30, 1);
my $before_10 = $node->safe_psql('postgres', $live_indexes);
$from = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), 40 + 29,
	'the finished month and the finished orders of the other moved');
$total += 70;
$runlog = slurp_file($node->logfile, $from);
like($runlog, qr/built index \S+ on orders_p2024_09 in \d+ ms before moving its month whole/,
	'the orders index history has was built on the live partition first');
like($runlog, qr/built index \S+ on order_items_p2024_09 in \d+ ms/, 'and the items one');
like($runlog, qr/moved month orders_p2024_09 as a whole \(40 orders/, 'then the month moved whole');
unlike($runlog, qr/built index \S+ on \w+_p2024_10/, 'nothing was built for the month that is not finished');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent IN ('order_ext.orders_history_completed'::regclass, 'order_ext.order_items_history_sku'::regclass)
	AND c.relname ~ '_p2024_(09|10)_'}), '4',
	'both months\' history partitions have both indexes, attached to history\'s');
is($node->safe_psql('postgres', $live_indexes), $before_10, 'and the live partitions of the other month none more');

# 9. partitions that history would not take as they are
sub finished_month_with
{
	my ($month, $ddl) = @_;
	make_month($node, 'postgres', $month, 25, 0);
	$node->safe_psql('postgres', $ddl);
	my $from = -s $node->logfile;
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT order_ext.archive('30 days', 1000)");
	$total += 25;
	return ($rc == 0 ? $out : "failed: $err", slurp_file($node->logfile, $from));
}
($moved, $runlog) = finished_month_with('2024-11-01', 'ALTER TABLE order_ext.order_events_history ADD COLUMN note text');
is($moved, '25', 'a finished month with a history column live lacks moved');
like($runlog, qr/orders_p2024_11 cannot move whole: column note of order_events_history is not in order_events_p2024_11/,
	'not whole, and the log says why');
like($runlog, qr/batches of orders_p2024_11/, 'but by batches');
$node->safe_psql('postgres', 'ALTER TABLE order_ext.order_events_history DROP COLUMN note');
($moved, $runlog) = finished_month_with('2024-12-01',
	'ALTER TABLE order_ext.orders_history ADD CONSTRAINT paid_not_negative CHECK (paid_total >= 0)');
is($moved, '25', 'a finished month whose history has a CHECK constraint of its own moved');
like($runlog, qr/orders_p2024_12 cannot move whole: child table is missing constraint "paid_not_negative"/,
	'not whole (ATTACH refused it), and the log says why');
like($runlog, qr/batches of orders_p2024_12/, 'but by batches');

$node->safe_psql('postgres', 'ALTER TABLE order_ext.orders_history DROP CONSTRAINT paid_not_negative');

# 10. a finished month with an after-sale that can still move: no index
#     built for it, and the order with the after-sale stays live
make_month($node, 'postgres', '2025-01-01', 20, 1);
my $with_request = $node->safe_psql('postgres', q{SELECT order_id FROM order_ext.orders
	WHERE order_id >= order_ext.min_order_id('2025-01-01') AND status = 'paid'});
$node->safe_psql('postgres', qq{
SELECT order_ext.fire($with_request, 'ship', actor => 'merchant');
SELECT order_ext.fire($with_request, 'confirm_receipt', actor => 'buyer');
SELECT order_ext.open_after_sale($with_request, 'refund_only', '[{"line_no":1,"qty":1}]');
SELECT order_ext.fire($with_request, 'complete');});
$from = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '19',
	'a finished month with an open after-sale moved the other orders');
$total += 20;
$runlog = slurp_file($node->logfile, $from);
unlike($runlog, qr/built index \S+ on \w+_p2025_01/, 'no index was built on its live partitions');
like($runlog, qr/batches of orders_p2025_01/, 'it went by batches');
is($node->safe_psql('postgres', "SELECT status FROM order_ext.orders WHERE order_id = $with_request"),
	'completed', 'the order with the after-sale stayed live');

# 11. a live partition busy while its index would be built: left to ATTACH
make_month($node, 'postgres', '2025-02-01', 20, 0);
my $busy = open_session($node, 'BEGIN; LOCK TABLE order_ext.order_items_p2025_02 IN ROW EXCLUSIVE MODE;');
$from = -s $node->logfile;
my $h = start_archive($node, \$aout, \$aerr);
my $seen = 0;
for (my $i = 0; $i < $timeout * 20 && !$seen; $i++)
{
	$seen = slurp_file($node->logfile, $from) =~ /order_items_p2025_02 busy/;
	usleep(50_000) unless $seen;
}
session_do($busy, 'COMMIT;');
$h->finish;
chomp $aout;
is($aout, '20', 'the month with a busy partition moved');
$total += 20;
$runlog = slurp_file($node->logfile, $from);
like($runlog, qr/built index \S+ on orders_p2025_02 in \d+ ms before moving its month whole/,
	'the index of the partition that was free was built beforehand');
like($runlog, qr/order_items_p2025_02 busy \(canceling statement due to lock timeout\); its missing indexes are left to the move/,
	'the busy one was left to the move, and the log says so');
like($runlog, qr/moved month orders_p2025_02 as a whole \(20 orders/, 'the month moved whole');
# an index built beforehand keeps the live partition's name; one ATTACH
# built is named after the partition as history has it
is($node->safe_psql('postgres', q{SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i
	JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent IN ('order_ext.orders_history_completed'::regclass, 'order_ext.order_items_history_sku'::regclass)
	AND c.relname ~ '_p2025_02_'}), 'order_items_history_p2025_02_sku_order_id_idx,orders_p2025_02_completed_at_idx',
	'ATTACH built the index left to it, the other was built beforehand; both are history\'s');

# 12. a live partition of another table access method (here a copy of heap's
#     handler, which the mover cannot tell from one it does not know): the
#     statements, which go through the access method, and the log says why
($moved, $runlog) = month_with('2025-03-01', q{
CREATE ACCESS METHOD heap_copy TYPE TABLE HANDLER heap_tableam_handler;
ALTER TABLE order_ext.order_events_p2025_03 SET ACCESS METHOD heap_copy;});
is($moved, '28', 'a month with a partition of another access method moved its finished orders');
like($runlog, qr/orders_p2025_03 moves by SQL statements: order_events_p2025_03 or order_events_history_p2025_03 is not a heap table/,
	'by the statements, and the log says why');
is($node->safe_psql('postgres', q{SELECT count(DISTINCT order_id) FROM order_ext.order_events_history
	WHERE order_id >= order_ext.min_order_id('2025-03-01')}), '28',
	'the events of every order moved went to history with it');

# 13. archive() runs as its owner (SECURITY DEFINER); owned by a role that
#     may do everything but delete from one live partition of a month (and
#     may log in: its worker logs in as the caller, then runs as the owner).
#     Only a table's owner may add a partition to it, so the month's history
#     partitions are made first, as archive() makes them.
($moved, $runlog) = month_with('2025-04-01', q{
DO $$
DECLARE
	t text;
	bound text;
BEGIN
	FOREACH t IN ARRAY ARRAY['orders', 'order_items', 'order_payments', 'order_discounts', 'order_events'] LOOP
		SELECT pg_get_expr(relpartbound, oid) INTO STRICT bound FROM pg_class
		WHERE oid = format('order_ext.%I', t || '_p2025_04')::regclass;
		EXECUTE format('CREATE TABLE order_ext.%I PARTITION OF order_ext.%I %s',
			t || '_history_p2025_04', t || '_history', bound);
	END LOOP;
END $$;
CREATE ROLE archiver_less NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA order_ext TO archiver_less;
GRANT ALL ON ALL TABLES IN SCHEMA order_ext TO archiver_less;
GRANT ALL ON ALL SEQUENCES IN SCHEMA order_ext TO archiver_less;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA order_ext TO archiver_less;
REVOKE DELETE ON order_ext.order_items_p2025_04 FROM archiver_less;
ALTER FUNCTION order_ext.archive(interval, integer) OWNER TO archiver_less;});
like($moved, qr/^failed: .*permission denied for table order_items_p2025_04/,
	'the statements are refused, naming the partition');
like($runlog, qr/orders_p2025_04 moves by SQL statements: this role may not move rows from order_items_p2025_04 to order_items_history_p2025_04/,
	'the mover left the month to them, and the log says why');
is($node->safe_psql('postgres', q{SELECT count(*) FROM order_ext.all_orders
	WHERE archived AND order_id >= order_ext.min_order_id('2025-04-01')}), '0', 'nothing of the month moved');
$node->safe_psql('postgres', q{ALTER FUNCTION order_ext.archive(interval, integer) OWNER TO CURRENT_USER});
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)"), '28', 'given back to its owner, archive() moves it');
# the archive process logs in as its caller: a caller at its connection limit
# (the archive process is a background worker, which the limit does not count)
$node->safe_psql('postgres', q{CREATE ROLE archive_caller LOGIN CONNECTION LIMIT 1;
GRANT USAGE ON SCHEMA order_ext TO archive_caller;
GRANT EXECUTE ON FUNCTION order_ext.archive(interval, integer) TO archive_caller;});
make_month($node, 'postgres', '2025-05-01', 10, 0);
$total += 10;
is($node->safe_psql('postgres', "SELECT order_ext.archive('30 days', 1000)", extra_params => ['-U', 'archive_caller']),
	'10', 'a caller at its connection limit archives');

($orders, $not_one, $misplaced) = split /\|/, placement($node, 'postgres');
is("$orders|$not_one|$misplaced", "$total|0|0", 'every order in one place, with its rows');
$node->stop;
done_testing();
