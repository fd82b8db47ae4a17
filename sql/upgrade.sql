--
-- upgrade: CREATE EXTENSION order_ext VERSION '0.1' (the released version),
-- some orders made at 0.1, ALTER EXTENSION order_ext UPDATE, and the result
-- must match a fresh install of the current version: functions (arguments,
-- results, attributes, settings, bodies, comments, privileges), tables,
-- views and sequences, columns, constraints, indexes, triggers, comments,
-- extension membership and config-dump registrations, and the rows the
-- extension ships (machines, transitions, labels, timeouts, grants).
-- The orders made at 0.1 survive and keep working.  (issue 7)
--
SET client_min_messages = warning;
SET check_function_bodies = off;   -- oe_describe reads tables the extension makes later

-- describe(): the extension's objects as (kind, name, detail) rows
CREATE FUNCTION public.oe_describe() RETURNS TABLE (kind text, name text, detail text)
LANGUAGE sql AS $$
    -- functions
    SELECT 'function', p.oid::regprocedure::text,
           concat_ws(' | ', pg_get_function_result(p.oid), p.prokind, p.provolatile, p.proisstrict,
                     p.prosecdef, p.proparallel, p.proconfig::text, l.lanname,
                     CASE WHEN l.lanname = 'c' THEN p.prosrc ELSE md5(p.prosrc) END,
                     pg_get_function_arguments(p.oid), obj_description(p.oid, 'pg_proc'), p.proacl::text)
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
    WHERE p.pronamespace = 'order_ext'::regnamespace
    UNION ALL
    -- relations (not the monthly partitions: data, not schema)
    SELECT 'relation', c.relname,
           concat_ws(' | ', c.relkind, c.relpersistence, c.reloptions::text, c.relacl::text,
                     obj_description(c.oid, 'pg_class'),
                     CASE WHEN c.relkind = 'v' THEN md5(pg_get_viewdef(c.oid)) END,
                     pg_get_partkeydef(c.oid),
                     (SELECT count(*) FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'))
    FROM pg_class c
    WHERE c.relnamespace = 'order_ext'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'S', 'm', 'c')
      AND NOT c.relispartition
    UNION ALL
    -- columns
    SELECT 'column', c.relname || '.' || a.attname,
           concat_ws(' | ', format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attnum,
                     pg_get_expr(ad.adbin, ad.adrelid), co.collname, col_description(c.oid, a.attnum),
                     a.attgenerated)
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
    WHERE c.relnamespace = 'order_ext'::regnamespace AND c.relkind IN ('r', 'p', 'v')
      AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    -- constraints
    SELECT 'constraint', c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
    WHERE c.relnamespace = 'order_ext'::regnamespace AND NOT c.relispartition
    UNION ALL
    -- indexes
    SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
    WHERE c.relnamespace = 'order_ext'::regnamespace AND NOT c.relispartition
    UNION ALL
    -- triggers
    SELECT 'trigger', c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = 'order_ext'::regnamespace AND NOT t.tgisinternal AND NOT c.relispartition
    UNION ALL
    -- types of the schema other than row types
    SELECT 'type', t.typname, t.typtype::text
    FROM pg_type t
    WHERE t.typnamespace = 'order_ext'::regnamespace AND t.typtype NOT IN ('c', 'b')
    UNION ALL
    -- config-dump registrations
    SELECT 'config_dump', x.cfg::regclass::text, coalesce(x.cond, '')
    FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(cfg, cond)
    WHERE e.extname = 'order_ext'
    UNION ALL
    -- the rows the extension ships
    SELECT 'row:machines', machine, concat_ws(' | ', initial_status, terminal_statuses::text, description)
    FROM order_ext.machines
    UNION ALL
    SELECT 'row:transitions', concat_ws('/', machine, from_status, event, to_status),
           concat_ws(' | ', actors::text, effects::text, requires::text)
    FROM order_ext.transitions
    UNION ALL
    SELECT 'row:status_labels', concat_ws('/', machine, status, role), label FROM order_ext.status_labels
    UNION ALL
    SELECT 'row:timeouts', concat_ws('/', machine, status, event), after::text FROM order_ext.timeouts
    UNION ALL
    SELECT 'row:role_grants', concat_ws('/', level, kind, name), privileges
    FROM order_ext.role_grants
$$;

-- 1. the released version, with orders made there, and two roles let in
-- there (an app role, then an admin role)
CREATE EXTENSION order_ext VERSION '0.1';
CREATE ROLE oe_regress_up_app;
CREATE ROLE oe_regress_up_admin;
SELECT order_ext.grant_app('oe_regress_up_app');
SELECT order_ext.grant_admin('oe_regress_up_admin');
SELECT extversion FROM pg_extension WHERE extname = 'order_ext';
CREATE TABLE public.oe_ids AS
SELECT n, order_ext.min_order_id(now()) + n AS id FROM generate_series(1, 3) n;
SELECT status, version FROM order_ext.create_order((SELECT id FROM oe_ids WHERE n = 1), 1,
       '[{"sku":"UP-1","qty":2,"unit_price":100}]', discounts => '[{"kind":"coupon","amount":50}]');
-- (a free order: the current library fires pay only for orders paid in full)
SELECT status, version FROM order_ext.create_order((SELECT id FROM oe_ids WHERE n = 2), 2,
       '[{"sku":"UP-2","qty":1,"unit_price":0}]');
SELECT status, version FROM order_ext.fire((SELECT id FROM oe_ids WHERE n = 2), 'pay');

-- 2. upgrade to the current version
ALTER EXTENSION order_ext UPDATE;
SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'order_ext') AS at_default_version
FROM pg_extension WHERE extname = 'order_ext';
CREATE TABLE public.oe_upgraded AS SELECT * FROM public.oe_describe();

-- the orders made at 0.1 are there and keep working
SELECT n, o.status, o.version, o.payable_total FROM oe_ids JOIN order_ext.orders o ON o.order_id = oe_ids.id ORDER BY n;
SELECT status, version FROM order_ext.fire((SELECT id FROM oe_ids WHERE n = 2), 'ship', actor => 'merchant');
SELECT status, version, paid_total FROM order_ext.record_payment((SELECT id FROM oe_ids WHERE n = 1), 'up-txn-1', 150);
SELECT status, version FROM order_ext.create_order((SELECT id FROM oe_ids WHERE n = 3), 3,
       '[{"sku":"UP-3","qty":1,"unit_price":700}]');
SELECT n, v.version, v.event FROM oe_ids, order_ext.timeline(oe_ids.id) v ORDER BY n, v.version;

-- the roles let in at 0.1 may use what 0.2 added, with no grant again
SELECT id AS up_id FROM oe_ids WHERE n = 1 \gset
SET ROLE oe_regress_up_app;
SELECT order_ext.claim_request('up:1', 'f') IS NULL AS app_claims,
       (order_ext.find_order(:up_id)).order_id = :up_id AS app_finds;
SET ROLE oe_regress_up_admin;
SELECT (order_ext.set_stock('UP-9', 5)).on_hand AS admin_sets_stock,
       order_ext.prune_requests() >= 0 AS admin_prunes;
RESET ROLE;

-- this session used order_ext at 0.1, before the stock tables existed; its
-- stock cache follows them now (it once kept "no stock tables" for good, so
-- every order of this session went unreserved and unlimited)
SELECT status FROM order_ext.create_order(order_ext.new_order_id(), 4, '[{"sku":"UP-9","qty":2,"unit_price":10}]');
SELECT on_hand, reserved FROM order_ext.stock WHERE sku = 'UP-9';
DO $$
BEGIN
    PERFORM order_ext.create_order(order_ext.new_order_id(), 5, '[{"sku":"UP-9","qty":4,"unit_price":10}]');
    RAISE NOTICE 'created';
EXCEPTION WHEN SQLSTATE 'OE003' THEN
    RAISE WARNING 'OE003: %', SQLERRM;
END $$;

-- 3. a fresh install of the current version, the same roles let in there
-- (the comparison below reads privileges too: they must be the same)
DROP EXTENSION order_ext CASCADE;
DROP SCHEMA IF EXISTS order_ext CASCADE;
CREATE EXTENSION order_ext;
SELECT order_ext.grant_app('oe_regress_up_app');
SELECT order_ext.grant_admin('oe_regress_up_admin');
CREATE TABLE public.oe_fresh AS SELECT * FROM public.oe_describe();

-- what differs (no rows: the upgrade gives exactly a fresh install)
SELECT 'only after upgrade' AS side, * FROM (TABLE oe_upgraded EXCEPT TABLE oe_fresh) a
UNION ALL
SELECT 'only in fresh install', * FROM (TABLE oe_fresh EXCEPT TABLE oe_upgraded) b
ORDER BY 2, 3, 1;
SELECT count(*) > 100 AS compared_many_objects, count(DISTINCT kind) AS kinds FROM oe_fresh;

-- 4. shipped rows a user deleted at 0.1 leave tombstones in the upgrade,
-- as a deletion at 0.2 does: restored into a fresh install (which ships
-- them), a dump then deletes them again rather than bringing them back
DROP EXTENSION order_ext CASCADE;
DROP SCHEMA IF EXISTS order_ext CASCADE;
CREATE EXTENSION order_ext VERSION '0.1';
DELETE FROM order_ext.timeouts WHERE machine = 'virtual' AND status = 'pending_payment';
DELETE FROM order_ext.transitions WHERE machine = 'virtual' AND from_status = 'paid' AND event = 'modify';
DELETE FROM order_ext.status_labels WHERE machine = 'physical' AND status = 'split' AND role = 'merchant';
ALTER EXTENSION order_ext UPDATE;
CREATE TEMP TABLE oe_tombstones AS SELECT tbl, key FROM order_ext.config_removed;
SELECT tbl, key FROM oe_tombstones ORDER BY tbl, key::text;
DROP EXTENSION order_ext CASCADE;
DROP SCHEMA IF EXISTS order_ext CASCADE;
CREATE EXTENSION order_ext;
INSERT INTO order_ext.config_removed SELECT tbl, key FROM oe_tombstones;  -- as pg_restore does
SELECT (SELECT count(*) FROM order_ext.timeouts WHERE machine = 'virtual' AND status = 'pending_payment') AS timeout_back,
       (SELECT count(*) FROM order_ext.transitions WHERE machine = 'virtual' AND from_status = 'paid' AND event = 'modify') AS transition_back,
       (SELECT count(*) FROM order_ext.status_labels WHERE machine = 'physical' AND status = 'split' AND role = 'merchant') AS label_back;

DROP EXTENSION order_ext CASCADE;
DROP TABLE oe_ids, oe_upgraded, oe_fresh;
DROP OWNED BY oe_regress_up_app, oe_regress_up_admin;
DROP ROLE oe_regress_up_app, oe_regress_up_admin;
DROP FUNCTION oe_describe();
