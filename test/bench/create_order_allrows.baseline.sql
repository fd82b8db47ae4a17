-- baseline: the same rows create_order writes, by hand in one statement,
-- without any check (no JSON parsing, totals are constants, no idempotency
-- lookup): orders, 3 order_items, the order_events 'create' row, its outbox
-- row and the pending_payment expire timer.  No NOTIFY on either side:
-- create_order queues one only when a session listens on order_ext, and
-- nobody listens during the bench.  (orders.request_hash gets a stand-in
-- value so the row is as wide.)
\set buyer random(1, 100000)
WITH o AS (
    INSERT INTO order_ext.orders
        (order_id, machine, status, version, buyer_id, currency, item_total,
         discount_total, shipping_fee, payable_total, attrs, request_hash,
         created_at, updated_at)
    VALUES (order_ext.new_order_id(), 'physical', 'pending_payment', 1, :buyer, 'CNY', 12148,
            0, 0, 12148, '{}', md5(:buyer::text)::uuid, now(), now())
    RETURNING order_id),
i AS (
    INSERT INTO order_ext.order_items (order_id, line_no, sku, qty, unit_price, discount_alloc)
    SELECT o.order_id, l.line_no, l.sku, l.qty, l.unit_price, 0
    FROM o, (VALUES (1, 'BOOK-1', 2, 3999), (2, 'PEN-7', 3, 550), (3, 'MUG-3', 1, 2500))
            AS l (line_no, sku, qty, unit_price)),
e AS (
    INSERT INTO order_ext.order_events
        (order_id, version, event, from_status, to_status, actor, payload, created_at)
    SELECT order_id, 1, 'create', NULL, 'pending_payment', 'buyer', '{}', now() FROM o
    RETURNING order_id, version, event, payload, created_at),
x AS (
    INSERT INTO order_ext.outbox (order_id, version, event, payload, created_at)
    SELECT order_id, version, event, payload, created_at FROM e),
t AS (
    INSERT INTO order_ext.timers (order_id, subject, subject_id, status, version, event, due_at)
    SELECT order_id, 'order', order_id, 'pending_payment', 1, 'expire', now() + interval '30 minutes' FROM o)
SELECT order_id FROM o;
