-- order_ext side: one fire() of a two-status toggle machine on a random one
-- of 20,000 orders: lock, version and transition checks, event and outbox
-- rows, the guarded UPDATE, NOTIFY.
\set n random(1, 20000)
SELECT status, version
FROM order_ext.fire((SELECT order_id FROM bench_fire_ids WHERE n = :n), 'toggle');
