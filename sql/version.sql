--
-- version: every UPDATE of order_ext.orders, through any path, bumps
-- version by exactly one and sets updated_at; an order's identity never
-- changes; status changes only through fire()  (API.md "Moving orders
-- through their state machine")
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- errh(sql): 'ok', or 'SQLSTATE: message' and the hint, if any
CREATE FUNCTION pg_temp.errh(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hint text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN hint <> '' THEN ' HINT: ' || hint ELSE '' END;
END $$;

-- orders of 2024-02 with fixed ids (messages name them); :base is the
-- first id of 2024-02-10 00:00 UTC
SELECT order_ext.create_partitions('2024-02-01 00:00:00+00', '2024-02-01 00:00:00+00') AS months;
SELECT order_ext.min_order_id('2024-02-10 00:00:00+00') AS base \gset
SELECT order_id - :base AS created
FROM generate_series(1, 4) AS n,
     LATERAL order_ext.create_order(:base + n, 1000 + n, '[{"sku":"A-1","qty":1,"unit_price":1000}]',
                                    attrs => '{"note":"none"}') o
ORDER BY 1;

-- snap(id): what a failed statement must leave as it was
CREATE FUNCTION pg_temp.snap(id bigint) RETURNS text LANGUAGE sql AS $$
SELECT format('version=%s status=%s buyer=%s machine=%s attrs=%s updated=%s', version, status, buyer_id, machine, attrs,
              CASE WHEN updated_at = created_at THEN 'at creation' ELSE 'later' END)
FROM order_ext.orders WHERE order_id = id
$$;

--------------------------------------------------------------------------
-- The seed's optimistic update: UPDATE ... SET x = ..., version = version + 1
-- WHERE order_id = ... AND version = n
--------------------------------------------------------------------------

UPDATE order_ext.orders SET attrs = attrs || '{"gift_wrap":true}', version = version + 1
WHERE order_id = :base + 1 AND version = 1;
SELECT version, attrs FROM order_ext.orders WHERE order_id = :base + 1;
-- the same request again (a retry with the old version): no row, no change
UPDATE order_ext.orders SET attrs = attrs || '{"gift_wrap":true}', version = version + 1
WHERE order_id = :base + 1 AND version = 1;
SELECT version, attrs FROM order_ext.orders WHERE order_id = :base + 1;
-- the next one with the version just read works
UPDATE order_ext.orders SET attrs = attrs || '{"note":"ring twice"}', version = version + 1
WHERE order_id = :base + 1 AND version = 2;
SELECT version, attrs FROM order_ext.orders WHERE order_id = :base + 1;

--------------------------------------------------------------------------
-- Whatever the UPDATE writes into version, the result is old + 1
--------------------------------------------------------------------------

UPDATE order_ext.orders SET version = 100 WHERE order_id = :base + 1;
SELECT version AS after_version_100 FROM order_ext.orders WHERE order_id = :base + 1;
UPDATE order_ext.orders SET attrs = attrs || '{"k":1}', version = version WHERE order_id = :base + 1;
SELECT version AS after_no_bump FROM order_ext.orders WHERE order_id = :base + 1;
UPDATE order_ext.orders SET attrs = attrs || '{"k":2}' WHERE order_id = :base + 1;
SELECT version AS after_version_not_named FROM order_ext.orders WHERE order_id = :base + 1;
UPDATE order_ext.orders SET version = version - 1 WHERE order_id = :base + 1;
SELECT version AS after_version_minus_1 FROM order_ext.orders WHERE order_id = :base + 1;
UPDATE order_ext.orders SET version = version + 10 WHERE order_id = :base + 1;
SELECT version AS after_version_plus_10 FROM order_ext.orders WHERE order_id = :base + 1;
-- an UPDATE that changes nothing still counts
UPDATE order_ext.orders SET attrs = attrs WHERE order_id = :base + 1;
SELECT version AS after_noop_update FROM order_ext.orders WHERE order_id = :base + 1;

-- two UPDATEs in one transaction: + 2
SELECT version AS before FROM order_ext.orders WHERE order_id = :base + 2;
BEGIN;
UPDATE order_ext.orders SET attrs = attrs || '{"step":1}' WHERE order_id = :base + 2;
UPDATE order_ext.orders SET attrs = attrs || '{"step":2}', version = version + 1 WHERE order_id = :base + 2;
SELECT version AS in_transaction FROM order_ext.orders WHERE order_id = :base + 2;
COMMIT;
SELECT version AS after_commit, attrs FROM order_ext.orders WHERE order_id = :base + 2;
-- rolled back: no change at all
BEGIN;
UPDATE order_ext.orders SET attrs = attrs || '{"step":3}' WHERE order_id = :base + 2;
ROLLBACK;
SELECT version AS after_rollback, attrs FROM order_ext.orders WHERE order_id = :base + 2;

-- one statement over several orders: each + 1; orders not matched: unchanged
UPDATE order_ext.orders SET attrs = attrs || '{"batch":true}' WHERE order_id IN (:base + 3, :base + 4);
SELECT order_id - :base AS n, version, attrs FROM order_ext.orders ORDER BY order_id;
UPDATE order_ext.orders SET attrs = '{}' WHERE order_id = :base + 99;
SELECT order_id - :base AS n, version FROM order_ext.orders ORDER BY order_id;

-- other paths: UPDATE of the partition itself, INSERT ... ON CONFLICT DO UPDATE
UPDATE order_ext.orders_p2024_02 SET attrs = attrs || '{"via":"partition"}' WHERE order_id = :base + 3;
SELECT version AS after_partition_update FROM order_ext.orders WHERE order_id = :base + 3;
INSERT INTO order_ext.orders (order_id, machine, status, buyer_id, currency, item_total, payable_total)
VALUES (:base + 3, 'physical', 'pending_payment', 1003, 'CNY', 1000, 1000)
ON CONFLICT (order_id) DO UPDATE SET attrs = order_ext.orders.attrs || '{"via":"upsert"}', version = 1;
SELECT version AS after_upsert, attrs FROM order_ext.orders WHERE order_id = :base + 3;
-- an UPDATE FROM / with a sub-select
UPDATE order_ext.orders o SET attrs = o.attrs || jsonb_build_object('peer', p.version)
FROM order_ext.orders p WHERE o.order_id = :base + 4 AND p.order_id = :base + 3;
SELECT version AS after_update_from, attrs FROM order_ext.orders WHERE order_id = :base + 4;

--------------------------------------------------------------------------
-- updated_at is set by every UPDATE (to the transaction's time), whatever
-- the statement writes into it
--------------------------------------------------------------------------

SELECT updated_at > created_at AS updated_since_creation FROM order_ext.orders WHERE order_id = :base + 1;
BEGIN;
SELECT pg_sleep(0.01);
UPDATE order_ext.orders SET attrs = attrs || '{"t":1}' WHERE order_id = :base + 1;
SELECT updated_at = now() AS updated_now, updated_at > created_at AS after_creation
FROM order_ext.orders WHERE order_id = :base + 1;
UPDATE order_ext.orders SET updated_at = '2000-01-01 00:00:00+00' WHERE order_id = :base + 1;
SELECT updated_at = now() AS updated_now_not_2000 FROM order_ext.orders WHERE order_id = :base + 1;
COMMIT;

--------------------------------------------------------------------------
-- An order's identity never changes; status changes only through fire().
-- Each refused UPDATE changes nothing (version included).
--------------------------------------------------------------------------

SELECT pg_temp.snap(:base + 1) AS before \gset
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET order_id = order_id + 1 WHERE order_id = %s', :base + 1)) AS change_order_id;
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET order_id = %s WHERE order_id = %s',
                           order_ext.min_order_id('2024-02-20 00:00:00+00'), :base + 1)) AS move_in_month;
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET machine = %L WHERE order_id = %s', 'virtual', :base + 1)) AS change_machine;
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET buyer_id = 7 WHERE order_id = %s', :base + 1)) AS change_buyer;
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET created_at = created_at - interval %L WHERE order_id = %s', '1 day', :base + 1)) AS change_created_at;
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET status = %L WHERE order_id = %s', 'paid', :base + 1)) AS change_status;
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET status = %L, attrs = %L WHERE order_id = %s', 'cancelled', '{}', :base + 1)) AS status_and_attrs;
SELECT pg_temp.errh(format('UPDATE order_ext.orders_p2024_02 SET status = %L WHERE order_id = %s', 'completed', :base + 1)) AS status_via_partition;
SELECT pg_temp.errh(format($$INSERT INTO order_ext.orders (order_id, machine, status, buyer_id, currency, item_total, payable_total)
                             VALUES (%s, 'physical', 'pending_payment', 1001, 'CNY', 1000, 1000)
                             ON CONFLICT (order_id) DO UPDATE SET status = 'shipped'$$, :base + 1)) AS status_via_upsert;
SELECT pg_temp.snap(:base + 1) = :'before' AS nothing_changed;
-- the same at the top level
SELECT version AS current_version FROM order_ext.orders WHERE order_id = :base + 1;
UPDATE order_ext.orders SET status = 'paid', version = version + 1 WHERE order_id = :base + 1 AND version = 11;
SELECT pg_temp.snap(:base + 1) = :'before' AS nothing_changed;

-- writing the status it already has is not a change
UPDATE order_ext.orders SET status = status WHERE order_id = :base + 1;
UPDATE order_ext.orders SET status = 'pending_payment' WHERE order_id = :base + 1;
SELECT status, version FROM order_ext.orders WHERE order_id = :base + 1;

-- fire() changes status, and bumps version by exactly one too
SELECT version AS before FROM order_ext.orders WHERE order_id = :base + 4;
SELECT status, version, closed_at IS NOT NULL AS closed_stamped
FROM order_ext.fire(:base + 4, 'cancel', actor => 'buyer');
SELECT status, version FROM order_ext.orders WHERE order_id = :base + 4;
-- its event row carries the version it produced
SELECT e.version, e.event, e.from_status, e.to_status FROM order_ext.order_events e
WHERE e.order_id = :base + 4 AND e.version = (SELECT version FROM order_ext.orders WHERE order_id = :base + 4);
-- and the row stays guarded afterwards
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET status = %L WHERE order_id = %s', 'pending_payment', :base + 4)) AS back_to_pending;
SELECT status, version FROM order_ext.orders WHERE order_id = :base + 4;

-- a role that may UPDATE orders directly (a DBA's grant) and read the
-- timeline: other columns yes, status no (OE001)
CREATE ROLE oe_regress_version_writer;
GRANT USAGE ON SCHEMA order_ext TO oe_regress_version_writer;
GRANT SELECT, UPDATE ON order_ext.orders TO oe_regress_version_writer;
GRANT SELECT ON order_ext.order_events TO oe_regress_version_writer;
SET ROLE oe_regress_version_writer;
UPDATE order_ext.orders SET attrs = attrs || '{"by":"writer"}', version = version + 1
WHERE order_id = :base + 2 AND version = 3;
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET status = %L WHERE order_id = %s', 'paid', :base + 2)) AS writer_changes_status;
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET version = 1, buyer_id = 1 WHERE order_id = %s', :base + 2)) AS writer_changes_buyer;
RESET ROLE;
SELECT status, version, attrs FROM order_ext.orders WHERE order_id = :base + 2;
REVOKE ALL ON order_ext.orders, order_ext.order_events FROM oe_regress_version_writer;
REVOKE ALL ON SCHEMA order_ext FROM oe_regress_version_writer;
DROP ROLE oe_regress_version_writer;

-- the version cannot overflow: an order at the largest version refuses updates
INSERT INTO order_ext.orders (order_id, machine, status, version, buyer_id, currency, item_total, payable_total)
VALUES (:base + 50, 'physical', 'pending_payment', 2147483647, 1, 'CNY', 0, 0);
SELECT pg_temp.errh(format('UPDATE order_ext.orders SET attrs = %L WHERE order_id = %s', '{"x":1}', :base + 50)) AS at_max_version;
SELECT version, attrs FROM order_ext.orders WHERE order_id = :base + 50;

DROP EXTENSION order_ext CASCADE;
