--------------------------------------------------------------------------
-- pg_dump / pg_restore (README "Dump and restore").  This part comes after
-- every part that creates tables or ships configuration rows, so that its
-- snapshot of the shipped rows is complete.
--
-- * Tables whose rows are all user data (outbox, timers, requests, tokens,
--   stock, reservations, purchase limits and holdings, their sequences) are registered with pg_extension_config_dump: pg_dump
--   writes their rows, CREATE EXTENSION in the new database makes them.
-- * The monthly partitions register themselves as they are made
--   (partitions.c), and a restore makes missing months before their rows.
-- * Configuration tables that ship rows (machines, transitions,
--   status_labels, timeouts) are dumped whole; the new database's CREATE
--   EXTENSION has made the shipped rows already, so a restored row whose
--   key matches a shipped row still as shipped replaces it in place
--   (config_insert), which keeps users' changes to shipped rows and
--   duplicates nothing.  A shipped row a user deleted leaves a tombstone in
--   config_removed, which is dumped too and deletes the row again on
--   restore.
--------------------------------------------------------------------------

SELECT pg_catalog.pg_extension_config_dump('order_ext.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.timers', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.requests', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.tokens', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.transitions_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.stock_skus', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.stock_buckets', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.reservations', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.purchase_limits', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.buyer_holdings', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.after_sales', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.worker_runs', '');
SELECT pg_catalog.pg_extension_config_dump('order_ext.worker_runs_id_seq', '');

-- The configuration rows as shipped: one row per shipped row, by the
-- table's primary key.
CREATE TABLE order_ext.config_defaults (
    tbl  text  NOT NULL,
    key  jsonb NOT NULL,
    row  jsonb NOT NULL,
    PRIMARY KEY (tbl, key)
);
COMMENT ON TABLE order_ext.config_defaults IS
'The configuration rows order_ext ships (machines, transitions, status_labels, timeouts), as installed: a live row equal to its entry here is unchanged, and a restored row with its key replaces it.';

-- Shipped rows users deleted (or re-keyed): dumped, and applied on restore.
CREATE TABLE order_ext.config_removed (
    tbl  text  NOT NULL,
    key  jsonb NOT NULL,
    PRIMARY KEY (tbl, key)
);
COMMENT ON TABLE order_ext.config_removed IS
'Shipped configuration rows that users deleted; pg_dump keeps them, and restoring a row here deletes the shipped row again.';
SELECT pg_catalog.pg_extension_config_dump('order_ext.config_removed', '');

CREATE FUNCTION order_ext.config_key(tbl regclass, r jsonb) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_object_agg(a.attname, r -> a.attname::text)
    FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = tbl AND i.indisprimary
$$;
COMMENT ON FUNCTION order_ext.config_key(regclass, jsonb) IS
'Internal: the primary-key columns of a row (as jsonb) of a configuration table.';

-- The restore triggers (dump.c).  SECURITY DEFINER: an admin writing a
-- machine table has no rights on the two tables above.
CREATE FUNCTION order_ext.config_insert() RETURNS trigger
    AS 'MODULE_PATHNAME', 'config_insert' LANGUAGE C
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.config_insert() IS
'Trigger on the configuration tables: a new row whose key matches a shipped row that is still as shipped replaces that row in place (this is how pg_restore brings back users'' changes to shipped rows without duplicating them).';

CREATE FUNCTION order_ext.config_delete() RETURNS trigger
    AS 'MODULE_PATHNAME', 'config_delete' LANGUAGE C
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.config_delete() IS
'Trigger on the configuration tables: deleting (or re-keying) a shipped row leaves a tombstone in order_ext.config_removed, so that a restore deletes it again.';

CREATE FUNCTION order_ext.config_removed_apply() RETURNS trigger
    AS 'MODULE_PATHNAME', 'config_removed_apply' LANGUAGE C
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.config_removed_apply() IS
'Trigger on order_ext.config_removed: a restored tombstone deletes the shipped row it names, if that row is still as shipped.';

CREATE TRIGGER config_removed_apply AFTER INSERT ON order_ext.config_removed
    FOR EACH ROW EXECUTE FUNCTION order_ext.config_removed_apply();

-- Register one configuration table that ships rows: dumped whole, its
-- shipped rows remembered, and the two triggers above.
CREATE FUNCTION order_ext.config_table(tbl regclass) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    name text := (SELECT c.relname FROM pg_class c WHERE c.oid = tbl);
BEGIN
    PERFORM pg_catalog.pg_extension_config_dump(tbl, '');
    EXECUTE format('INSERT INTO order_ext.config_defaults (tbl, key, row)
                    SELECT %L, order_ext.config_key(%L::regclass, to_jsonb(t)), to_jsonb(t) FROM %s t',
                   name, tbl, tbl);
    EXECUTE format('CREATE TRIGGER config_insert BEFORE INSERT ON %s
                    FOR EACH ROW EXECUTE FUNCTION order_ext.config_insert()', tbl);
    EXECUTE format('CREATE TRIGGER config_delete AFTER DELETE OR UPDATE ON %s
                    FOR EACH ROW EXECUTE FUNCTION order_ext.config_delete()', tbl);
END $$;
COMMENT ON FUNCTION order_ext.config_table(regclass) IS
'Internal, used by the install script: register a configuration table that ships rows (pg_extension_config_dump, the shipped rows, the restore triggers).';

SELECT order_ext.config_table('order_ext.machines');
SELECT order_ext.config_table('order_ext.transitions');
SELECT order_ext.config_table('order_ext.status_labels');
SELECT order_ext.config_table('order_ext.timeouts');

-- (this part comes after 90_privileges: nothing of it for PUBLIC)
REVOKE EXECUTE ON FUNCTION order_ext.config_key(regclass, jsonb), order_ext.config_insert(),
    order_ext.config_delete(), order_ext.config_removed_apply(), order_ext.config_table(regclass)
    FROM PUBLIC;
