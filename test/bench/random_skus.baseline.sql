-- baseline for stock on many SKUs (issue 4): as flash.baseline.sql, but each
-- order is for one of 10,000 SKUs picked at random.
\set buyer random(1, 1000000)
\set s random(1, 10000)
BEGIN;
UPDATE bench_stock SET reserved = reserved + 1 WHERE sku = 'R-' || :s AND on_hand - reserved >= 1;
INSERT INTO order_ext.orders
    (order_id, machine, status, version, buyer_id, currency, item_total,
     discount_total, shipping_fee, payable_total, attrs, created_at, updated_at)
VALUES (order_ext.new_order_id(), 'physical', 'pending_payment', 1, :buyer, 'CNY', 999,
        0, 0, 999, '{}', now(), now())
RETURNING order_id \gset
INSERT INTO order_ext.order_items (order_id, line_no, sku, qty, unit_price, discount_alloc)
VALUES (:order_id, 1, 'R-' || :s, 1, 999, 0);
COMMIT;
