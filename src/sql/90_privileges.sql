--------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; grant_app / grant_admin hand out roles
-- what order_ext.role_grants lists.  (Also part of the upgrade scripts,
-- hence CREATE OR REPLACE for functions that existed before.)
--------------------------------------------------------------------------

REVOKE ALL ON SCHEMA order_ext FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA order_ext FROM PUBLIC;

-- Grant one level of order_ext.role_grants to a role.
CREATE FUNCTION order_ext.grant_level(role name, level text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g record;
    f regprocedure;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = '22023';
    END IF;
    IF role = '' THEN
        RAISE EXCEPTION 'role must not be empty' USING ERRCODE = '22023';
    END IF;
    -- a role by that name: "public" is none (%I leaves it bare, and GRANT
    -- ... TO public would hand everyone the level)
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = role) THEN
        RAISE EXCEPTION 'role "%" does not exist', role USING ERRCODE = '42704';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA order_ext TO %I', role);
    FOR g IN SELECT * FROM order_ext.role_grants r WHERE r.level = grant_level.level ORDER BY kind, name LOOP
        IF g.kind = 'function' THEN
            FOR f IN
                SELECT p.oid::regprocedure FROM pg_proc p
                WHERE p.pronamespace = 'order_ext'::regnamespace AND p.proname = g.name
            LOOP
                EXECUTE format('GRANT %s ON FUNCTION %s TO %I', g.privileges, f, role);
            END LOOP;
        ELSE
            EXECUTE format('GRANT %s ON %s order_ext.%I TO %I', g.privileges,
                           CASE g.kind WHEN 'sequence' THEN 'SEQUENCE' ELSE 'TABLE' END, g.name, role);
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION order_ext.grant_level(name, text) IS
'Internal: grant what order_ext.role_grants lists for one level (app or admin) to a role. Use grant_app or grant_admin.';

CREATE OR REPLACE FUNCTION order_ext.grant_app(role name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM order_ext.grant_level(role, 'app');
END $$;
COMMENT ON FUNCTION order_ext.grant_app(name) IS
'Let a role use order_ext as an application: call the order, payment, refund and event functions and read the order tables. It cannot write the tables directly, change stock or machines, or archive.';

CREATE OR REPLACE FUNCTION order_ext.grant_admin(role name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM order_ext.grant_level(role, 'app');
    PERFORM order_ext.grant_level(role, 'admin');
END $$;
COMMENT ON FUNCTION order_ext.grant_admin(name) IS
'Let a role administer order_ext: everything grant_app gives, plus stock, machines, timeouts, archiving and partition maintenance.';

REVOKE EXECUTE ON FUNCTION order_ext.grant_level(name, text), order_ext.grant_app(name),
    order_ext.grant_admin(name) FROM PUBLIC;
