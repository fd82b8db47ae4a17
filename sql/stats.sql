--
-- stats: the order_ext.stats view (API.md "Observability"): orders per
-- machine and status, reservations held, out-of-stock SKUs, timers due and
-- overdue, the outbox backlog per consumer, the last worker and archive runs
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';

-- an empty installation: zeros, no orders, no consumers, no runs
SELECT section, name, value FROM order_ext.stats ORDER BY section, name;

-- some orders, stock, a due and an overdue timer, two consumers
SELECT count(*) FROM (
    SELECT order_ext.set_stock('ST-1', 3)
    UNION ALL SELECT order_ext.set_stock('ST-2', 10, hot => true, buckets => 2)) s;
CREATE TEMP TABLE ids AS SELECT n, order_ext.new_order_id() AS id FROM generate_series(1, 4) n;
SELECT count(*) FROM ids, LATERAL order_ext.create_order(ids.id, n,
       jsonb_build_array(jsonb_build_object('sku', CASE WHEN n = 1 THEN 'ST-1' ELSE 'ST-2' END,
                                            'qty', CASE WHEN n = 1 THEN 3 ELSE 1 END, 'unit_price', 100))) o;
SELECT status FROM order_ext.fire((SELECT id FROM ids WHERE n = 2), 'cancel', actor => 'buyer');
SELECT status FROM order_ext.record_payment((SELECT id FROM ids WHERE n = 3), 'st-txn', 100);
UPDATE order_ext.timers SET due_at = now() - interval '1 minute' WHERE order_id = (SELECT id FROM ids WHERE n = 1);
UPDATE order_ext.timers SET due_at = now() - interval '1 hour' WHERE order_id = (SELECT id FROM ids WHERE n = 4);
SELECT count(*) AS read_a FROM order_ext.read_events('consumer_a', 100);
SELECT count(*) AS read_b FROM order_ext.read_events('consumer_b', 3);
SELECT order_ext.ack_events('consumer_b', array_agg(id)) FROM (SELECT id FROM order_ext.outbox ORDER BY id LIMIT 3) x;
SELECT order_ext.archive('90 days', 10) AS archived;

SELECT section, name, value,
       CASE WHEN section IN ('reservations', 'stock') THEN detail::text
            WHEN section = 'runs' THEN detail->>'status' END AS detail
FROM order_ext.stats ORDER BY section, name;

DROP EXTENSION order_ext CASCADE;
