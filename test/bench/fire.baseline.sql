-- baseline for fire(): raw SQL doing the same writes without checks --
-- UPDATE status and version, INSERT the event row -- on plain copies of the
-- tables (no guard trigger, no partitioning), in one transaction.  (Orders of
-- the toggle machine are in status a at odd versions, b at even ones.)
\set n random(1, 20000)
BEGIN;
UPDATE bench_orders o
   SET status = CASE o.status WHEN 'a' THEN 'b' ELSE 'a' END,
       version = o.version + 1, updated_at = now()
  FROM bench_fire_ids i
 WHERE i.n = :n AND o.order_id = i.order_id
RETURNING o.order_id, o.version \gset
INSERT INTO bench_events (order_id, version, event, from_status, to_status, actor, payload, created_at)
VALUES (:order_id, :version, 'toggle',
        CASE WHEN :version % 2 = 0 THEN 'a' ELSE 'b' END,
        CASE WHEN :version % 2 = 0 THEN 'b' ELSE 'a' END,
        'system', '{}', now());
COMMIT;
