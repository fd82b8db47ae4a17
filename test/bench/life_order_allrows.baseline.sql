-- strict baseline for the life of an order (life_order_allrows): raw SQL
-- doing the same writes as the order_ext side, without any check (no locks, no version or transition
-- check, no duplicate-payment check, no JSON parsing, constants for the
-- totals), on plain copies of the tables (no trigger, no partitioning), in
-- the same five transactions, each one statement as on the order_ext side
-- (so both make the same round trips): create (order, 3 items, event,
-- outbox row, expire timer); pay (payment row, event, outbox row, UPDATE);
-- ship, confirm and complete (event, outbox row, UPDATE, and the next timer
-- for ship and confirm).
\set buyer random(1, 100000)
WITH o AS (
    INSERT INTO bench_life_orders
        (order_id, machine, status, version, buyer_id, currency, item_total,
         discount_total, shipping_fee, payable_total, attrs, request_hash,
         created_at, updated_at)
    VALUES (order_ext.new_order_id(), 'physical', 'pending_payment', 1, :buyer, 'CNY', 12148,
            0, 0, 12148, '{}', md5(:buyer::text)::uuid, now(), now())
    RETURNING order_id),
i AS (
    INSERT INTO bench_life_items (order_id, line_no, sku, qty, unit_price, discount_alloc)
    SELECT o.order_id, l.line_no, l.sku, l.qty, l.unit_price, 0
    FROM o, (VALUES (1, 'BOOK-1', 2, 3999), (2, 'PEN-7', 3, 550), (3, 'MUG-3', 1, 2500))
            AS l (line_no, sku, qty, unit_price)),
e AS (
    INSERT INTO bench_life_events
        (order_id, version, event, from_status, to_status, actor, payload, created_at)
    SELECT order_id, 1, 'create', NULL, 'pending_payment', 'buyer', '{}', now() FROM o
    RETURNING order_id, version, event, payload, created_at),
x AS (
    INSERT INTO bench_life_outbox (order_id, version, event, payload, created_at)
    SELECT order_id, version, event, payload, created_at FROM e),
t AS (
    INSERT INTO bench_life_timers (order_id, subject, subject_id, status, version, event, due_at)
    SELECT order_id, 'order', order_id, 'pending_payment', 1, 'expire', now() + interval '30 minutes' FROM o)
SELECT order_id FROM o \gset
WITH p AS (
    INSERT INTO bench_life_payments (order_id, kind, txn_id, method, amount, created_at)
    VALUES (:order_id, 'payment', 'TXN-' || :order_id, 'card', 12148, now())),
e AS (
    INSERT INTO bench_life_events (order_id, version, event, from_status, to_status, actor, payload, created_at)
    VALUES (:order_id, 2, 'pay', 'pending_payment', 'paid', 'system', jsonb_build_object('txn_id', 'TXN-' || :order_id, 'amount', 12148, 'method', 'card'), now())
    RETURNING order_id, version, event, payload, created_at),
x AS (
    INSERT INTO bench_life_outbox (order_id, version, event, payload, created_at)
    SELECT order_id, version, event, payload, created_at FROM e)
UPDATE bench_life_orders SET status = 'paid', version = 2, status_version = 2,
       paid_total = paid_total + 12148, paid_at = now(), updated_at = now()
WHERE order_id = :order_id;
WITH e AS (
    INSERT INTO bench_life_events (order_id, version, event, from_status, to_status, actor, payload, created_at)
    VALUES (:order_id, 3, 'ship', 'paid', 'shipped', 'merchant', '{}', now())
    RETURNING order_id, version, event, payload, created_at),
x AS (
    INSERT INTO bench_life_outbox (order_id, version, event, payload, created_at)
    SELECT order_id, version, event, payload, created_at FROM e),
t AS (
    INSERT INTO bench_life_timers (order_id, subject, subject_id, status, version, event, due_at)
    VALUES (:order_id, 'order', :order_id, 'shipped', 3, 'confirm_receipt', now() + interval '10 days'))
UPDATE bench_life_orders SET status = 'shipped', version = 3, status_version = 3,
       shipped_at = now(), updated_at = now()
WHERE order_id = :order_id;
WITH e AS (
    INSERT INTO bench_life_events (order_id, version, event, from_status, to_status, actor, payload, created_at)
    VALUES (:order_id, 4, 'confirm_receipt', 'shipped', 'received', 'buyer', '{}', now())
    RETURNING order_id, version, event, payload, created_at),
x AS (
    INSERT INTO bench_life_outbox (order_id, version, event, payload, created_at)
    SELECT order_id, version, event, payload, created_at FROM e),
t AS (
    INSERT INTO bench_life_timers (order_id, subject, subject_id, status, version, event, due_at)
    VALUES (:order_id, 'order', :order_id, 'received', 4, 'complete', now() + interval '7 days'))
UPDATE bench_life_orders SET status = 'received', version = 4, status_version = 4,
       received_at = now(), updated_at = now()
WHERE order_id = :order_id;
WITH e AS (
    INSERT INTO bench_life_events (order_id, version, event, from_status, to_status, actor, payload, created_at)
    VALUES (:order_id, 5, 'complete', 'received', 'completed', 'system', '{}', now())
    RETURNING order_id, version, event, payload, created_at),
x AS (
    INSERT INTO bench_life_outbox (order_id, version, event, payload, created_at)
    SELECT order_id, version, event, payload, created_at FROM e)
UPDATE bench_life_orders SET status = 'completed', version = 5, status_version = 5,
       completed_at = now(), updated_at = now()
WHERE order_id = :order_id;
