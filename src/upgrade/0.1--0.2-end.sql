
--------------------------------------------------------------------------
-- (last part of the upgrade from 0.1) Roles that 0.1's grant_app or
-- grant_admin let in get what 0.2's give, objects new in 0.2 included, so
-- that an upgrade needs no grant_app or grant_admin call again: app roles
-- are those that may call create_order, admin roles those that may insert
-- into machines (what only those two functions granted), in the order the
-- roles were made.
--------------------------------------------------------------------------
DO $$
DECLARE
    r name;
BEGIN
    FOR r IN
        SELECT g.rolname FROM pg_catalog.pg_roles g
        WHERE g.oid IN (SELECT a.grantee FROM pg_catalog.pg_proc p, aclexplode(p.proacl) a
                        WHERE p.pronamespace = 'order_ext'::regnamespace AND p.proname = 'create_order'
                          AND a.privilege_type = 'EXECUTE' AND a.grantee NOT IN (0, p.proowner))
        ORDER BY g.oid
    LOOP
        PERFORM order_ext.grant_level(r, 'app');
    END LOOP;
    FOR r IN
        SELECT g.rolname FROM pg_catalog.pg_roles g
        WHERE g.oid IN (SELECT a.grantee FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
                        WHERE c.oid = 'order_ext.machines'::regclass
                          AND a.privilege_type = 'INSERT' AND a.grantee NOT IN (0, c.relowner))
        ORDER BY g.oid
    LOOP
        PERFORM order_ext.grant_level(r, 'admin');
    END LOOP;
END $$;
