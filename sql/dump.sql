--
-- dump: what pg_restore relies on inside the database (README "Dump and
-- restore"; the round trip itself is test/t/020_dump_restore.pl)
--
CREATE EXTENSION order_ext;

CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- what pg_dump writes the rows of (extconfig), and with which filter
SELECT c.relname, coalesce(nullif(f, ''), '(all rows)') AS filter
FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(oid, f)
JOIN pg_class c ON c.oid = x.oid
WHERE e.extname = 'order_ext' AND NOT c.relispartition
ORDER BY 1;

-- every shipped configuration row is remembered, by primary key
SELECT tbl, count(*) AS shipped_rows,
       bool_and(key = order_ext.config_key(('order_ext.' || tbl)::regclass, row)) AS keyed
FROM order_ext.config_defaults GROUP BY tbl ORDER BY tbl;

--------------------------------------------------------------------------
-- a row with the key of a shipped row still as shipped replaces it in
-- place (this is what a restore does); otherwise keys collide as usual
--------------------------------------------------------------------------

INSERT INTO order_ext.timeouts (machine, status, after, event)
VALUES ('physical', 'pending_payment', '45 minutes', 'expire');
SELECT machine, status, after, event FROM order_ext.timeouts
WHERE machine = 'physical' AND status = 'pending_payment';
-- changed now: the same key again is a plain duplicate
SELECT pg_temp.err($$INSERT INTO order_ext.timeouts (machine, status, after, event)
                     VALUES ('physical', 'pending_payment', '50 minutes', 'expire')$$) AS duplicate;
-- replacing a shipped machine keeps its transitions (no delete, no cascade)
SELECT count(*) AS physical_transitions FROM order_ext.transitions WHERE machine = 'physical';
INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses, description)
SELECT machine, initial_status, terminal_statuses, 'Ours now' FROM order_ext.machines WHERE machine = 'physical';
SELECT description, (SELECT count(*) FROM order_ext.transitions WHERE machine = 'physical') AS physical_transitions
FROM order_ext.machines WHERE machine = 'physical';
-- a new key is a plain insert
INSERT INTO order_ext.machines (machine, initial_status) VALUES ('oe_regress_dump', 'new');
SELECT count(*) AS machines FROM order_ext.machines;

--------------------------------------------------------------------------
-- deleting a shipped row leaves a tombstone; adding the key back removes it
--------------------------------------------------------------------------

DELETE FROM order_ext.status_labels WHERE machine = 'virtual' AND status = 'paid' AND role = 'merchant';
DELETE FROM order_ext.status_labels WHERE machine = 'oe_regress_dump';  -- not shipped: nothing
SELECT tbl, key FROM order_ext.config_removed ORDER BY tbl, key::text;
INSERT INTO order_ext.status_labels VALUES ('virtual', 'paid', 'merchant', 'Ship it');
SELECT count(*) AS tombstones FROM order_ext.config_removed;
DELETE FROM order_ext.status_labels WHERE machine = 'virtual' AND status = 'paid' AND role = 'merchant';
-- re-keying a shipped row is a deletion of its key
UPDATE order_ext.timeouts SET status = 'delivered' WHERE machine = 'virtual' AND status = 'pending_payment';
SELECT tbl, key FROM order_ext.config_removed ORDER BY tbl, key::text;

--------------------------------------------------------------------------
-- a restored tombstone deletes the shipped row, if it is still as shipped
--------------------------------------------------------------------------

SELECT count(*) AS shipped_label FROM order_ext.status_labels
WHERE machine = 'physical' AND status = 'paid' AND role = 'buyer';
INSERT INTO order_ext.config_removed VALUES ('status_labels', '{"machine": "physical", "status": "paid", "role": "buyer"}');
SELECT count(*) AS shipped_label FROM order_ext.status_labels
WHERE machine = 'physical' AND status = 'paid' AND role = 'buyer';
-- a changed row is left alone
INSERT INTO order_ext.config_removed VALUES ('timeouts', '{"machine": "physical", "status": "pending_payment", "event": "expire"}');
SELECT after FROM order_ext.timeouts WHERE machine = 'physical' AND status = 'pending_payment';

-- the triggers act only on order_ext's tables
CREATE TEMP TABLE timeouts (machine text PRIMARY KEY);
CREATE TRIGGER t BEFORE INSERT ON pg_temp.timeouts FOR EACH ROW EXECUTE FUNCTION order_ext.config_insert();
SELECT pg_temp.err($$INSERT INTO pg_temp.timeouts VALUES ('physical')$$) AS foreign_table;
DROP TABLE pg_temp.timeouts;

-- a column or an index added to one of the extension's tables is not in a
-- dump (CREATE EXTENSION makes the table as shipped): said where it is done,
-- with the way to restore such a dump; not for other tables
ALTER TABLE order_ext.orders ADD COLUMN channel text;
CREATE INDEX orders_history_buyer_time_idx ON order_ext.orders_history (buyer_id, created_at);
ALTER TABLE order_ext.orders ALTER COLUMN channel SET DEFAULT 'web';
CREATE TABLE public.my_orders_extra (order_id bigint);
ALTER TABLE public.my_orders_extra ADD COLUMN channel text;
DROP TABLE public.my_orders_extra;
DROP INDEX order_ext.orders_history_buyer_time_idx;
ALTER TABLE order_ext.orders DROP COLUMN channel;

DROP EXTENSION order_ext CASCADE;
