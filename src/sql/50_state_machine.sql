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
    IF role IS NULL OR role NOT IN ('buyer', 'merchant', 'system', 'platform') THEN
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

CREATE FUNCTION order_ext.validate_machine(name text) RETURNS SETOF text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m order_ext.machines;
BEGIN
    SELECT * INTO m FROM order_ext.machines WHERE machine = name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'machine "%" does not exist', name USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH RECURSIVE t AS (
        SELECT * FROM order_ext.transitions WHERE machine = name
    ), reach(status) AS (
        SELECT m.initial_status
        UNION
        SELECT t.to_status FROM t JOIN reach r ON t.from_status = r.status
    ), statuses AS (
        SELECT m.initial_status AS status
        UNION SELECT from_status FROM t
        UNION SELECT to_status FROM t
        UNION SELECT unnest(m.terminal_statuses)
    ), problems(ord, problem) AS (
        SELECT 1, format('status %s is unreachable from the initial status %s', s.status, m.initial_status)
          FROM statuses s
         WHERE s.status NOT IN (SELECT status FROM reach)
        UNION ALL
        SELECT 2, format('status %s is not terminal but has no way out', s.status)
          FROM statuses s
         WHERE s.status <> ALL (m.terminal_statuses)
           AND NOT EXISTS (SELECT 1 FROM t WHERE t.from_status = s.status AND t.to_status <> s.status)
        UNION ALL
        SELECT 3, format('terminal status %s has transitions out (%s)', s.status,
                         string_agg(t.event, ', ' ORDER BY t.event))
          FROM statuses s JOIN t ON t.from_status = s.status
         WHERE s.status = ANY (m.terminal_statuses)
         GROUP BY s.status
        UNION ALL
        SELECT 4, format('transition (%s, %s) is defined %s times', from_status, event, count(*))
          FROM t GROUP BY from_status, event HAVING count(*) > 1
        UNION ALL
        SELECT 5, format('timeout on status %s fires %s, which no transition from %s allows for actor system',
                         o.status, o.event, o.status)
          FROM order_ext.timeouts o
         WHERE o.machine = name
           AND NOT EXISTS (SELECT 1 FROM t WHERE t.from_status = o.status AND t.event = o.event
                                              AND 'system' = ANY (t.actors))
        UNION ALL
        SELECT 6, format('transition (%s, %s) names an unknown actor (%s)', from_status, event,
                         array_to_string(actors, ', '))
          FROM t WHERE NOT actors <@ ARRAY['buyer', 'merchant', 'system', 'platform', 'internal']
    )
    SELECT p.problem FROM problems p ORDER BY p.ord, p.problem;
END $$;
COMMENT ON FUNCTION order_ext.validate_machine(text) IS
'Problems of a machine, one a row (no rows: valid): unreachable statuses, non-terminal statuses with no way out, terminal statuses with a way out, duplicate (from, event) pairs, timeouts no transition serves, unknown actors.';

-- order_ext.machine_dot(): 51_machine_dot.sql

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'fire', 'EXECUTE'),
    ('app', 'function', 'timeline', 'EXECUTE'),
    ('app', 'function', 'status_label', 'EXECUTE'),
    ('app', 'function', 'validate_machine', 'EXECUTE'),
    ('app', 'function', 'machine_dot', 'EXECUTE'),
    ('admin', 'function', 'run_timers', 'EXECUTE');

