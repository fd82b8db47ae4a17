--
-- security: an application role (grant_app) cannot escalate through
-- order_ext (API.md "Privileges"; issue 7, security review):
--   * SECURITY DEFINER functions pin search_path, so objects the role makes
--     in a schema ahead of pg_catalog in its own search_path are never
--     run by them (tables, functions and operators named like ours);
--   * internal functions (triggers, grant_level, config helpers) cannot be
--     called, nor attached to the role's own tables;
--   * the tables cannot be written directly, and a COPY cannot make
--     partitions;
--   * a schema order_ext made beforehand by someone else stops CREATE
--     EXTENSION.
--
SET client_min_messages = warning;
-- (DROP EXTENSION leaves the schema the control file names; earlier tests
-- of this database leave it empty)
DROP SCHEMA IF EXISTS order_ext;
DROP ROLE IF EXISTS oe_regress_sec_app;
DROP ROLE IF EXISTS oe_regress_sec_squatter;
DROP ROLE IF EXISTS oe_regress_sec_admin;
RESET client_min_messages;
CREATE ROLE oe_regress_sec_app;
CREATE ROLE oe_regress_sec_squatter;

CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

--------------------------------------------------------------------------
-- a squatted schema stops CREATE EXTENSION
--------------------------------------------------------------------------

DO $$ BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO oe_regress_sec_squatter', current_database());
END $$;
SET ROLE oe_regress_sec_squatter;
CREATE SCHEMA order_ext;
RESET ROLE;
SELECT pg_temp.err('CREATE EXTENSION order_ext') AS squatted_schema;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'order_ext';
DROP SCHEMA order_ext;
DO $$ BEGIN
    EXECUTE format('REVOKE CREATE ON DATABASE %I FROM oe_regress_sec_squatter', current_database());
END $$;

CREATE EXTENSION order_ext;
SELECT order_ext.grant_app('oe_regress_sec_app');

--------------------------------------------------------------------------
-- The app role's own schema, first in its search_path (before pg_catalog),
-- holds look-alikes of what order_ext's functions use.  Each evil function
-- records who ran it: a row here by anyone but the app role itself would be
-- an escalation.
--------------------------------------------------------------------------

CREATE SCHEMA oe_regress_evil AUTHORIZATION oe_regress_sec_app;
SET ROLE oe_regress_sec_app;
SET search_path = oe_regress_evil, pg_catalog;
CREATE TABLE oe_regress_evil.ran (who name, what text);
GRANT INSERT, SELECT ON oe_regress_evil.ran TO PUBLIC;
CREATE FUNCTION oe_regress_evil.note(what text) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO oe_regress_evil.ran VALUES (current_user, what) $$;
-- tables named like ours
CREATE TABLE oe_regress_evil.orders (order_id bigint);
CREATE TABLE oe_regress_evil.requests (key text);
CREATE TABLE oe_regress_evil.tokens (token_hash bytea);
CREATE TABLE oe_regress_evil.order_events (order_id bigint);
CREATE TABLE oe_regress_evil.outbox (order_id bigint);
CREATE TABLE oe_regress_evil.machines (machine text);
-- functions with the signatures order_ext's SQL calls
CREATE FUNCTION oe_regress_evil.now() RETURNS timestamptz LANGUAGE plpgsql
    AS $$ BEGIN PERFORM oe_regress_evil.note('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION oe_regress_evil.sha256(bytea) RETURNS bytea LANGUAGE plpgsql
    AS $$ BEGIN PERFORM oe_regress_evil.note('sha256'); RETURN pg_catalog.sha256($1); END $$;
CREATE FUNCTION oe_regress_evil.convert_to(text, name) RETURNS bytea LANGUAGE plpgsql
    AS $$ BEGIN PERFORM oe_regress_evil.note('convert_to'); RETURN pg_catalog.convert_to($1, $2); END $$;
CREATE FUNCTION oe_regress_evil.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql
    AS $$ BEGIN PERFORM oe_regress_evil.note('unnest'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION oe_regress_evil.new_order_id() RETURNS bigint LANGUAGE plpgsql
    AS $$ BEGIN PERFORM oe_regress_evil.note('new_order_id'); RETURN 1; END $$;
-- operators for the types order_ext compares
CREATE FUNCTION oe_regress_evil.eq8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM oe_regress_evil.note('= bigint'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR oe_regress_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = oe_regress_evil.eq8);
CREATE FUNCTION oe_regress_evil.eqt(text, text) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM oe_regress_evil.note('= text'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR oe_regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = oe_regress_evil.eqt);
CREATE FUNCTION oe_regress_evil.eqb(bytea, bytea) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM oe_regress_evil.note('= bytea'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR oe_regress_evil.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = oe_regress_evil.eqb);
CREATE FUNCTION oe_regress_evil.catj(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql
    AS $$ BEGIN PERFORM oe_regress_evil.note('|| jsonb'); RETURN $1 OPERATOR(pg_catalog.||) $2; END $$;
CREATE OPERATOR oe_regress_evil.|| (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = oe_regress_evil.catj);
CREATE FUNCTION oe_regress_evil.gtts(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM oe_regress_evil.note('> timestamptz'); RETURN $1 OPERATOR(pg_catalog.>) $2; END $$;
CREATE OPERATOR oe_regress_evil.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = oe_regress_evil.gtts);
-- the look-alikes are what this search_path finds
SELECT now() IS NOT NULL AS now, 1::bigint = 1::bigint AS eq, sha256('x'::bytea) IS NOT NULL AS sha256;
SELECT who = current_user AS by_app, what FROM oe_regress_evil.ran ORDER BY what;
TRUNCATE oe_regress_evil.ran;

-- every app function, with that search_path
SELECT order_ext.min_order_id('2025-01-01 00:00:00+00') AS base \gset
RESET ROLE;
SELECT order_ext.create_partitions('2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00') AS month;
SET ROLE oe_regress_sec_app;
SELECT order_id - :base AS n, status, version, payable_total
FROM order_ext.create_order(:base + 1, 7, '[{"sku":"SEC-1","qty":2,"unit_price":300}]',
                            discounts => '[{"kind":"coupon","code":"S","amount":100}]');
SELECT order_id - :base AS n, status, version
FROM order_ext.create_order(:base + 1, 7, '[{"sku":"SEC-1","qty":2,"unit_price":300}]',
                            discounts => '[{"kind":"coupon","code":"S","amount":100}]') AS again;
SELECT status, version, attrs FROM order_ext.fire(:base + 1, 'modify', 1, 'buyer', '{"attrs": {"x": 1}}');
SELECT status, version FROM order_ext.fire(:base + 1, 'cancel', 2, 'buyer');
BEGIN;
SELECT order_ext.claim_request('sec:1', 'f') IS NULL AS claimed;
SELECT order_ext.complete_request('sec:1', '{"r": 1}');
COMMIT;
SELECT order_ext.claim_request('sec:1', 'f') AS response;
SELECT order_ext.issue_token() AS token \gset
SELECT order_ext.consume_token(:'token') AS first, order_ext.consume_token(:'token') AS second;
SELECT order_ext.order_id_time(:base + 1) AS id_time;
-- nothing of the role's ran inside order_ext's SECURITY DEFINER functions
SELECT count(*) AS evil_calls FROM oe_regress_evil.ran;
-- nor inside timeline(), which runs as the caller but pins its search_path
-- as find_order() does
SELECT count(*) AS events FROM order_ext.timeline(:base + 1);
SELECT count(*) AS evil_calls_in_timeline FROM oe_regress_evil.ran;
-- functions that run as the caller (no SECURITY DEFINER) may use the
-- caller's own objects, but only with the caller's rights
SELECT order_ext.status_label('physical', 'paid', 'buyer') AS label;
SELECT count(*) AS problems FROM order_ext.validate_machine('physical');
SELECT count(*) FILTER (WHERE who <> current_user) AS ran_as_someone_else FROM oe_regress_evil.ran;
RESET search_path;
RESET ROLE;
-- what the app did is in order_ext's own tables, nothing in the look-alikes
SELECT (SELECT count(*) FROM order_ext.orders WHERE order_id = :base + 1) AS orders,
       (SELECT count(*) FROM order_ext.order_events WHERE order_id = :base + 1) AS events,
       (SELECT count(*) FROM order_ext.outbox WHERE order_id = :base + 1) AS outbox,
       (SELECT count(*) FROM order_ext.requests WHERE key = 'sec:1') AS requests,
       (SELECT count(*) FROM oe_regress_evil.orders) + (SELECT count(*) FROM oe_regress_evil.requests)
       + (SELECT count(*) FROM oe_regress_evil.tokens) + (SELECT count(*) FROM oe_regress_evil.order_events)
       + (SELECT count(*) FROM oe_regress_evil.outbox) AS in_look_alikes;

--------------------------------------------------------------------------
-- internal functions cannot be called, nor attached to the role's tables
--------------------------------------------------------------------------

SET ROLE oe_regress_sec_app;
SELECT pg_temp.err($$SELECT order_ext.grant_level('oe_regress_sec_app', 'admin')$$) AS grant_level;
SELECT pg_temp.err($$SELECT order_ext.grant_admin('oe_regress_sec_app')$$) AS grant_admin;
SELECT pg_temp.err('SELECT order_ext.config_changed()') AS config_changed;
SELECT pg_temp.err('SELECT order_ext.orders_guard()') AS orders_guard;
SELECT pg_temp.err('SELECT order_ext.config_insert()') AS config_insert;
SELECT pg_temp.err('SELECT order_ext.config_delete()') AS config_delete;
SELECT pg_temp.err('SELECT order_ext.config_removed_apply()') AS config_removed_apply;
SELECT pg_temp.err($$SELECT order_ext.config_key('order_ext.machines', '{}')$$) AS config_key;
SELECT pg_temp.err($$SELECT order_ext.config_table('oe_regress_evil.machines')$$) AS config_table;
SELECT pg_temp.err('SELECT order_ext.prune_requests()') AS prune_requests;
SELECT pg_temp.err('SELECT order_ext.run_timers()') AS run_timers;
SELECT pg_temp.err('SELECT order_ext.maintain()') AS maintain;
-- the SECURITY DEFINER trigger functions on the role's own table
CREATE TABLE oe_regress_evil.config_removed (tbl text, key jsonb);
SELECT pg_temp.err('CREATE TRIGGER t AFTER INSERT ON oe_regress_evil.config_removed
                    FOR EACH ROW EXECUTE FUNCTION order_ext.config_removed_apply()') AS attach_config_removed_apply;
SELECT pg_temp.err('CREATE TRIGGER t BEFORE INSERT ON oe_regress_evil.machines
                    FOR EACH ROW EXECUTE FUNCTION order_ext.config_insert()') AS attach_config_insert;
SELECT pg_temp.err('CREATE TRIGGER t BEFORE UPDATE ON oe_regress_evil.orders
                    FOR EACH ROW EXECUTE FUNCTION order_ext.orders_guard()') AS attach_orders_guard;
RESET ROLE;
-- even where attached (here by a superuser), the definer triggers act only
-- on order_ext's own tables
CREATE TABLE pg_temp.config_removed (tbl text, key jsonb);
CREATE TRIGGER t AFTER INSERT ON pg_temp.config_removed
    FOR EACH ROW EXECUTE FUNCTION order_ext.config_removed_apply();
SELECT pg_temp.err($$INSERT INTO pg_temp.config_removed VALUES ('machines', '{"machine": "physical"}')$$) AS foreign_table;
SELECT count(*) AS physical FROM order_ext.machines WHERE machine = 'physical';
-- trigger functions are not callable as functions by anyone
SELECT pg_temp.err('SELECT order_ext.config_changed()') AS superuser_config_changed;

--------------------------------------------------------------------------
-- no direct writes to any table of order_ext, nor partitions made by COPY
--------------------------------------------------------------------------

SET ROLE oe_regress_sec_app;
SELECT c.relname AS relation,
       pg_temp.err(format('INSERT INTO %s DEFAULT VALUES', c.oid::regclass)) ~ '^42501' AS insert_denied,
       pg_temp.err(format('UPDATE %s SET %I = %I', c.oid::regclass, a.attname, a.attname)) ~ '^42501' AS update_denied,
       pg_temp.err(format('DELETE FROM %s', c.oid::regclass)) ~ '^42501' AS delete_denied,
       pg_temp.err(format('TRUNCATE %s', c.oid::regclass)) ~ '^42501' AS truncate_denied
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
WHERE c.relnamespace = 'order_ext'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname;
-- partitions too
SELECT count(*) AS partitions,
       count(*) FILTER (WHERE pg_temp.err(format('DELETE FROM %s', c.oid::regclass)) !~ '^42501') AS writable
FROM pg_class c WHERE c.relnamespace = 'order_ext'::regnamespace AND c.relispartition AND c.relkind = 'r';
SELECT pg_temp.err($$COPY order_ext.orders_p2032_07 FROM '/dev/null'$$) ~ '^(42501|42P01)' AS copy_refused;
SELECT pg_temp.err('SELECT * FROM order_ext.tokens') AS read_tokens;
SELECT pg_temp.err('SELECT * FROM order_ext.requests') AS read_requests;
RESET ROLE;
SELECT count(*) AS partitions_2032_07 FROM pg_class WHERE relname ~ '_p2032_07$';

--------------------------------------------------------------------------
-- every SECURITY DEFINER function: pinned search_path, and who may run it
-- (a trigger function: nobody; otherwise the level role_grants gives it)
--------------------------------------------------------------------------

SELECT p.oid::regprocedure AS security_definer,
       (SELECT c FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%') AS pinned,
       CASE WHEN p.prorettype = 'trigger'::regtype THEN 'trigger only'
            ELSE (SELECT string_agg(g.level, ', ' ORDER BY g.level) FROM order_ext.role_grants g
                  WHERE g.kind = 'function' AND g.name = p.proname) END AS who,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public
FROM pg_proc p
WHERE p.pronamespace = 'order_ext'::regnamespace AND p.prosecdef
ORDER BY p.oid::regprocedure::text;

--------------------------------------------------------------------------
-- archive() runs in a process of its own that logs in as the caller and
-- runs as the extension's owner: the login role's defaults (ALTER ROLE ...
-- SET search_path, which any role may set for itself) do not reach its SQL,
-- or an admin role's own = on bigint would run with the owner's rights
--------------------------------------------------------------------------

SELECT current_user AS oe_super \gset
CREATE ROLE oe_regress_sec_admin LOGIN;
SELECT order_ext.grant_admin('oe_regress_sec_admin');
CREATE SCHEMA oe_regress_own AUTHORIZATION oe_regress_sec_admin;
\c - oe_regress_sec_admin
CREATE TABLE oe_regress_own.seen (who name);
CREATE FUNCTION oe_regress_own.eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO oe_regress_own.seen VALUES (current_user);
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR oe_regress_own.= (function = oe_regress_own.eq, leftarg = bigint, rightarg = bigint);
ALTER ROLE oe_regress_sec_admin SET search_path = oe_regress_own, pg_catalog;
-- (this session does run it)
SET search_path = oe_regress_own, pg_catalog;
SELECT 1::bigint = 1::bigint AS own_equals;
RESET search_path;
SELECT order_ext.archive('90 days') AS archived;
SELECT who, count(*) FROM oe_regress_own.seen GROUP BY who ORDER BY who;
-- a login role that defaults to read-only, in a session set read-write:
-- archive() follows the session (its process logged in read-only and
-- failed: cannot execute UPDATE in a read-only transaction)
ALTER ROLE oe_regress_sec_admin RESET search_path;
ALTER ROLE oe_regress_sec_admin SET default_transaction_read_only = on;
SET default_transaction_read_only = off;
SELECT order_ext.archive('90 days') AS archived_with_read_only_default;
ALTER ROLE oe_regress_sec_admin RESET default_transaction_read_only;
\c - :oe_super
ALTER ROLE oe_regress_sec_admin RESET search_path;
SELECT rolsuper AS admin_is_superuser FROM pg_roles WHERE rolname = 'oe_regress_sec_admin';

SET client_min_messages = warning;
DROP SCHEMA oe_regress_evil CASCADE;
DROP SCHEMA oe_regress_own CASCADE;
DROP EXTENSION order_ext CASCADE;
RESET client_min_messages;
DROP OWNED BY oe_regress_sec_app, oe_regress_sec_squatter, oe_regress_sec_admin;
DROP ROLE oe_regress_sec_app;
DROP ROLE oe_regress_sec_admin;
DROP ROLE oe_regress_sec_squatter;
