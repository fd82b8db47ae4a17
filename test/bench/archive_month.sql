-- test/bench/archive_month.sql — a month of finished orders, fast: one
-- INSERT ... SELECT generate_series per order table (not create_order calls).
-- Used by the archive benchmark (scripts/bench.sh) and the TAP tests.
--
--   psql -v month=2024-01-01 -v n=1000000 -v open=0 -f archive_month.sql
--
-- n orders, 1 ms apart from the 2nd of the month, 3 lines each, one
-- discount, one payment, two events (create, complete); the first 'open'
-- orders are left 'paid' (not archivable), the rest 'completed'.
SELECT order_ext.create_partitions(:'month', :'month') >= 0 AS partitions;
CREATE TEMP TABLE month_ids AS
SELECT g, order_ext.min_order_id(:'month'::timestamptz + interval '1 day') + g::bigint * 4194304 AS id
FROM generate_series(1, :n) g;
INSERT INTO order_ext.orders (order_id, machine, status, version, status_version, buyer_id, currency,
                              item_total, discount_total, payable_total, paid_total, paid_at, completed_at)
SELECT id, 'physical', CASE WHEN g <= :open THEN 'paid' ELSE 'completed' END, 2, 2, g % 10007, 'CNY',
       3000, 100, 2900, 2900, now(), CASE WHEN g <= :open THEN NULL ELSE now() END
FROM month_ids;
INSERT INTO order_ext.order_items (order_id, line_no, sku, qty, unit_price, discount_alloc)
SELECT id, l, 'SKU-' || l, 1, 1000, CASE l WHEN 1 THEN 34 ELSE 33 END
FROM month_ids, generate_series(1, 3) l;
INSERT INTO order_ext.order_discounts (order_id, seq, kind, code, amount)
SELECT id, 1, 'coupon', 'C100', 100 FROM month_ids;
INSERT INTO order_ext.order_payments (order_id, kind, txn_id, amount)
SELECT id, 'payment', 'txn-' || id, 2900 FROM month_ids;
INSERT INTO order_ext.order_events (order_id, version, event, from_status, to_status, actor)
SELECT id, v, CASE v WHEN 1 THEN 'create' ELSE 'pay' END,
       CASE v WHEN 1 THEN NULL ELSE 'pending_payment' END,
       CASE v WHEN 1 THEN 'pending_payment' ELSE 'paid' END, 'system'
FROM month_ids, generate_series(1, 2) v;
DROP TABLE month_ids;
