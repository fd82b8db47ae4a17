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
    LANGUAGE sql STABLE
    AS $$ SELECT e.* FROM order_ext.order_events e WHERE e.order_id = $1 ORDER BY e.version $$;
COMMENT ON FUNCTION order_ext.timeline(bigint) IS
'The order''s events in order: creation first, one row per version.';

CREATE FUNCTION order_ext.status_label(machine text, status text, role text) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result text;
BEGIN
    IF machine IS NULL OR status IS NULL OR role IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN machine IS NULL THEN 'machine'
                                                   WHEN status IS NULL THEN 'status' ELSE 'role' END
            USING ERRCODE = '22004';
    END IF;
    IF role NOT IN ('buyer', 'merchant', 'system', 'platform') THEN
        RAISE EXCEPTION 'role must be one of buyer, merchant, system, platform'
            USING ERRCODE = '22023', DETAIL = format('Got %L.', role);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM order_ext.machines m WHERE m.machine = status_label.machine) THEN
        RAISE EXCEPTION 'machine "%" does not exist', machine USING ERRCODE = '22023';
    END IF;
    SELECT l.label INTO result FROM order_ext.status_labels l
     WHERE l.machine = status_label.machine AND l.status = status_label.status
       AND l.role = status_label.role;
    RETURN coalesce(result, status);
END $$;
COMMENT ON FUNCTION order_ext.status_label(text, text, text) IS
'What a role (buyer, merchant, system, platform) sees for a status of a machine; the status itself where no label is defined.';


-- order_ext.validate_machine() and order_ext.machine_dot(): 51_machine_tools.sql

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'fire', 'EXECUTE'),
    ('app', 'function', 'timeline', 'EXECUTE'),
    ('app', 'function', 'status_label', 'EXECUTE'),
    ('app', 'function', 'validate_machine', 'EXECUTE'),
    ('app', 'function', 'machine_dot', 'EXECUTE'),
    ('admin', 'function', 'run_timers', 'EXECUTE');

