--------------------------------------------------------------------------
-- The state machine
--------------------------------------------------------------------------

CREATE FUNCTION order_ext.fire(
    order_id         bigint,
    event            text,
    expected_version integer DEFAULT NULL,
    actor            text    DEFAULT 'system',
    payload          jsonb   DEFAULT '{}')
    RETURNS order_ext.orders
    AS 'MODULE_PATHNAME', 'fire' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.fire(bigint, text, integer, text, jsonb) IS
'Apply the transition (status, event) of the order''s machine: checks expected_version (OE002) first, then the transition and actor (OE001); bumps version by one, stamps the milestone, appends to order_events and the outbox, runs the effects and schedules timers, all in the caller''s transaction.';

CREATE FUNCTION order_ext.run_timers(max integer DEFAULT 1000) RETURNS integer
    AS 'MODULE_PATHNAME', 'run_timers' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.run_timers(integer) IS
'Fire up to max due timers through the state machine (guards apply; a timer whose order has moved on is dropped); returns how many fired. Concurrent runners never fire a timer twice.';

CREATE FUNCTION order_ext.timeline(order_id bigint) RETURNS SETOF order_ext.order_events
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT e.* FROM order_ext.order_events e WHERE e.order_id = $1 ORDER BY e.version $$;
COMMENT ON FUNCTION order_ext.timeline(bigint) IS
'The order''s events in order: creation first, one row per version.';

-- order_ext.status_label(), order_ext.validate_machine() and
-- order_ext.machine_dot(): 51_machine_tools.sql

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'fire', 'EXECUTE'),
    ('app', 'function', 'timeline', 'EXECUTE'),
    ('app', 'function', 'status_label', 'EXECUTE'),
    ('app', 'function', 'validate_machine', 'EXECUTE'),
    ('app', 'function', 'machine_dot', 'EXECUTE'),
    ('admin', 'function', 'run_timers', 'EXECUTE');

