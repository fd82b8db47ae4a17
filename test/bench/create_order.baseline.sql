-- baseline for create_order, as issue 2 words it: raw SQL doing the same
-- writes without any checks -- INSERT the order and its 3 items, in one
-- transaction, the way an application would (no JSON parsing, no totals,
-- no idempotency check, no event, outbox row, timer or NOTIFY).
-- create_order_allrows compares against a baseline that also writes the
-- event, outbox row and NOTIFY in a single statement.
\set buyer random(1, 100000)
BEGIN;
INSERT INTO order_ext.orders
    (order_id, machine, status, version, buyer_id, currency, item_total,
     discount_total, shipping_fee, payable_total, attrs, created_at, updated_at)
VALUES (order_ext.new_order_id(), 'physical', 'pending_payment', 1, :buyer, 'CNY', 12148,
        0, 0, 12148, '{}', now(), now())
RETURNING order_id \gset
INSERT INTO order_ext.order_items (order_id, line_no, sku, qty, unit_price, discount_alloc)
VALUES (:order_id, 1, 'BOOK-1', 2, 3999, 0),
       (:order_id, 2, 'PEN-7', 3, 550, 0),
       (:order_id, 3, 'MUG-3', 1, 2500, 0);
COMMIT;
