-- order_ext side: one call creates a 3-line order for a random buyer
-- (orders + 3 order_items + order_events 'create' + outbox row + NOTIFY),
-- with validation, totals, the request fingerprint and the idempotency check.
-- The SKUs have no stock rows, so no stock is reserved (the baseline has no
-- stock table to match either).
\set buyer random(1, 100000)
SELECT order_id
FROM order_ext.create_order(order_ext.new_order_id(), :buyer,
     '[{"sku":"BOOK-1","qty":2,"unit_price":3999},{"sku":"PEN-7","qty":3,"unit_price":550},{"sku":"MUG-3","qty":1,"unit_price":2500}]'::jsonb);
