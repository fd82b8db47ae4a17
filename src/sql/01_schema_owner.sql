--------------------------------------------------------------------------
-- Refuse a schema order_ext that someone else made beforehand: its owner
-- could later drop, hide or pre-create objects of order_ext.  (CREATE
-- EXTENSION installs into an existing schema named in the control file.)
--------------------------------------------------------------------------

DO $$
DECLARE
    owner regrole := (SELECT n.nspowner::regrole FROM pg_catalog.pg_namespace n WHERE n.nspname = 'order_ext');
BEGIN
    IF owner IS DISTINCT FROM current_user::regrole THEN
        RAISE EXCEPTION 'schema order_ext is owned by %, not by %, who creates the extension', owner, current_user
            USING ERRCODE = '42501',
                  HINT = 'Drop the schema (or make the installing role its owner) and run CREATE EXTENSION order_ext again.';
    END IF;
END $$;
