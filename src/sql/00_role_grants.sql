-- order_ext install script, part 1 of src/sql/*.sql.  The Makefile joins the
-- parts in file-name order into order_ext--<version>.sql; each module keeps
-- its SQL in its own part and lists what grant_app / grant_admin hand out in
-- order_ext.role_grants next to its objects.
\echo Use "CREATE EXTENSION order_ext" to load this file. \quit

--------------------------------------------------------------------------
-- What grant_app and grant_admin hand out: one row per object, written by
-- the part that creates the object (read by src/sql/90_privileges.sql).
--------------------------------------------------------------------------

CREATE TABLE order_ext.role_grants (
    level      text NOT NULL CHECK (level IN ('app', 'admin')),
    kind       text NOT NULL CHECK (kind IN ('function', 'table', 'sequence')),
    name       text NOT NULL,       -- function name (every overload), or table/sequence name
    privileges text NOT NULL,       -- e.g. 'EXECUTE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'
    PRIMARY KEY (level, kind, name)
);
COMMENT ON TABLE order_ext.role_grants IS
'What order_ext.grant_app (level app) and order_ext.grant_admin (levels app and admin) grant: functions by name (every overload), tables and sequences of schema order_ext.';
