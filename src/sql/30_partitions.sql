--------------------------------------------------------------------------
-- Partitions
--------------------------------------------------------------------------

CREATE FUNCTION order_ext.create_partitions(from_time timestamptz, to_time timestamptz)
    RETURNS integer
    AS 'MODULE_PATHNAME', 'create_partitions' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.create_partitions(timestamptz, timestamptz) IS
'Create the monthly partitions (UTC months) of every order table for the months from from_time''s to to_time''s, inclusive; returns how many months were new. Use it before importing historical orders.';

CREATE FUNCTION order_ext.maintain() RETURNS integer
    AS 'MODULE_PATHNAME', 'maintain' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.maintain() IS
'Keep the current month and the next three partitioned ahead (by today''s date); returns how many months were new. Run by the background worker, or schedule it with pg_cron.';

INSERT INTO order_ext.role_grants VALUES
    ('admin', 'function', 'create_partitions', 'EXECUTE'),
    ('admin', 'function', 'maintain', 'EXECUTE');

