--
-- archive: history twins, archive() by whole month and by batches, non-terminal
-- and recent orders staying put, child rows moving with their order,
-- find_order(), all_orders, timeline() and create_order() for archived orders
-- (API.md "Archiving history orders")
--
-- Ids are never printed: orders are known by month and number.
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{13,}', '<id>', 'g');
END $$;

-- the history tables have the live tables' columns, in the same order
SELECT t AS live_table,
       (SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = ('order_ext.' || t)::regclass AND attnum > 0 AND NOT attisdropped)
     = (SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = ('order_ext.' || t || '_history')::regclass AND attnum > 0 AND NOT attisdropped)
       AS same_columns,
       (SELECT relkind FROM pg_class WHERE oid = ('order_ext.' || t || '_history')::regclass) AS kind
FROM unnest(ARRAY['orders', 'order_items', 'order_payments', 'order_discounts', 'order_events', 'after_sales']) t;

SELECT order_ext.create_partitions('2024-01-01', '2024-03-01') AS months;
SELECT order_ext.create_partitions(now() - interval '2 days', now()) >= 0 AS recent_months;

-- 20 orders on each of Jan, Feb and Mar 2024 and 20 of today: 2 lines, an
-- order-level discount, a payment row for the even ones
CREATE TEMP TABLE o AS
SELECT m.tag AS month, g AS n,
       order_ext.min_order_id(m.t + g * interval '1 hour') AS id
FROM (VALUES ('jan', '2024-01-03'::timestamptz), ('feb', '2024-02-03'), ('mar', '2024-03-03'),
             ('now', date_trunc('minute', now()) - interval '25 hours')) m(tag, t),
     generate_series(1, 20) g;
SELECT count(*) AS created
FROM o, LATERAL order_ext.create_order(o.id, 100 + o.n,
        '[{"sku":"AR-1","qty":1,"unit_price":1000},{"sku":"AR-2","qty":2,"unit_price":250}]',
        discounts => '[{"kind":"coupon","code":"C1","amount":100}]') c;
INSERT INTO order_ext.order_payments (order_id, kind, txn_id, amount)
SELECT id, 'payment', 'txn-' || month || '-' || n, 1400 FROM o WHERE n % 2 = 0;

-- January: every order ends (cancelled, or paid and closed); February: all
-- but five; March: none; today: every one
SELECT count(*) AS cancelled FROM o, LATERAL order_ext.fire(o.id, 'cancel', actor => 'buyer') f
WHERE month IN ('jan', 'now') OR (month = 'feb' AND n > 5);
SELECT count(*) AS in_progress FROM o, order_ext.orders r,
     LATERAL order_ext.record_payment(o.id, 'txn-' || o.n, r.payable_total) f
WHERE r.order_id = o.id AND month = 'feb' AND n <= 5;

-- what every order has now, to compare after archiving
CREATE TEMP TABLE before AS
SELECT o.month, o.n, o.id,
       (SELECT to_jsonb(x) FROM order_ext.orders x WHERE x.order_id = o.id) AS ord,
       (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.line_no) FROM order_ext.order_items x WHERE x.order_id = o.id) AS items,
       (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.txn_id) FROM order_ext.order_payments x WHERE x.order_id = o.id) AS payments,
       (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.seq) FROM order_ext.order_discounts x WHERE x.order_id = o.id) AS discounts,
       (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.version) FROM order_ext.order_events x WHERE x.order_id = o.id) AS events
FROM o;

--------------------------------------------------------------------------
-- Arguments
--------------------------------------------------------------------------

SELECT pg_temp.err('SELECT order_ext.archive(NULL)') AS null_older_than;
SELECT pg_temp.err('SELECT order_ext.archive(''1 day'', NULL)') AS null_batch_size;
SELECT pg_temp.err('SELECT order_ext.archive(''-1 day'')') AS negative_older_than;
SELECT pg_temp.err('SELECT order_ext.archive(''1 day'', 0)') AS zero_batch_size;
-- the worker's order_ext.archive_after: an interval not negative as a whole
-- ('1 mon -1 day' is fine; one field below zero was refused); checked as
-- ALTER SYSTEM writes it
ALTER SYSTEM SET order_ext.archive_after = '1 day -25 hours';
ALTER SYSTEM SET order_ext.archive_after = '1 mon -1 day';
ALTER SYSTEM RESET order_ext.archive_after;
-- it commits batch by batch elsewhere: not inside a transaction that wrote
BEGIN;
INSERT INTO order_ext.order_payments (order_id, kind, txn_id, amount)
SELECT id, 'payment', 'txn-extra', 1 FROM o WHERE month = 'mar' AND n = 1;
SELECT pg_temp.err('SELECT order_ext.archive(''30 days'')') AS in_writing_transaction;
ROLLBACK;
-- nor in a READ ONLY transaction: its process commits on its own, but the
-- caller asked for no writes (25006, as from every writing function)
BEGIN READ ONLY;
SELECT pg_temp.err('SELECT order_ext.archive(''30 days'')') AS in_read_only_transaction;
ROLLBACK;
-- nor inside one that holds a lock on an order table (one that has read
-- it, say): its process would wait for that lock, and leave months behind
BEGIN;
LOCK TABLE ONLY order_ext.orders_history IN ACCESS SHARE MODE;
SELECT pg_temp.err('SELECT order_ext.archive(''30 days'')') AS holding_history_lock;
ROLLBACK;
BEGIN;
SELECT count(*) >= 0 AS read_orders FROM order_ext.orders;
SELECT pg_temp.err('SELECT order_ext.archive(''30 days'')')
       LIKE '25001: archive() cannot run in a transaction that holds a lock on order_ext.order%' AS having_read_orders;
ROLLBACK;
-- a read through indexes locks them too: the message names a table, not
-- one of its indexes
BEGIN;
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT count(*) >= 0 AS read_by_index FROM order_ext.orders WHERE buyer_id = 101;
SELECT (SELECT c.relkind FROM pg_class c WHERE c.relnamespace = 'order_ext'::regnamespace
         AND c.relname = substring(pg_temp.err('SELECT order_ext.archive(''30 days'')') FROM 'order_ext\.(\S+)$'))
       IN ('r', 'p') AS names_a_table;
ROLLBACK;
-- nothing older than the ids: nothing moves
SELECT order_ext.archive('100 years') AS moved_100_years;
-- a history twin gone missing: the run stops before it moves anything
ALTER TABLE order_ext.after_sales_history RENAME TO after_sales_history_away;
SELECT pg_temp.err('SELECT order_ext.archive(''30 days'')') AS missing_twin;
ALTER TABLE order_ext.after_sales_history_away RENAME TO after_sales_history;
SELECT count(*) AS archived_so_far FROM order_ext.orders_history;

--------------------------------------------------------------------------
-- Archive everything that ended before 30 days ago, 3 orders per batch
--------------------------------------------------------------------------

SELECT order_ext.archive('30 days', 3) AS moved;

-- where each month's orders are now
SELECT o.month,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM order_ext.orders x WHERE x.order_id = o.id)) AS live,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM order_ext.orders_history x WHERE x.order_id = o.id)) AS archived
FROM o GROUP BY o.month ORDER BY min(o.id);
-- the ones that stayed in February are exactly the unfinished ones
SELECT o.n, x.status FROM o JOIN order_ext.orders x ON x.order_id = o.id WHERE o.month = 'feb' ORDER BY o.n;

-- January moved as whole partitions: the live tables have no January any
-- more, history has it under the history names; February moved by batches
-- into history partitions of its own, and stays live too
SELECT p.relname AS parent, c.relname AS partition
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relnamespace = 'order_ext'::regnamespace AND c.relname ~ '_p2024_0[12]$'
ORDER BY 1, 2;

-- every order is in exactly one of live and history, with every row it
-- had, unchanged
SELECT b.month,
       count(*) AS orders,
       count(*) FILTER (WHERE (SELECT count(*) FROM order_ext.orders x WHERE x.order_id = b.id)
                            + (SELECT count(*) FROM order_ext.orders_history x WHERE x.order_id = b.id) = 1) AS in_one_place,
       count(*) FILTER (WHERE b.ord = coalesce(
                 (SELECT to_jsonb(x) FROM order_ext.orders x WHERE x.order_id = b.id),
                 (SELECT to_jsonb(x) FROM order_ext.orders_history x WHERE x.order_id = b.id))) AS order_same,
       count(*) FILTER (WHERE b.items = coalesce(
                 (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.line_no) FROM order_ext.order_items x WHERE x.order_id = b.id),
                 (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.line_no) FROM order_ext.order_items_history x WHERE x.order_id = b.id))) AS items_same,
       count(*) FILTER (WHERE b.payments IS NOT DISTINCT FROM coalesce(
                 (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.txn_id) FROM order_ext.order_payments x WHERE x.order_id = b.id),
                 (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.txn_id) FROM order_ext.order_payments_history x WHERE x.order_id = b.id))) AS payments_same,
       count(*) FILTER (WHERE b.discounts = coalesce(
                 (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.seq) FROM order_ext.order_discounts x WHERE x.order_id = b.id),
                 (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.seq) FROM order_ext.order_discounts_history x WHERE x.order_id = b.id))) AS discounts_same,
       count(*) FILTER (WHERE b.events = coalesce(
                 (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.version) FROM order_ext.order_events x WHERE x.order_id = b.id),
                 (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.version) FROM order_ext.order_events_history x WHERE x.order_id = b.id))) AS events_same
FROM before b GROUP BY b.month ORDER BY min(b.id);
-- and no child row is left behind without its order, on either side
SELECT t, (SELECT count(*) FROM order_ext.order_items_history h
            WHERE NOT EXISTS (SELECT 1 FROM order_ext.orders_history x WHERE x.order_id = h.order_id)) AS orphans_in_history
FROM (VALUES ('items')) v(t);
SELECT (SELECT count(*) FROM order_ext.order_items l WHERE NOT EXISTS (SELECT 1 FROM order_ext.orders x WHERE x.order_id = l.order_id))
     + (SELECT count(*) FROM order_ext.order_payments l WHERE NOT EXISTS (SELECT 1 FROM order_ext.orders x WHERE x.order_id = l.order_id))
     + (SELECT count(*) FROM order_ext.order_discounts l WHERE NOT EXISTS (SELECT 1 FROM order_ext.orders x WHERE x.order_id = l.order_id))
     + (SELECT count(*) FROM order_ext.order_events l WHERE NOT EXISTS (SELECT 1 FROM order_ext.orders x WHERE x.order_id = l.order_id))
       AS orphans_in_live,
       (SELECT count(*) FROM order_ext.order_payments_history l WHERE NOT EXISTS (SELECT 1 FROM order_ext.orders_history x WHERE x.order_id = l.order_id))
     + (SELECT count(*) FROM order_ext.order_discounts_history l WHERE NOT EXISTS (SELECT 1 FROM order_ext.orders_history x WHERE x.order_id = l.order_id))
     + (SELECT count(*) FROM order_ext.order_events_history l WHERE NOT EXISTS (SELECT 1 FROM order_ext.orders_history x WHERE x.order_id = l.order_id))
       AS other_orphans_in_history;

-- the run is in the run log
SELECT source, status, results, message FROM order_ext.worker_runs ORDER BY id DESC LIMIT 1;

-- again: nothing more to move
SELECT order_ext.archive('30 days', 3) AS moved_again;

--------------------------------------------------------------------------
-- Reading history
--------------------------------------------------------------------------

-- find_order: live, archived, none
SELECT o.month, o.n, f.status, f.version, f.payable_total
FROM o, LATERAL order_ext.find_order(o.id) f
WHERE (o.month, o.n) IN (('jan', 1), ('feb', 1), ('feb', 6), ('now', 1))
ORDER BY o.id;
SELECT order_ext.find_order(12345) IS NULL AS missing_is_null,
       (order_ext.find_order(12345)).order_id IS NULL AS no_row;
-- all_orders: every order once, flagged
SELECT a.archived, count(*) FROM order_ext.all_orders a JOIN o ON o.id = a.order_id GROUP BY 1 ORDER BY 1;
SELECT count(*) = count(DISTINCT order_id) AS each_once FROM order_ext.all_orders;
-- timeline of an archived order
SELECT t.version, t.event, t.from_status, t.to_status
FROM o, LATERAL order_ext.timeline(o.id) t WHERE o.month = 'jan' AND o.n = 2 ORDER BY t.version;

-- create_order with an archived id: the same request returns the archived
-- order and writes nothing; another request is OE004
SELECT c.status, c.version
FROM o, LATERAL order_ext.create_order(o.id, 100 + o.n,
        '[{"sku":"AR-1","qty":1,"unit_price":1000},{"sku":"AR-2","qty":2,"unit_price":250}]',
        discounts => '[{"kind":"coupon","code":"C1","amount":100}]') c
WHERE o.month IN ('jan', 'feb') AND o.n = 7;
SELECT pg_temp.err(format($$SELECT order_ext.create_order(%s, 1, '[{"sku":"X","qty":1,"unit_price":1}]')$$, id)) AS other_request
FROM o WHERE o.month = 'jan' AND o.n = 7;
SELECT count(*) AS live_copies FROM order_ext.orders x JOIN o ON o.id = x.order_id WHERE o.month = 'jan';

-- Money that comes late to an archived order (API.md "Money": the gateway's
-- money is never dropped; a repeated callback or refund changes nothing and
-- returns the order).  It is written where the order is, in history, with
-- its event and a 'refund_due' notice; the order stays archived and
-- cancelled.
CREATE FUNCTION pg_temp.money_of(n int) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s v%s paid=%s refunded=%s | ledger=%s events=%s live=%s',
                  h.status, h.version, h.paid_total, h.refunded_total,
                  (SELECT string_agg(p.kind || ':' || p.txn_id || ':' || p.amount, ',' ORDER BY p.kind, p.txn_id)
                     FROM order_ext.order_payments_history p WHERE p.order_id = h.order_id),
                  (SELECT string_agg(e.version || ':' || e.event, ',' ORDER BY e.version)
                     FROM order_ext.order_events_history e WHERE e.order_id = h.order_id),
                  (SELECT count(*) FROM order_ext.orders x WHERE x.order_id = h.order_id)
                  + (SELECT count(*) FROM order_ext.order_payments x WHERE x.order_id = h.order_id)
                  + (SELECT count(*) FROM order_ext.order_events x WHERE x.order_id = h.order_id))
    FROM order_ext.orders_history h WHERE h.order_id = (SELECT id FROM o WHERE month = 'jan' AND o.n = $1)
$$;
SELECT pg_temp.money_of(3) AS before_late_payment;
SELECT r.status, r.version, r.paid_total
FROM o, LATERAL order_ext.record_payment(o.id, 'late-3', 500, 'card') r WHERE o.month = 'jan' AND o.n = 3;
SELECT pg_temp.money_of(3) AS after_late_payment;
SELECT x.event, x.payload->>'txn_id' AS txn_id, x.payload->>'amount' AS amount,
       x.payload->>'reason' AS reason, x.payload->>'refundable' AS refundable
FROM order_ext.outbox x JOIN o ON o.id = x.order_id
WHERE o.month = 'jan' AND o.n = 3 AND x.event IN ('payment', 'refund_due') ORDER BY x.id;
-- the callback again: nothing written, the archived order returned; with
-- another amount: OE004
SELECT r.status, r.version, r.paid_total
FROM o, LATERAL order_ext.record_payment(o.id, 'late-3', 500, 'card') r WHERE o.month = 'jan' AND o.n = 3;
SELECT pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'late-3', 501, 'card')$$, id)) AS other_amount
FROM o WHERE o.month = 'jan' AND o.n = 3;
-- refunded by amount, once; not beyond what it took (OE006); not by lines
-- (OE006 too, as for an order never paid: an archived order's lines stay as
-- they were)
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'late-3-back', amount => 501)$$, id)) AS beyond
FROM o WHERE o.month = 'jan' AND o.n = 3;
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'late-3-lines', '[{"line_no":1,"qty":1}]')$$, id)) AS by_lines
FROM o WHERE o.month = 'jan' AND o.n = 3;
SELECT r.status, r.version, r.refunded_total
FROM o, LATERAL order_ext.refund(o.id, 'late-3-back', amount => 500) r WHERE o.month = 'jan' AND o.n = 3;
SELECT r.status, r.version, r.refunded_total
FROM o, LATERAL order_ext.refund(o.id, 'late-3-back', amount => 500) r WHERE o.month = 'jan' AND o.n = 3;
SELECT pg_temp.money_of(3) AS after_refund;
SELECT t.version, t.event FROM o, LATERAL order_ext.timeline(o.id) t
WHERE o.month = 'jan' AND o.n = 3 ORDER BY t.version;
-- an archived order does not move: OE001 (OE002 first for a stale version)
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'cancel', actor => 'buyer')$$, id)) AS fire_archived,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'cancel', 1, 'buyer')$$, id)) AS fire_stale
FROM o WHERE o.month = 'jan' AND o.n = 3;

--------------------------------------------------------------------------
-- The rest of February ends: it moves by batches into its history partitions
--------------------------------------------------------------------------

SELECT count(*) AS shipped FROM o, LATERAL order_ext.fire(o.id, 'ship', actor => 'merchant') f WHERE month = 'feb' AND n <= 5;
SELECT count(*) AS received FROM o, LATERAL order_ext.fire(o.id, 'confirm_receipt', actor => 'buyer') f WHERE month = 'feb' AND n <= 5;
SELECT count(*) AS completed FROM o, LATERAL order_ext.fire(o.id, 'complete') f WHERE month = 'feb' AND n <= 4;
SELECT order_ext.archive('30 days', 2) AS moved_feb;
SELECT o.n, f.status, (SELECT count(*) FROM order_ext.orders_history h WHERE h.order_id = o.id) AS archived
FROM o, LATERAL order_ext.find_order(o.id) f WHERE o.month = 'feb' AND o.n <= 5 ORDER BY o.n;
SELECT count(*) AS events_of_archived FROM order_ext.order_events_history h JOIN o ON o.id = h.order_id
WHERE o.month = 'feb' AND o.n <= 4;

--------------------------------------------------------------------------
-- A column added to a live table later is added to its history twin
--------------------------------------------------------------------------

ALTER TABLE order_ext.order_items ADD COLUMN gift_note text;
SELECT count(*) AS completed FROM o, LATERAL order_ext.fire(o.id, 'complete') f WHERE month = 'feb' AND n = 5;
SELECT order_ext.archive('30 days') AS moved_last;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'order_ext.order_items_history'::regclass AND attname = 'gift_note';
SELECT count(*) AS live_february FROM order_ext.orders x JOIN o ON o.id = x.order_id WHERE o.month = 'feb';

-- a short cutoff takes today's ended orders too (into a history partition of this month)
SELECT order_ext.archive('0 seconds', 1000) AS moved_today;
SELECT count(*) AS live_today FROM order_ext.orders x JOIN o ON o.id = x.order_id WHERE o.month = 'now';

--------------------------------------------------------------------------
-- An order whose after-sale is still open stays live, also when every order
-- of its month has ended (the month then moves by batches, not whole); once
-- the after-sale is refunded, the order moves
--------------------------------------------------------------------------

SELECT order_ext.create_partitions('2024-04-01', '2024-04-30') AS april;
CREATE TEMP TABLE a AS
SELECT g AS n, order_ext.min_order_id('2024-04-03'::timestamptz + g * interval '1 hour') AS id
FROM generate_series(1, 3) g;
SELECT count(*) AS created FROM a,
       LATERAL order_ext.create_order(a.id, 200 + a.n, '[{"sku":"AR-1","qty":2,"unit_price":1000}]') c;
SELECT count(*) AS paid FROM a, order_ext.orders r,
       LATERAL order_ext.record_payment(a.id, 'txn-apr-' || a.n, r.payable_total) f WHERE r.order_id = a.id;
SELECT count(*) AS shipped FROM a, LATERAL order_ext.fire(a.id, 'ship', actor => 'merchant') f;
SELECT count(*) AS received FROM a, LATERAL order_ext.fire(a.id, 'confirm_receipt', actor => 'buyer') f;
-- order 1: an after-sale waiting for the merchant; order 2: one refunded; order 3: none
CREATE TEMP TABLE s AS
SELECT a.n, order_ext.open_after_sale(a.id, 'refund_only', '[{"line_no":1,"qty":1}]') AS sid FROM a WHERE a.n <= 2;
SELECT (order_ext.fire_after_sale(sid, 'approve', actor => 'merchant')).status FROM s WHERE n = 2;
SELECT (order_ext.fire_after_sale(sid, 'refund', actor => 'merchant')).status FROM s WHERE n = 2;
SELECT a.n, f.status FROM a, LATERAL order_ext.fire(a.id, 'complete') f ORDER BY a.n;
ALTER TABLE order_ext.after_sales ADD COLUMN channel text;
SELECT order_ext.archive('30 days') AS moved_april;
SELECT a.n, (SELECT count(*) FROM order_ext.orders x WHERE x.order_id = a.id) AS live,
       (SELECT count(*) FROM order_ext.orders_history h WHERE h.order_id = a.id) AS archived,
       (SELECT count(*) FROM order_ext.order_payments_history h WHERE h.order_id = a.id) AS payments_archived
FROM a ORDER BY a.n;
SELECT p.relname AS parent, c.relname AS partition
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname IN ('orders', 'orders_history') AND c.relname ~ '_p2024_04$'
ORDER BY 1, 2;
-- the refunded request of the archived order 2 moved with it (and its twin
-- gained the column the live table gained)
SELECT a.n, (SELECT count(*) FROM order_ext.after_sales x WHERE x.order_id = a.id) AS live_requests,
       (SELECT count(*) FROM order_ext.after_sales_history x WHERE x.order_id = a.id) AS archived_requests
FROM a WHERE a.n <= 2 ORDER BY a.n;
SELECT attname FROM pg_attribute WHERE attrelid = 'order_ext.after_sales_history'::regclass AND attname = 'channel';
-- the open after-sale goes on, on the live order
SELECT (order_ext.fire_after_sale(sid, 'approve', actor => 'merchant')).status FROM s WHERE n = 1;
SELECT (order_ext.fire_after_sale(sid, 'refund', actor => 'merchant')).status FROM s WHERE n = 1;
SELECT x.refunded_total FROM order_ext.orders x JOIN a ON a.id = x.order_id WHERE a.n = 1;
SELECT order_ext.archive('30 days') AS moved_april_last;
SELECT count(*) AS live_april FROM order_ext.orders x JOIN a ON a.id = x.order_id;
SELECT s.n, h.status, h.amount FROM s JOIN order_ext.after_sales_history h ON h.id = s.sid ORDER BY s.n;
SELECT count(*) AS live_requests FROM order_ext.after_sales x JOIN a ON a.id = x.order_id;
-- archived orders and requests do not move: OE001, as fire() answers (OE002
-- first for a stale version); only what is nowhere is OE008
SELECT pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":1,"qty":1}]')$$, id)) AS open_archived,
       pg_temp.err(format($$SELECT * FROM order_ext.split_order(%s)$$, id)) AS split_archived
FROM a WHERE a.n = 3;
SELECT pg_temp.err(format($$SELECT order_ext.fire_after_sale(%s, 'approve', actor => 'merchant')$$, sid)) AS fire_request_archived,
       pg_temp.err(format($$SELECT order_ext.fire_after_sale(%s, 'approve', 1, 'merchant')$$, sid)) AS fire_request_stale
FROM s WHERE n = 2;
SELECT pg_temp.err($$SELECT order_ext.fire_after_sale(1, 'approve', actor => 'merchant')$$) AS fire_request_nowhere;
-- a run that stopped between the orders and their requests (cancelled, or
-- its statement_timeout) leaves archived orders' requests live; a later run
-- sweeps them whatever its cutoff (here one before April), not only below it
WITH back AS (DELETE FROM order_ext.after_sales_history WHERE id = (SELECT sid FROM s WHERE n = 2) RETURNING *)
INSERT INTO order_ext.after_sales SELECT * FROM back;
SELECT order_ext.archive('1000 days') AS moved_before_april;
SELECT (SELECT count(*) FROM order_ext.after_sales WHERE id = s.sid) AS live_request,
       (SELECT count(*) FROM order_ext.after_sales_history WHERE id = s.sid) AS archived_request
FROM s WHERE s.n = 2;

-- A rejected request can be appealed for 15 days (the default machine's
-- appeal window: a timer then fires 'close'), so it keeps its order live
-- until then; the order archives once the request has closed
SELECT count(*) AS problems FROM order_ext.validate_machine('after_sale');
INSERT INTO a SELECT 4, order_ext.min_order_id('2024-04-20');
SELECT status FROM order_ext.create_order((SELECT id FROM a WHERE n = 4), 204, '[{"sku":"AR-1","qty":1,"unit_price":1000}]');
SELECT status FROM order_ext.record_payment((SELECT id FROM a WHERE n = 4), 'txn-apr-4', 1000);
SELECT status FROM order_ext.fire((SELECT id FROM a WHERE n = 4), 'ship', actor => 'merchant');
SELECT status FROM order_ext.fire((SELECT id FROM a WHERE n = 4), 'confirm_receipt', actor => 'buyer');
INSERT INTO s SELECT 4, order_ext.open_after_sale((SELECT id FROM a WHERE n = 4), 'refund_only', '[{"line_no":1,"qty":1}]');
SELECT (order_ext.fire_after_sale(sid, 'reject', actor => 'merchant')).status FROM s WHERE n = 4;
SELECT status FROM order_ext.fire((SELECT id FROM a WHERE n = 4), 'complete');
SELECT order_ext.archive('30 days') AS moved_rejected;
-- 15 days pass
UPDATE order_ext.timers SET due_at = now() - interval '1 second'
WHERE subject = 'after_sale' AND subject_id = (SELECT sid FROM s WHERE n = 4);
SELECT order_ext.run_timers() AS fired;
SELECT status FROM order_ext.after_sales WHERE id = (SELECT sid FROM s WHERE n = 4);
SELECT order_ext.archive('30 days') AS moved_closed;
SELECT (SELECT count(*) FROM order_ext.orders_history WHERE order_id = a.id) AS archived,
       (SELECT status FROM order_ext.after_sales_history WHERE id = (SELECT sid FROM s WHERE n = 4)) AS request
FROM a WHERE a.n = 4;

-- order_ext.archive_yield (on by default): the batch statements (used where
-- the built-in mover cannot take a month, or with order_ext.archive_statements
-- on) call the internal order_ext.archive_yield() for every row they move,
-- which steps aside while live work waits for a CPU (and takes the rests of
-- order_ext.archive_rest, below); with the setting off and no rests they do
-- not call it.  Seen by taking the function away for a moment: the run then
-- fails and moves nothing, unless both are off.  (The mover calls the same
-- code in C: TAP test 014.)
SHOW order_ext.archive_yield;
SET order_ext.archive_statements = on;
INSERT INTO a SELECT 5, order_ext.min_order_id('2024-04-25');
SELECT status FROM order_ext.create_order((SELECT id FROM a WHERE n = 5), 205, '[{"sku":"AR-1","qty":1,"unit_price":1000}]');
SELECT status FROM order_ext.fire((SELECT id FROM a WHERE n = 5), 'cancel', actor => 'buyer');
ALTER FUNCTION order_ext.archive_yield() RENAME TO archive_yield_away;
SELECT order_ext.archive('30 days') AS moved_without_yield_point;
SELECT count(*) AS still_live FROM order_ext.orders WHERE order_id = (SELECT id FROM a WHERE n = 5);
SET order_ext.archive_yield = off;
-- the rests alone keep the yield point
SELECT order_ext.archive('30 days') AS moved_resting_without_yield_point;
SET order_ext.archive_rest = 0;
SELECT order_ext.archive('30 days') AS moved_yield_off;
RESET order_ext.archive_yield;
RESET order_ext.archive_rest;
RESET order_ext.archive_statements;
ALTER FUNCTION order_ext.archive_yield_away() RENAME TO archive_yield;
SELECT count(*) AS archived FROM order_ext.orders_history WHERE order_id = (SELECT id FROM a WHERE n = 5);
-- it is always true, and internal: PUBLIC cannot call it (nor the app role, see privileges)
SELECT order_ext.archive_yield() AS yield_point;
SELECT has_function_privilege('public', 'order_ext.archive_yield()', 'EXECUTE') AS public_may_call;

-- order_ext.archive_rest (default 250; 0: none): rests of that many microseconds
-- inside a batch after every order_ext.archive_rest_every microseconds of
-- work, at the same yield points, with the mover and the statements alike,
-- also with archive_yield off (TAP test 014 counts them in the log and times
-- them, by both paths).
SHOW order_ext.archive_rest;
SHOW order_ext.archive_rest_every;
SET order_ext.archive_rest = -1;
SET order_ext.archive_rest = 100001;
SET order_ext.archive_rest = '250us';
SET order_ext.archive_rest_every = 99;
SET order_ext.archive_rest_every = 1000001;
SET order_ext.archive_rest_every = 'often';

-- The batch path's mover works below SQL, so where a month has what only the
-- statements honour, that month goes by the statements (the log says why).
-- A user's DELETE trigger on a live table fires for every archived row:
CREATE TABLE public.deleted_items (order_id bigint, line_no int);
CREATE FUNCTION public.note_deleted_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.deleted_items VALUES (OLD.order_id, OLD.line_no);
    RETURN OLD;
END $$;
CREATE TRIGGER note_deleted_item AFTER DELETE ON order_ext.order_items
    FOR EACH ROW EXECUTE FUNCTION public.note_deleted_item();
INSERT INTO a SELECT 6, order_ext.min_order_id('2024-04-26');
INSERT INTO a SELECT 7, order_ext.min_order_id('2024-04-27');
SELECT count(*) AS created FROM a, LATERAL order_ext.create_order(a.id, 206,
        '[{"sku":"AR-1","qty":1,"unit_price":1000},{"sku":"AR-2","qty":2,"unit_price":250}]') c
WHERE a.n IN (6, 7);
SELECT status FROM order_ext.fire((SELECT id FROM a WHERE n = 6), 'cancel', actor => 'buyer');
SELECT order_ext.archive('30 days') AS moved_with_trigger;
SELECT a.n, count(d.*) AS items_seen_by_trigger,
       (SELECT count(*) FROM order_ext.order_items_history h WHERE h.order_id = a.id) AS items_archived,
       (SELECT count(*) FROM order_ext.order_items l WHERE l.order_id = a.id) AS items_live
FROM a LEFT JOIN public.deleted_items d ON d.order_id = a.id
WHERE a.n IN (6, 7) GROUP BY a.n, a.id ORDER BY a.n;
DROP TRIGGER note_deleted_item ON order_ext.order_items;
-- ... and a history column that differs from its live one (a type changed on
-- the history side only; copied as it is, a bigint would not be a numeric):
-- the statements cast as an INSERT does
ALTER TABLE order_ext.order_discounts_history ALTER COLUMN amount TYPE numeric(12, 2);
INSERT INTO a SELECT 8, order_ext.min_order_id('2024-04-28');
SELECT status FROM order_ext.create_order((SELECT id FROM a WHERE n = 8), 208,
        '[{"sku":"AR-1","qty":1,"unit_price":1000}]',
        discounts => '[{"kind":"coupon","code":"C8","amount":100}]');
SELECT status FROM order_ext.fire((SELECT id FROM a WHERE n = 8), 'cancel', actor => 'buyer');
SELECT order_ext.archive('30 days') AS moved_with_other_type;
SELECT code, amount FROM order_ext.order_discounts_history WHERE order_id = (SELECT id FROM a WHERE n = 8);
ALTER TABLE order_ext.order_discounts_history ALTER COLUMN amount TYPE bigint;
-- The mover checks the history side's constraints as an INSERT would: a
-- CHECK a moved row breaks fails the run, naming it, with nothing moved
ALTER TABLE order_ext.order_items_history ADD CONSTRAINT no_ar9 CHECK (sku <> 'AR-9');
INSERT INTO a SELECT 9, order_ext.min_order_id('2024-04-29');
SELECT status FROM order_ext.create_order((SELECT id FROM a WHERE n = 9), 209,
        '[{"sku":"AR-1","qty":1,"unit_price":1000},{"sku":"AR-9","qty":2,"unit_price":250}]');
SELECT status FROM order_ext.fire((SELECT id FROM a WHERE n = 9), 'cancel', actor => 'buyer');
SELECT pg_temp.err($$SELECT order_ext.archive('30 days')$$) AS check_broken;
SELECT (SELECT count(*) FROM order_ext.orders WHERE order_id = a.id) AS order_live,
       (SELECT count(*) FROM order_ext.order_items WHERE order_id = a.id) AS items_live,
       (SELECT count(*) FROM order_ext.orders_history WHERE order_id = a.id) AS order_archived
FROM a WHERE a.n = 9;
ALTER TABLE order_ext.order_items_history DROP CONSTRAINT no_ar9;
SELECT order_ext.archive('30 days') AS moved_once_allowed;
-- It skips only what live has checked already: the same CHECK, validated,
-- reading only columns. Each case: an April order, cancelled, the same
-- CHECK on both sides, a run that fails naming it, and the order still live
CREATE FUNCTION pg_temp.cancelled_order(n integer, at timestamptz, sku text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    oid_ bigint := order_ext.min_order_id(at);
BEGIN
    INSERT INTO a VALUES (n, oid_);
    PERFORM order_ext.create_order(oid_, 200 + n, jsonb_build_array(jsonb_build_object('sku', sku, 'qty', 1, 'unit_price', 1000)));
    RETURN (SELECT f.status FROM order_ext.fire(oid_, 'cancel', actor => 'buyer') f);
END $$;
CREATE FUNCTION pg_temp.where_is(n integer) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s item(s) live, %s order(s) archived',
                  (SELECT count(*) FROM order_ext.order_items i WHERE i.order_id = a.id),
                  (SELECT count(*) FROM order_ext.orders_history h WHERE h.order_id = a.id))
    FROM a WHERE a.n = where_is.n $$;
-- the same expression NOT VALID in live (its old rows never checked)
SELECT pg_temp.cancelled_order(10, '2024-04-30', 'AR-8');
ALTER TABLE order_ext.order_items ADD CONSTRAINT no_ar8 CHECK (sku <> 'AR-8') NOT VALID;
ALTER TABLE order_ext.order_items_history ADD CONSTRAINT no_ar8 CHECK (sku <> 'AR-8');
SELECT pg_temp.err($$SELECT order_ext.archive('30 days')$$) AS not_valid_in_live;
SELECT pg_temp.where_is(10);
ALTER TABLE order_ext.order_items_history DROP CONSTRAINT no_ar8;
ALTER TABLE order_ext.order_items DROP CONSTRAINT no_ar8;
-- one that reads tableoid (or the whole row): the same expression gives
-- another answer for the copy in history
SELECT pg_temp.cancelled_order(11, '2024-04-30 12:00', 'AR-1');
ALTER TABLE order_ext.order_items_p2024_04
    ADD CONSTRAINT live_rows_only CHECK (tableoid = 'order_ext.order_items_p2024_04'::regclass);
ALTER TABLE order_ext.order_items_history_p2024_04
    ADD CONSTRAINT live_rows_only CHECK (tableoid = 'order_ext.order_items_p2024_04'::regclass) NOT VALID;
SELECT pg_temp.err($$SELECT order_ext.archive('30 days')$$) AS reads_tableoid;
SELECT pg_temp.where_is(11);
ALTER TABLE order_ext.order_items_history_p2024_04 DROP CONSTRAINT live_rows_only;
ALTER TABLE order_ext.order_items_p2024_04 DROP CONSTRAINT live_rows_only;
SELECT order_ext.archive('30 days') AS moved_once_dropped;
SELECT pg_temp.where_is(10) AS order_10, pg_temp.where_is(11) AS order_11;
-- without either, the mover takes the month again; the order left open moves
-- once it ends
SELECT status FROM order_ext.fire((SELECT id FROM a WHERE n = 7), 'cancel', actor => 'buyer');
SELECT order_ext.archive('30 days') AS moved_by_mover;
SELECT count(*) AS items_seen_by_trigger FROM public.deleted_items WHERE order_id = (SELECT id FROM a WHERE n = 7);
SELECT count(*) AS order_archived FROM order_ext.orders_history WHERE order_id = (SELECT id FROM a WHERE n = 7);
SELECT count(*) AS items_archived FROM order_ext.order_items_history WHERE order_id = (SELECT id FROM a WHERE n = 7);
-- ... and it compares CHECK expressions only where every column has the same
-- number on both sides. Here a column added to the live table and dropped
-- again before any archive() shifts the later live columns by one, so live's
-- CHECK on y reads as history's CHECK on w, number for number: the row that
-- breaks history's check fails the run.
SELECT order_ext.create_partitions('2024-06-01', '2024-06-30') AS june;
ALTER TABLE order_ext.order_items ADD COLUMN gone integer;
ALTER TABLE order_ext.order_items DROP COLUMN gone;
ALTER TABLE order_ext.order_items ADD COLUMN y integer, ADD COLUMN w integer;
ALTER TABLE order_ext.order_items_history ADD COLUMN y integer, ADD COLUMN w integer;
DO $$
BEGIN
    EXECUTE format('CREATE TABLE order_ext.order_items_history_p2024_06 PARTITION OF order_ext.order_items_history %s',
                   (SELECT pg_get_expr(relpartbound, oid) FROM pg_class
                    WHERE oid = 'order_ext.order_items_p2024_06'::regclass));
END $$;
SELECT (SELECT attnum FROM pg_attribute WHERE attrelid = 'order_ext.order_items_p2024_06'::regclass AND attname = 'y')
     = (SELECT attnum FROM pg_attribute WHERE attrelid = 'order_ext.order_items_history_p2024_06'::regclass AND attname = 'w')
       AS live_y_numbered_as_history_w;
ALTER TABLE order_ext.order_items_p2024_06 ADD CONSTRAINT positive CHECK (y > 0);
ALTER TABLE order_ext.order_items_history_p2024_06 ADD CONSTRAINT positive CHECK (w > 0);
SELECT pg_temp.cancelled_order(12, '2024-06-10', 'AR-1');
SELECT status FROM order_ext.create_order(order_ext.min_order_id('2024-06-11'), 213,
        '[{"sku":"AR-1","qty":1,"unit_price":1000}]') AS left_open;
UPDATE order_ext.order_items SET w = -1 WHERE order_id = (SELECT id FROM a WHERE n = 12);
SELECT pg_temp.err($$SELECT order_ext.archive('30 days')$$) AS shifted_columns;
SELECT pg_temp.where_is(12);
ALTER TABLE order_ext.order_items_history_p2024_06 DROP CONSTRAINT positive;
SELECT order_ext.archive('30 days') AS moved_once_dropped_shifted;
SELECT pg_temp.where_is(12), (SELECT w FROM order_ext.order_items_history WHERE order_id = (SELECT id FROM a WHERE n = 12)) AS w;
ALTER TABLE order_ext.order_items_p2024_06 DROP CONSTRAINT positive;
ALTER TABLE order_ext.order_items DROP COLUMN y, DROP COLUMN w;
ALTER TABLE order_ext.order_items_history DROP COLUMN y, DROP COLUMN w;
-- order_ext.archive_statements is for superusers (a way out, and for comparisons)
SELECT context FROM pg_settings WHERE name = 'order_ext.archive_statements';
DROP TABLE public.deleted_items;
DROP FUNCTION public.note_deleted_item();

-- An empty past month (create_partitions made it for an import whose
-- orders are still to come) stays live: moved whole, it would leave the
-- import nowhere to write
SELECT order_ext.create_partitions('2023-05-01', '2023-05-31') AS may_2023;
SELECT order_ext.archive('30 days') AS moved_with_empty_month;
SELECT p.relname AS parent, c.relname AS partition
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relnamespace = 'order_ext'::regnamespace AND c.relname ~ '_p2023_05$' AND p.relname = 'orders';
SELECT status FROM order_ext.create_order(order_ext.min_order_id('2023-05-10'), 1,
        '[{"sku":"AR-9","qty":1,"unit_price":1}]') AS imported;
-- a cutoff before any order id time: nothing is that old, also when
-- now() - older_than is no timestamp at all
SELECT order_ext.archive('100 years') AS century, order_ext.archive('10000 years') AS ten_millennia;

DROP EXTENSION order_ext CASCADE;
