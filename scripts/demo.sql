-- scripts/demo.sql — real orders walked through their life, for people.
--
-- Run by scripts/demo.sh (psql -e: every statement is echoed before its
-- result) on a throw-away cluster where order_ext is preloaded. Each step is a
-- heading, the SQL, its result, and a checked claim ("ok: …"): if the
-- extension stops doing what the step shows, the demo stops with an error.
--
-- Extending it: add a section per feature (state machine, payments, refunds,
-- after-sales, split, archiving) in the same shape: \echo a heading, run the
-- calls a user would run, and check what the reader should notice with
-- pg_temp.expect(condition, 'what the reader should notice').

-- Preamble, not shown: settings and the demo's checker.
\set ECHO none
\set QUIET on
\set ON_ERROR_STOP 1
\set SHOW_CONTEXT never
\pset null '(null)'
SET client_min_messages = warning;

-- The demo's own checker: returns 'ok: <claim>' or stops the demo.
CREATE FUNCTION pg_temp.expect(ok boolean, claim text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'demo expectation failed: %', claim;
    END IF;
    RETURN 'ok: ' || claim;
END $$;
\set QUIET off
\set ECHO queries

\echo
\echo '=== 0. Install ==='
\echo 'shared_preload_libraries includes order_ext (the id generator lives in shared memory).'
SHOW shared_preload_libraries;
CREATE EXTENSION order_ext;
SELECT extname, extversion FROM pg_extension WHERE extname = 'order_ext';

\echo
\echo '=== 1. An id first: the page asks for an order id before the order exists ==='
SELECT order_ext.new_order_id() AS order_id \gset
SELECT :order_id AS order_id,
       order_ext.order_id_time(:order_id) AS issued_at,
       now() - order_ext.order_id_time(:order_id) AS age;
SELECT pg_temp.expect(abs(extract(epoch FROM now() - order_ext.order_id_time(:order_id))) < 60,
                      'the id encodes the time it was issued');
\echo 'Ids issued later are larger (time first, then node id and a per-millisecond sequence):'
SELECT order_ext.new_order_id() AS second_id \gset
SELECT :order_id AS first_id, :second_id AS second_id,
       pg_temp.expect(:second_id > :order_id, 'a later id is larger') AS check;

\echo
\echo '=== 2. Create the order: 3 lines, a coupon of 10.00 and 8.00 shipping (amounts in fen) ==='
-- create_order(order_id, buyer_id, items, machine, discounts, shipping_fee)
SELECT order_id, machine, status, version, item_total, discount_total,
       shipping_fee, payable_total
FROM order_ext.create_order(:order_id, 1001,
       '[{"sku":"BOOK-1","qty":2,"unit_price":3999},
         {"sku":"PEN-7", "qty":3,"unit_price":550},
         {"sku":"MUG-3", "qty":1,"unit_price":2500}]',
       'physical',
       '[{"kind":"coupon","code":"SAVE10","amount":1000}]',
       800);
\echo 'The coupon is shared out over the lines in proportion to their totals, to the fen:'
SELECT line_no, sku, qty, unit_price, qty * unit_price AS line_total, discount_alloc
FROM order_ext.order_items WHERE order_id = :order_id ORDER BY line_no;
SELECT pg_temp.expect(sum(discount_alloc) = 1000, 'the lines'' discount shares add up to the coupon')
FROM order_ext.order_items WHERE order_id = :order_id;
\echo 'The timeline starts with one event, create, at version 1:'
SELECT version, event, from_status, to_status, actor
FROM order_ext.order_events WHERE order_id = :order_id ORDER BY version;

\echo
\echo '=== 3. The same request again (a retry, a double click): same order, nothing new ==='
SELECT (SELECT count(*) FROM order_ext.order_events WHERE order_id = :order_id) AS events_before,
       (SELECT count(*) FROM order_ext.order_items  WHERE order_id = :order_id) AS items_before
\gset
SELECT order_id, status, version, payable_total
FROM order_ext.create_order(:order_id, 1001,
       '[{"sku":"BOOK-1","qty":2,"unit_price":3999},
         {"sku":"PEN-7", "qty":3,"unit_price":550},
         {"sku":"MUG-3", "qty":1,"unit_price":2500}]',
       'physical',
       '[{"kind":"coupon","code":"SAVE10","amount":1000}]',
       800);
SELECT (SELECT count(*) FROM order_ext.order_events WHERE order_id = :order_id) AS events_after,
       (SELECT count(*) FROM order_ext.order_items  WHERE order_id = :order_id) AS items_after,
       (SELECT count(*) FROM order_ext.orders       WHERE order_id = :order_id) AS orders_after;
SELECT pg_temp.expect(
         (SELECT count(*) FROM order_ext.order_events WHERE order_id = :order_id) = :events_before
         AND (SELECT count(*) FROM order_ext.order_items WHERE order_id = :order_id) = :items_before
         AND (SELECT count(*) FROM order_ext.orders WHERE order_id = :order_id) = 1,
       'the retry changed nothing');

\echo
\echo '=== 4. The same id with a different request (now 5 pens) is refused: OE004 ==='
\set ON_ERROR_STOP 0
SELECT order_id
FROM order_ext.create_order(:order_id, 1001,
       '[{"sku":"BOOK-1","qty":2,"unit_price":3999},
         {"sku":"PEN-7", "qty":5,"unit_price":550},
         {"sku":"MUG-3", "qty":1,"unit_price":2500}]',
       'physical',
       '[{"kind":"coupon","code":"SAVE10","amount":1000}]',
       800);
\set ON_ERROR_STOP 1
\echo 'SQLSTATE of that error:' :LAST_ERROR_SQLSTATE
SELECT pg_temp.expect(:'LAST_ERROR_SQLSTATE' = 'OE004', 'refused with OE004');
SELECT pg_temp.expect(sum(qty) = 6, 'the order still has its original 6 units')
FROM order_ext.order_items WHERE order_id = :order_id;

\echo
\echo '=== 5. Version numbers against lost updates (the ABA case) ==='
\echo 'Two clerks both read the order at version 1 and both try to add a note.'
\echo 'The first UPDATE wins (UPDATE 1); the second finds no row at version 1 (UPDATE 0):'
UPDATE order_ext.orders SET attrs = attrs || '{"note":"x"}', version = version + 1
WHERE order_id = :order_id AND version = 1;
UPDATE order_ext.orders SET attrs = attrs || '{"note":"x"}', version = version + 1
WHERE order_id = :order_id AND version = 1;
SELECT order_id, version, attrs FROM order_ext.orders WHERE order_id = :order_id;
SELECT pg_temp.expect(version = 2 AND attrs ->> 'note' = 'x',
                      'one update applied, version 2 (bumped by exactly one)')
FROM order_ext.orders WHERE order_id = :order_id;

\echo
\echo '=== 6. The order moves through its state machine with fire() ==='
\echo 'The payment arrives: record_payment fires pay (actor system), then the merchant ships, expecting version 3:'
SELECT status, version, paid_at IS NOT NULL AS paid_at_set
FROM order_ext.record_payment(:order_id, 'demo-txn-1',
                              (SELECT payable_total FROM order_ext.orders WHERE order_id = :order_id));
SELECT status, version, shipped_at IS NOT NULL AS shipped_at_set
FROM order_ext.fire(:order_id, 'ship', 3, 'merchant');
SELECT pg_temp.expect(status = 'shipped' AND version = 4, 'paid, then shipped: version 4')
FROM order_ext.orders WHERE order_id = :order_id;

\echo
\echo 'A retried ship request still carrying version 3 is refused: OE002 (stale version)'
\set ON_ERROR_STOP 0
SELECT status FROM order_ext.fire(:order_id, 'ship', 3, 'merchant');
\set ON_ERROR_STOP 1
SELECT pg_temp.expect(:'LAST_ERROR_SQLSTATE' = 'OE002', 'refused with OE002');
\echo 'The merchant may not confirm receipt for the buyer: OE001 (actor not allowed)'
\set ON_ERROR_STOP 0
SELECT status FROM order_ext.fire(:order_id, 'confirm_receipt', 4, 'merchant');
\set ON_ERROR_STOP 1
SELECT pg_temp.expect(:'LAST_ERROR_SQLSTATE' = 'OE001', 'refused with OE001');
\echo 'Nor can anyone jump the status with a plain UPDATE: OE001, with a hint naming fire()'
\set ON_ERROR_STOP 0
\set SHOW_CONTEXT errors
UPDATE order_ext.orders SET status = 'completed' WHERE order_id = :order_id;
\set ON_ERROR_STOP 1
SELECT pg_temp.expect(:'LAST_ERROR_SQLSTATE' = 'OE001', 'status UPDATE refused with OE001');
\echo 'The buyer confirms receipt:'
SELECT status, version FROM order_ext.fire(:order_id, 'confirm_receipt', 4, 'buyer');

\echo
\echo '=== 7. Timers move orders on: received -> completed after the after-sales window ==='
\echo 'The window is data (order_ext.timeouts). Here we shorten it to 0 seconds for the demo;'
\echo 'the rule applies to orders entering the status afterwards, so a second order shows it.'
UPDATE order_ext.timeouts SET after = '0' WHERE machine = 'physical' AND status IN ('shipped', 'received');
SELECT order_ext.new_order_id() AS order2 \gset
SELECT status FROM order_ext.create_order(:order2, 1002, '[{"sku":"TEA-1","qty":1,"unit_price":1200}]');
SELECT status FROM order_ext.record_payment(:order2, 'demo-txn-2', 1200);
SELECT status FROM order_ext.fire(:order2, 'ship', actor => 'merchant');
SELECT order_ext.run_timers() AS fired_first_run;
SELECT order_ext.run_timers() AS fired_second_run;
SELECT status, version, received_at IS NOT NULL AS received_at_set, completed_at IS NOT NULL AS completed_at_set
FROM order_ext.orders WHERE order_id = :order2;
SELECT pg_temp.expect(status = 'completed', 'the timers confirmed receipt and completed the order')
FROM order_ext.orders WHERE order_id = :order2;

\echo
\echo '=== 8. The whole life of the first order, from its timeline ==='
SELECT version, event, from_status, to_status, actor, payload
FROM order_ext.timeline(:order_id);
SELECT pg_temp.expect(count(*) = (SELECT version FROM order_ext.orders WHERE order_id = :order_id),
                      'one event per version: the timeline is the order''s whole history')
FROM order_ext.timeline(:order_id);
\echo 'Every event also went to the outbox, in the same transaction:'
SELECT version, event FROM order_ext.outbox WHERE order_id = :order_id ORDER BY version;
\echo 'What the buyer and the merchant see for the first order''s status:'
SELECT status,
       order_ext.status_label(machine, status, 'buyer') AS buyer_sees,
       order_ext.status_label(machine, status, 'merchant') AS merchant_sees
FROM order_ext.orders WHERE order_id = :order_id;

\echo
\echo '=== 9. Stock: a flash sale of 5 phones, 2 per buyer, hot mode ==='
SELECT sku, on_hand, available, hot, buckets
FROM order_ext.set_stock('PHONE-X', 5, hot => true, buckets => 4);
SELECT order_ext.set_purchase_limit('PHONE-X', 2);
SELECT order_ext.new_order_id() AS p1 \gset
SELECT status, payable_total FROM order_ext.create_order(:p1, 501, '[{"sku":"PHONE-X","qty":2,"unit_price":399900}]');
SELECT order_ext.new_order_id() AS p2 \gset
SELECT status FROM order_ext.create_order(:p2, 502, '[{"sku":"PHONE-X","qty":2,"unit_price":399900}]');
\echo 'Buyer 501 wants one more: over the limit of 2 per buyer, OE005'
\set ON_ERROR_STOP off
SELECT order_ext.create_order(order_ext.new_order_id(), 501, '[{"sku":"PHONE-X","qty":1,"unit_price":399900}]');
\set ON_ERROR_STOP on
\echo 'SQLSTATE of that error:' :LAST_ERROR_SQLSTATE
SELECT pg_temp.expect(:'LAST_ERROR_SQLSTATE' = 'OE005', 'refused with OE005');
\echo 'Buyer 503 wants 2, but only 1 is left: OE003, and nothing is written'
\set ON_ERROR_STOP off
SELECT order_ext.create_order(order_ext.new_order_id(), 503, '[{"sku":"PHONE-X","qty":2,"unit_price":399900}]');
\set ON_ERROR_STOP on
\echo 'SQLSTATE of that error:' :LAST_ERROR_SQLSTATE
SELECT pg_temp.expect(:'LAST_ERROR_SQLSTATE' = 'OE003', 'refused with OE003');
SELECT sku, on_hand, reserved, available FROM order_ext.stock WHERE sku = 'PHONE-X';
\echo 'Buyer 502 cancels: the 2 phones go back; buyer 501 pays and the merchant ships (on_hand falls):'
SELECT status FROM order_ext.fire(:p2, 'cancel', actor => 'buyer');
SELECT status, paid_total FROM order_ext.record_payment(:p1, 'ALIPAY-2026-0001', 799800);
SELECT status FROM order_ext.fire(:p1, 'ship', actor => 'merchant');
SELECT sku, on_hand, reserved, available FROM order_ext.stock WHERE sku = 'PHONE-X';
SELECT pg_temp.expect(available = 3 AND on_hand = 3 AND reserved = 0, 'sold 2, 3 left, nothing reserved')
FROM order_ext.stock WHERE sku = 'PHONE-X';
SELECT pg_temp.expect(count(*) = 0, 'check_stock(): reserved equals what orders hold')
FROM order_ext.check_stock();

\echo
\echo '=== 10. Money: two payments add up, a refund by units, a late payment is never lost ==='
SELECT order_ext.new_order_id() AS m1 \gset
SELECT status, payable_total FROM order_ext.create_order(:m1, 601,
       '[{"sku":"TEA-1","qty":3,"unit_price":1000}]', discounts => '[{"kind":"coupon","amount":100}]');
\echo 'Balance first, then the card; the second payment completes it and fires pay:'
SELECT status, paid_total FROM order_ext.record_payment(:m1, 'BAL-77', 1000, 'balance');
SELECT status, paid_total FROM order_ext.record_payment(:m1, 'CARD-88', 1900, 'card');
\echo 'The gateway calls back twice with CARD-88: nothing changes'
SELECT status, paid_total, version FROM order_ext.record_payment(:m1, 'CARD-88', 1900, 'card');
\echo 'One tea refunded: its price net of its share of the coupon'
SELECT refunded_total FROM order_ext.refund(:m1, 'RF-1', lines => '[{"line_no":1,"qty":1}]');
\echo 'The other two: the whole payment comes back exactly, and the order closes'
SELECT status, paid_total, refunded_total FROM order_ext.refund(:m1, 'RF-2', lines => '[{"line_no":1,"qty":2}]');
SELECT pg_temp.expect(refunded_total = paid_total AND status = 'closed', 'refunded to the cent, closed')
FROM order_ext.orders WHERE order_id = :m1;
\echo 'A payment for a cancelled order is kept and flagged for refund:'
SELECT order_ext.new_order_id() AS m2 \gset
SELECT status FROM order_ext.create_order(:m2, 602, '[{"sku":"TEA-1","qty":1,"unit_price":1000}]');
SELECT status FROM order_ext.fire(:m2, 'cancel', actor => 'buyer');
SELECT status, paid_total FROM order_ext.record_payment(:m2, 'CARD-99', 1000, 'card');
SELECT event, payload->>'txn_id' AS txn_id FROM order_ext.outbox WHERE order_id = :m2 AND event = 'refund_due';

\echo
\echo '=== 11. Events out: a consumer reads, acknowledges, and reads only what is new ==='
SELECT count(*) AS events_for_erp FROM order_ext.read_events('erp', 1000);
SELECT order_ext.ack_events('erp', array_agg(id)) AS acknowledged FROM order_ext.read_events('erp', 1000);
SELECT count(*) AS left_for_erp FROM order_ext.read_events('erp', 1000);

\echo
\echo '=== 12. History: an order from two years ago, finished, moves to history and is still found ==='
SELECT order_ext.create_partitions(now() - interval '2 years', now() - interval '2 years');
SELECT order_ext.min_order_id(now() - interval '2 years') + 1 AS old_id \gset
SELECT status FROM order_ext.create_order(:old_id, 603, '[{"sku":"TEA-1","qty":1,"unit_price":1000}]');
SELECT status FROM order_ext.fire(:old_id, 'cancel', actor => 'buyer');
SELECT order_ext.archive('90 days', 100) AS archived;
SELECT order_id = :old_id AS found, status FROM order_ext.find_order(:old_id);
SELECT (SELECT count(*) FROM order_ext.orders WHERE order_id = :old_id) AS live,
       (SELECT count(*) FROM order_ext.orders_history WHERE order_id = :old_id) AS history;
SELECT version, event FROM order_ext.timeline(:old_id);
SELECT section, name, value FROM order_ext.stats ORDER BY 1, 2;

\echo
\echo '=== The demo ran to the end. ==='
