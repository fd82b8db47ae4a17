-- order_ext install script, part 1 of src/sql/*.sql.  The Makefile joins the
-- parts in file-name order into order_ext--<version>.sql; each module keeps
-- its SQL in its own part and lists what grant_app / grant_admin hand out in
-- order_ext.role_grants next to its objects.
\echo Use "CREATE EXTENSION order_ext" to load this file. \quit

--------------------------------------------------------------------------
-- Ids
--------------------------------------------------------------------------

CREATE FUNCTION order_ext.new_order_id() RETURNS bigint
    AS 'MODULE_PATHNAME', 'new_order_id' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION order_ext.new_order_id() IS
'A new order id: unique, positive, strictly increasing within this server and ordered by creation time (ms since 2020-01-01 UTC, node id order_ext.node_id, per-ms sequence). Never repeats, also across restarts and clock steps. Needs order_ext in shared_preload_libraries.';

CREATE FUNCTION order_ext.order_id_time(order_id bigint) RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'order_id_time' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION order_ext.order_id_time(bigint) IS
'The creation time encoded in an order id (millisecond precision).';

CREATE FUNCTION order_ext.min_order_id(t timestamptz) RETURNS bigint
    AS 'MODULE_PATHNAME', 'min_order_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION order_ext.min_order_id(timestamptz) IS
'The smallest order id that could be issued at time t: WHERE order_id >= order_ext.min_order_id(now() - interval ''1 day'') is a primary-key range scan.';

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

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'new_order_id', 'EXECUTE'),
    ('app', 'function', 'order_id_time', 'EXECUTE'),
    ('app', 'function', 'min_order_id', 'EXECUTE');
