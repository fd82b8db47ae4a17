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

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'new_order_id', 'EXECUTE'),
    ('app', 'function', 'order_id_time', 'EXECUTE'),
    ('app', 'function', 'min_order_id', 'EXECUTE');
