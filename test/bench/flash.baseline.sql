-- baseline for the stock comparisons (issue 4): raw SQL the way an
-- application reserves stock -- UPDATE the SKU's row guarded by
-- available >= qty, then INSERT the order and its line, one transaction.
-- The row stays locked from the UPDATE to the COMMIT.  One SKU for every
-- client (a flash sale).
\set buyer random(1, 1000000)
BEGIN;
UPDATE bench_stock SET reserved = reserved + 1 WHERE sku = 'FLASH' AND on_hand - reserved >= 1;
INSERT INTO order_ext.orders
    (order_id, machine, status, version, buyer_id, currency, item_total,
     discount_total, shipping_fee, payable_total, attrs, created_at, updated_at)
VALUES (order_ext.new_order_id(), 'physical', 'pending_payment', 1, :buyer, 'CNY', 999,
        0, 0, 999, '{}', now(), now())
RETURNING order_id \gset
INSERT INTO order_ext.order_items (order_id, line_no, sku, qty, unit_price, discount_alloc)
VALUES (:order_id, 1, 'FLASH', 1, 999, 0);
COMMIT;
