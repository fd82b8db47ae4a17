--
-- privileges: nothing for PUBLIC; grant_app / grant_admin; SECURITY
-- DEFINER functions pin search_path; every function is documented
-- (API.md "Privileges", "Observability")
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- roles are cluster-wide: unique names, left over ones removed quietly
SET client_min_messages = warning;
DROP ROLE IF EXISTS oe_regress_priv_none;
DROP ROLE IF EXISTS oe_regress_priv_app;
DROP ROLE IF EXISTS oe_regress_priv_admin;
RESET client_min_messages;
CREATE ROLE oe_regress_priv_none;
CREATE ROLE oe_regress_priv_app;
CREATE ROLE oe_regress_priv_admin;

SELECT order_ext.create_partitions('2024-02-01 00:00:00+00', '2024-02-01 00:00:00+00') AS months;
SELECT order_ext.min_order_id('2024-02-10 00:00:00+00') AS base \gset

--------------------------------------------------------------------------
-- The catalog: PUBLIC gets nothing
--------------------------------------------------------------------------

-- no function of order_ext is executable by PUBLIC (listed if any is)
SELECT p.oid::regprocedure AS public_can_execute
FROM pg_proc p
WHERE p.pronamespace = 'order_ext'::regnamespace
  AND has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY p.oid::regprocedure::text;
-- the same read from the ACLs (NULL proacl means the default, which grants PUBLIC)
SELECT p.oid::regprocedure AS public_in_acl
FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
WHERE p.pronamespace = 'order_ext'::regnamespace
  AND a.grantee = 0
ORDER BY p.oid::regprocedure::text;
-- no table, partition, view or sequence of order_ext grants PUBLIC anything
SELECT c.oid::regclass AS public_has_access, a.privilege_type
FROM pg_class c,
     aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
WHERE c.relnamespace = 'order_ext'::regnamespace
  AND a.grantee = 0
ORDER BY c.oid::regclass::text, 2;
SELECT has_schema_privilege('public', 'order_ext', 'USAGE') AS public_schema_usage,
       has_schema_privilege('public', 'order_ext', 'CREATE') AS public_schema_create;

-- a role without grants can execute no order_ext function
SELECT count(*) > 0 AS has_functions,
       count(*) FILTER (WHERE has_function_privilege('oe_regress_priv_none', p.oid, 'EXECUTE')) AS executable
FROM pg_proc p WHERE p.pronamespace = 'order_ext'::regnamespace;

-- every SECURITY DEFINER function pins search_path (to trusted schemas,
-- pg_temp last); listed if one does not
SELECT count(*) > 0 AS has_security_definer FROM pg_proc p
WHERE p.pronamespace = 'order_ext'::regnamespace AND p.prosecdef;
SELECT p.oid::regprocedure AS definer_without_search_path
FROM pg_proc p
WHERE p.pronamespace = 'order_ext'::regnamespace AND p.prosecdef
  AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
ORDER BY p.oid::regprocedure::text;
SELECT p.oid::regprocedure AS definer_with_unsafe_search_path, c AS setting
FROM pg_proc p, unnest(p.proconfig) c
WHERE p.pronamespace = 'order_ext'::regnamespace AND p.prosecdef
  AND c LIKE 'search\_path=%'
  AND (c ~ '(public|\$user)' OR c !~ 'pg_temp"?$')
ORDER BY p.oid::regprocedure::text;

-- every function of order_ext has a COMMENT (listed if one has none)
SELECT p.oid::regprocedure AS function_without_comment
FROM pg_proc p
WHERE p.pronamespace = 'order_ext'::regnamespace
  AND obj_description(p.oid, 'pg_proc') IS NULL
ORDER BY p.oid::regprocedure::text;

--------------------------------------------------------------------------
-- A role with no grants
--------------------------------------------------------------------------

SELECT has_schema_privilege('oe_regress_priv_none', 'order_ext', 'USAGE') AS usage,
       has_function_privilege('oe_regress_priv_none',
           'order_ext.create_order(bigint,bigint,jsonb,text,jsonb,bigint,jsonb,text)', 'EXECUTE') AS create_order,
       has_table_privilege('oe_regress_priv_none', 'order_ext.orders', 'SELECT') AS select_orders;
SET ROLE oe_regress_priv_none;
SELECT pg_temp.err('SELECT order_ext.new_order_id()') AS new_order_id;
SELECT pg_temp.err($$SELECT order_ext.create_order(1, 1, '[{"sku":"A","qty":1,"unit_price":1}]')$$) AS create_order;
SELECT pg_temp.err('SELECT count(*) FROM order_ext.orders') AS select_orders;
SELECT pg_temp.err('SELECT count(*) FROM order_ext.orders_p2024_02') AS select_partition;
SELECT pg_temp.err('SELECT order_ext.maintain()') AS maintain;
-- nor listen on the channel that carries every order's id (PostgreSQL has
-- no privileges on channels; order_ext's LISTEN hook needs USAGE on its
-- schema); other channels are not order_ext's business
SELECT pg_temp.err('LISTEN order_ext') AS listen_order_ext,
       pg_temp.err('LISTEN oe_regress_other') AS listen_other;
UNLISTEN *;
RESET ROLE;
-- with USAGE on the schema only, each function is still refused on its own
GRANT USAGE ON SCHEMA order_ext TO oe_regress_priv_none;
SET ROLE oe_regress_priv_none;
SELECT pg_temp.err('SELECT order_ext.new_order_id()') AS new_order_id;
SELECT pg_temp.err($$SELECT order_ext.create_order(1, 1, '[{"sku":"A","qty":1,"unit_price":1}]')$$) AS create_order;
SELECT pg_temp.err('SELECT count(*) FROM order_ext.orders') AS select_orders;
SELECT pg_temp.err($$SELECT order_ext.create_partitions('2024-02-01', '2024-02-01')$$) AS create_partitions;
SELECT pg_temp.err($$SELECT order_ext.grant_app('oe_regress_priv_none')$$) AS grant_app_to_self;
SELECT pg_temp.err($$SELECT order_ext.grant_admin('oe_regress_priv_none')$$) AS grant_admin_to_self;
-- (a role that may use the schema may listen)
SELECT pg_temp.err('LISTEN order_ext') AS listen_order_ext;
UNLISTEN *;
RESET ROLE;
REVOKE USAGE ON SCHEMA order_ext FROM oe_regress_priv_none;

--------------------------------------------------------------------------
-- grant_app: call the order functions, read the order tables; no direct
-- writes, no partitions, no machines
--------------------------------------------------------------------------

SELECT pg_temp.err('SELECT order_ext.grant_app(NULL)') AS grant_app_null;
SELECT pg_temp.err($$SELECT order_ext.grant_app('oe_regress_no_such_role')$$) AS grant_app_unknown_role;
-- nor the empty name, nor PUBLIC (no role is named "public": the GRANTs
-- would have gone to everyone)
SELECT pg_temp.err($$SELECT order_ext.grant_app('')$$) AS grant_app_empty,
       pg_temp.err($$SELECT order_ext.grant_admin('public')$$) AS grant_admin_public,
       has_function_privilege('public', 'order_ext.set_stock(text,bigint,text,boolean,integer)', 'EXECUTE') AS public_may_set_stock;
SELECT order_ext.grant_app('oe_regress_priv_app');
SELECT order_ext.grant_app('oe_regress_priv_app') AS again;

SET ROLE oe_regress_priv_app;
SELECT order_ext.new_order_id() > 0 AS new_order_id;
SELECT order_ext.order_id_time(order_ext.new_order_id()) > now() - interval '1 minute' AS order_id_time;
SELECT status, version, payable_total
FROM order_ext.create_order(order_ext.new_order_id(), 21, '[{"sku":"APP-1","qty":2,"unit_price":150}]', shipping_fee => 10);
SELECT status, version, payable_total
FROM order_ext.create_order(:base + 1, 22, '[{"sku":"APP-2","qty":1,"unit_price":990}]');
-- reads the order tables (through the parents)
SELECT count(*) AS orders FROM order_ext.orders;
SELECT count(*) AS items FROM order_ext.order_items;
SELECT count(*) AS events FROM order_ext.order_events;
SELECT count(*) AS discounts FROM order_ext.order_discounts;
SELECT count(*) AS payments FROM order_ext.order_payments;
-- moves an order through its machine
SELECT status, version FROM order_ext.fire(:base + 1, 'cancel', 1, 'buyer');
-- cannot write the order tables directly, parents or partitions
SELECT pg_temp.err(format($$INSERT INTO order_ext.orders (order_id, machine, status, buyer_id, currency, item_total, payable_total)
                            VALUES (%s, 'physical', 'paid', 1, 'CNY', 0, 0)$$, :base + 2)) AS insert_orders;
SELECT pg_temp.err(format($$UPDATE order_ext.orders SET attrs = '{"x":1}' WHERE order_id = %s$$, :base + 1)) AS update_orders;
SELECT pg_temp.err(format($$DELETE FROM order_ext.orders WHERE order_id = %s$$, :base + 1)) AS delete_orders;
SELECT pg_temp.err('TRUNCATE order_ext.orders') AS truncate_orders;
SELECT pg_temp.err(format($$INSERT INTO order_ext.orders_p2024_02 (order_id, machine, status, buyer_id, currency, item_total, payable_total)
                            VALUES (%s, 'physical', 'paid', 1, 'CNY', 0, 0)$$, :base + 2)) AS insert_partition;
SELECT pg_temp.err(format($$UPDATE order_ext.orders_p2024_02 SET attrs = '{"x":1}' WHERE order_id = %s$$, :base + 1)) AS update_partition;
SELECT pg_temp.err(format($$DELETE FROM order_ext.orders_p2024_02 WHERE order_id = %s$$, :base + 1)) AS delete_partition;
SELECT pg_temp.err(format($$UPDATE order_ext.order_items SET unit_price = 1 WHERE order_id = %s$$, :base + 1)) AS update_items;
SELECT pg_temp.err(format($$INSERT INTO order_ext.order_events (order_id, version, event, to_status, actor)
                            VALUES (%s, 3, 'pay', 'paid', 'system')$$, :base + 1)) AS insert_events;
SELECT pg_temp.err(format($$DELETE FROM order_ext.order_events WHERE order_id = %s$$, :base + 1)) AS delete_events;
-- no partitions, no maintenance, no machines
SELECT pg_temp.err($$SELECT order_ext.create_partitions('2023-05-01', '2023-05-01')$$) AS create_partitions;
SELECT pg_temp.err('SELECT order_ext.maintain()') AS maintain;
SELECT pg_temp.err($$INSERT INTO order_ext.machines (machine, initial_status) VALUES ('oe_regress_m', 'new')$$) AS insert_machine;
SELECT pg_temp.err($$UPDATE order_ext.machines SET initial_status = 'paid' WHERE machine = 'physical'$$) AS update_machine;
-- and cannot hand itself more
SELECT pg_temp.err($$SELECT order_ext.grant_admin('oe_regress_priv_app')$$) AS grant_admin_to_self;
RESET ROLE;
-- nothing of that got through
SELECT order_id - :base AS n, status, version, attrs FROM order_ext.orders WHERE order_id = :base + 1;
SELECT count(*) AS orders, count(*) FILTER (WHERE order_id = :base + 2) AS forged FROM order_ext.orders;
SELECT version, event FROM order_ext.order_events WHERE order_id = :base + 1 ORDER BY version;
SELECT count(*) AS machines FROM order_ext.machines WHERE machine = 'oe_regress_m';

--------------------------------------------------------------------------
-- grant_admin: maintenance, partitions, machines
--------------------------------------------------------------------------

SELECT order_ext.grant_admin('oe_regress_priv_admin');
SET ROLE oe_regress_priv_admin;
SELECT order_ext.maintain() AS maintain;
SELECT order_ext.create_partitions('2023-05-01 00:00:00+00', '2023-06-30 00:00:00+00') AS create_partitions;
INSERT INTO order_ext.machines (machine, initial_status, description) VALUES ('oe_regress_m', 'new', 'a test machine');
SELECT machine, status, version
FROM order_ext.create_order(order_ext.min_order_id('2023-05-05 00:00:00+00') + 1, 31,
                            '[{"sku":"ADM-1","qty":1,"unit_price":5}]', 'oe_regress_m');
-- the admin cannot write order rows directly either
SELECT pg_temp.err(format($$UPDATE order_ext.orders SET attrs = '{"x":1}' WHERE order_id = %s$$, :base + 1)) AS update_orders;
SELECT pg_temp.err(format($$INSERT INTO order_ext.orders_p2023_05 (order_id, machine, status, buyer_id, currency, item_total, payable_total)
                            VALUES (%s, 'physical', 'paid', 1, 'CNY', 0, 0)$$,
                          order_ext.min_order_id('2023-05-06 00:00:00+00'))) AS insert_partition;
SELECT pg_temp.err('ALTER TABLE order_ext.orders_p2023_05 DISABLE TRIGGER ALL') AS disable_triggers;
RESET ROLE;
-- partitions made on the admin's behalf belong to the extension's owner,
-- not to the admin (who could otherwise write them or drop their triggers)
SELECT count(*) >= 35 AS partitions,
       count(*) FILTER (WHERE c.relowner <> (SELECT relowner FROM pg_class WHERE oid = 'order_ext.orders'::regclass)) AS owned_by_someone_else
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent IN ('order_ext.orders'::regclass, 'order_ext.order_items'::regclass, 'order_ext.order_payments'::regclass,
                      'order_ext.order_discounts'::regclass, 'order_ext.order_events'::regclass);

-- what each level can call, by name (role_grants): a new function shows up here
SELECT p.proname AS function,
       bool_or(has_function_privilege('oe_regress_priv_app', p.oid, 'EXECUTE')) AS app,
       bool_or(has_function_privilege('oe_regress_priv_admin', p.oid, 'EXECUTE')) AS admin
FROM pg_proc p WHERE p.pronamespace = 'order_ext'::regnamespace
GROUP BY p.proname ORDER BY p.proname;
-- and which tables, views and sequences
SELECT c.relname AS relation,
       string_agg(DISTINCT a.privilege_type, ',' ORDER BY a.privilege_type)
           FILTER (WHERE a.grantee = 'oe_regress_priv_app'::regrole) AS app,
       string_agg(DISTINCT a.privilege_type, ',' ORDER BY a.privilege_type)
           FILTER (WHERE a.grantee = 'oe_regress_priv_admin'::regrole) AS admin
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.relnamespace = 'order_ext'::regnamespace
  AND a.grantee IN ('oe_regress_priv_app'::regrole, 'oe_regress_priv_admin'::regrole)
GROUP BY c.relname ORDER BY c.relname;

DROP EXTENSION order_ext CASCADE;
-- (whatever grants are left, e.g. on the schema, go with DROP OWNED)
DROP OWNED BY oe_regress_priv_none, oe_regress_priv_app, oe_regress_priv_admin;
DROP ROLE oe_regress_priv_none;
DROP ROLE oe_regress_priv_app;
DROP ROLE oe_regress_priv_admin;
