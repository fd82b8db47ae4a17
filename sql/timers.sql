--
-- timers: order_ext.timeouts, the timers create_order() and fire() schedule,
-- and run_timers()  (API.md "Moving orders through their state machine")
--
-- Ids and timestamps are never printed: orders are known by a tag (pg_temp.o),
-- times only as differences.
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';

-- err(sql): 'ok', or 'SQLSTATE: message' (ids masked)
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{13,}', '<id>', 'g');
END $$;

CREATE TEMP TABLE o (tag text PRIMARY KEY, id bigint NOT NULL UNIQUE);

-- mk(tag, machine, attrs): a free one-line order (payable 0, so 'pay' may be
-- fired directly; orders with money to pay are paid by record_payment)
CREATE FUNCTION pg_temp.mk(tag text, machine text DEFAULT 'physical', attrs jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := order_ext.new_order_id();
BEGIN
    PERFORM order_ext.create_order(new_id, 42, '[{"sku":"TM-1","qty":1,"unit_price":0}]',
                                   machine => machine, attrs => attrs);
    INSERT INTO pg_temp.o VALUES (tag, new_id);
    RETURN new_id;
END $$;

CREATE FUNCTION pg_temp.id(tag text) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT id FROM pg_temp.o WHERE o.tag = $1 $$;

-- state(tag): status, version, events, timers of an order
CREATE FUNCTION pg_temp.state(tag text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT format('%s v%s events=%s timers=%s', r.status, r.version,
                  (SELECT count(*) FROM order_ext.order_events e WHERE e.order_id = r.order_id),
                  (SELECT count(*) FROM order_ext.timers t WHERE t.order_id = r.order_id))
    FROM order_ext.orders r WHERE r.order_id = pg_temp.id($1)
$$;

-- timers(tag): the order's timers, due time relative to now() (exact in
-- the transaction that set them), and whether they are due
CREATE FUNCTION pg_temp.timers(tag text)
RETURNS TABLE (subject text, status text, version int, event text, due_in interval, due boolean)
LANGUAGE sql VOLATILE AS $$
    SELECT t.subject, t.status, t.version, t.event, t.due_at - now(), t.due_at <= now()
    FROM order_ext.timers t WHERE t.order_id = pg_temp.id($1)
    ORDER BY t.version, t.event
$$;

--------------------------------------------------------------------------
-- The default timeouts, and the timers they set
--------------------------------------------------------------------------

SELECT machine, status, after, event FROM order_ext.timeouts ORDER BY machine, status, event;

-- create_order: pending_payment, expire in 30 minutes (now() is the
-- transaction's time, so the difference is exact)
BEGIN;
SELECT pg_temp.mk('late') IS NOT NULL AS created;
SELECT * FROM pg_temp.timers('late');
SELECT pg_temp.mk('late_v', 'virtual') IS NOT NULL AS created;
SELECT * FROM pg_temp.timers('late_v');
COMMIT;
SELECT (SELECT t.due_at - r.created_at FROM order_ext.timers t WHERE t.order_id = r.order_id) AS due_after_creation
FROM order_ext.orders r WHERE r.order_id = pg_temp.id('late');

-- shipped: confirm_receipt in 10 days; received: complete in 7 days;
-- paid has no timeout, and a status left takes its timers with it
BEGIN;
SELECT pg_temp.mk('late_ship') IS NOT NULL AS created;
SELECT status FROM order_ext.fire(pg_temp.id('late_ship'), 'pay');
SELECT * FROM pg_temp.timers('late_ship');
SELECT status FROM order_ext.fire(pg_temp.id('late_ship'), 'ship', actor => 'merchant');
SELECT * FROM pg_temp.timers('late_ship');
SELECT status FROM order_ext.fire(pg_temp.id('late_ship'), 'confirm_receipt', actor => 'buyer');
SELECT * FROM pg_temp.timers('late_ship');
COMMIT;

-- nothing is due yet
SELECT order_ext.run_timers() AS fired;
SELECT tag, pg_temp.state(tag) FROM o ORDER BY tag;

-- max: 0 fires nothing, negative is an error
SELECT order_ext.run_timers(0) AS fired;
SELECT pg_temp.err('SELECT order_ext.run_timers(-1)') AS negative;
SELECT pg_temp.err('SELECT order_ext.run_timers(-2147483648)') AS most_negative;

--------------------------------------------------------------------------
-- Timeouts of 0: the rule applies to orders entering a status afterwards
--------------------------------------------------------------------------

UPDATE order_ext.timeouts SET after = '0';

-- expire: pending_payment -> cancelled by the system; an order paid in
-- time is not expired (its timer went when it was paid)
SELECT pg_temp.mk('expire') IS NOT NULL AS created;
SELECT pg_temp.mk('paid_in_time') IS NOT NULL AS created;
SELECT status, version FROM order_ext.fire(pg_temp.id('paid_in_time'), 'pay');
SELECT tag, t.status, t.version, t.event, t.due FROM o, LATERAL pg_temp.timers(tag) t
WHERE tag IN ('expire', 'paid_in_time') ORDER BY tag;
SELECT order_ext.run_timers() AS fired;
SELECT tag, pg_temp.state(tag) FROM o WHERE tag IN ('expire', 'paid_in_time') ORDER BY tag;
SELECT version, event, from_status, to_status, actor
FROM order_ext.timeline(pg_temp.id('expire')) WHERE version > 1;
-- the orders created before the change still wait 30 minutes
SELECT tag, pg_temp.state(tag), t.due, t.due_in BETWEEN interval '25 minutes' AND interval '30 minutes' AS due_in_30_min
FROM o, LATERAL pg_temp.timers(tag) t WHERE tag IN ('late', 'late_v') ORDER BY tag;
-- and again: nothing left to fire
SELECT order_ext.run_timers() AS fired;

-- shipped -> received (confirm_receipt by the system), then, on the next
-- run, received -> completed
SELECT pg_temp.mk('ship') IS NOT NULL AS created;
SELECT status FROM order_ext.fire(pg_temp.id('ship'), 'pay');
SELECT status FROM order_ext.fire(pg_temp.id('ship'), 'ship', actor => 'merchant');
SELECT order_ext.run_timers() AS fired;
SELECT pg_temp.state('ship'), (SELECT received_at IS NOT NULL FROM order_ext.orders WHERE order_id = pg_temp.id('ship')) AS received_at_set;
SELECT status, version, event, due FROM pg_temp.timers('ship');
SELECT order_ext.run_timers() AS fired;
SELECT pg_temp.state('ship'), (SELECT completed_at IS NOT NULL FROM order_ext.orders WHERE order_id = pg_temp.id('ship')) AS completed_at_set;
SELECT version, event, from_status, to_status, actor
FROM order_ext.timeline(pg_temp.id('ship')) WHERE version > 1;
SELECT order_ext.run_timers() AS fired;

-- virtual: expire too
SELECT pg_temp.mk('expire_v', 'virtual') IS NOT NULL AS created;
SELECT order_ext.run_timers() AS fired;
SELECT pg_temp.state('expire_v');

-- modify keeps the status: the order is still where its timer found it
-- (status_version unchanged), so the timer fires
SELECT pg_temp.mk('modified') IS NOT NULL AS created;
SELECT status, version FROM order_ext.fire(pg_temp.id('modified'), 'modify', 1, 'buyer', '{"attrs": {"note": "x"}}');
SELECT status, version FROM order_ext.fire(pg_temp.id('modified'), 'modify', 2, 'merchant', '{"attrs": {"note": "y"}}');
SELECT status, version, event, due FROM pg_temp.timers('modified');
SELECT order_ext.run_timers() AS fired;
SELECT pg_temp.state('modified');
SELECT version, event, from_status, to_status, actor
FROM order_ext.timeline(pg_temp.id('modified')) WHERE version > 1;

-- a direct UPDATE (version + 1, status unchanged) does not stop the timer
SELECT pg_temp.mk('updated') IS NOT NULL AS created;
UPDATE order_ext.orders SET attrs = '{"note": "z"}' WHERE order_id = pg_temp.id('updated') RETURNING status, version;
SELECT order_ext.run_timers() AS fired;
SELECT pg_temp.state('updated');

-- max limits the number of timers handled; the rest wait for the next run
SELECT pg_temp.mk('max_' || i) IS NOT NULL AS created FROM generate_series(1, 3) i;
SELECT order_ext.run_timers(2) AS fired;
SELECT count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE r.status = 'pending_payment') AS pending
FROM o JOIN order_ext.orders r ON r.order_id = o.id WHERE o.tag LIKE 'max\_%';
SELECT count(*) AS timers_left FROM order_ext.timers t JOIN o ON o.id = t.order_id WHERE o.tag LIKE 'max\_%';
SELECT order_ext.run_timers(2) AS fired;
SELECT count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled
FROM o JOIN order_ext.orders r ON r.order_id = o.id WHERE o.tag LIKE 'max\_%';
SELECT order_ext.run_timers() AS fired;

-- a new timeouts row applies to orders entering its status from now on;
-- a deleted one no longer sets timers
INSERT INTO order_ext.timeouts (machine, status, after, event) VALUES ('physical', 'paid', '2 hours', 'close');
BEGIN;
SELECT pg_temp.mk('paid_2h') IS NOT NULL AS created;
SELECT status FROM order_ext.fire(pg_temp.id('paid_2h'), 'pay');
SELECT * FROM pg_temp.timers('paid_2h');
COMMIT;
DELETE FROM order_ext.timeouts WHERE machine = 'physical' AND status = 'paid';
BEGIN;
SELECT pg_temp.mk('paid_none') IS NOT NULL AS created;
SELECT status FROM order_ext.fire(pg_temp.id('paid_none'), 'pay');
SELECT * FROM pg_temp.timers('paid_none');
COMMIT;
SELECT order_ext.run_timers() AS fired;
SELECT tag, pg_temp.state(tag) FROM o WHERE tag IN ('paid_2h', 'paid_none') ORDER BY tag;

--------------------------------------------------------------------------
-- A user-defined machine: an order that leaves a status and comes back
-- gets a new timer; the old one went when it left.  Guards apply to timers.
--------------------------------------------------------------------------

INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses)
VALUES ('loop', 'waiting', '{done,timed_out}');
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects, requires) VALUES
    ('loop', 'waiting', 'hold',    'held',      '{buyer}',  '{}', NULL),
    ('loop', 'held',    'resume',  'waiting',   '{buyer}',  '{}', NULL),
    ('loop', 'waiting', 'finish',  'done',      '{buyer}',  '{}', NULL),
    ('loop', 'waiting', 'timeout', 'timed_out', '{system}', '{}', NULL),
    ('loop', 'held',    'nudge',   'held',      '{system}', '{}', '{"nudge": true}'),
    ('loop', 'held',    'giveup',  'done',      '{buyer}',  '{}', NULL);
INSERT INTO order_ext.timeouts (machine, status, after, event) VALUES
    ('loop', 'waiting', '0', 'timeout'),
    ('loop', 'held',    '0', 'nudge'),
    ('loop', 'held',    '0', 'giveup');

-- waiting (v1) -> held (v2) -> waiting (v3): the v1 timer went at v2, the
-- held ones at v3; the v3 one fires, once
SELECT pg_temp.mk('loop', 'loop') IS NOT NULL AS created;
SELECT status, version FROM order_ext.fire(pg_temp.id('loop'), 'hold', 1, 'buyer');
SELECT status, version FROM order_ext.fire(pg_temp.id('loop'), 'resume', 2, 'buyer');
SELECT status, version, event FROM pg_temp.timers('loop');
SELECT order_ext.run_timers() AS fired;
SELECT pg_temp.state('loop');
SELECT version, event, from_status, to_status, actor
FROM order_ext.timeline(pg_temp.id('loop')) WHERE version > 1;

-- a stale timer left by an earlier version (timers of a status left used to
-- stay until due): dropped when due, not fired, not counted
SELECT pg_temp.mk('stale', 'loop') IS NOT NULL AS created;
SELECT status, version FROM order_ext.fire(pg_temp.id('stale'), 'hold', 1, 'buyer');
SELECT status, version FROM order_ext.fire(pg_temp.id('stale'), 'resume', 2, 'buyer');
DELETE FROM order_ext.timers WHERE order_id = pg_temp.id('stale');
INSERT INTO order_ext.timers (order_id, subject, subject_id, status, version, event, due_at)
VALUES (pg_temp.id('stale'), 'order', pg_temp.id('stale'), 'waiting', 1, 'timeout', now());
SELECT order_ext.run_timers() AS fired;
SELECT pg_temp.state('stale');

-- a timer whose transition is refused (requires not met; actor system not
-- allowed) does not fire and leaves the order as it was
SELECT pg_temp.mk('guarded', 'loop') IS NOT NULL AS created;
SELECT status, version FROM order_ext.fire(pg_temp.id('guarded'), 'hold', 1, 'buyer');
SELECT status, version, event FROM pg_temp.timers('guarded');
-- (each refused timer is dropped with a WARNING naming the order: hidden)
SET client_min_messages = error;
SELECT order_ext.run_timers() AS fired;
RESET client_min_messages;
SELECT pg_temp.state('guarded');
-- with the guard met, the next timer of that status fires
UPDATE order_ext.orders SET attrs = '{"nudge": true}' WHERE order_id = pg_temp.id('guarded') RETURNING status, version;
SELECT status, version FROM order_ext.fire(pg_temp.id('guarded'), 'resume', 3, 'buyer');
SELECT status, version FROM order_ext.fire(pg_temp.id('guarded'), 'hold', 4, 'buyer');
SET client_min_messages = error;
SELECT order_ext.run_timers() AS fired;
RESET client_min_messages;
SELECT pg_temp.state('guarded');
-- (version 3 is the direct UPDATE of attrs, by the session's user)
SELECT version, CASE WHEN actor = current_user THEN '(update)' ELSE event END AS event,
       from_status, to_status, CASE WHEN actor = current_user THEN '(current_user)' ELSE actor END AS actor
FROM order_ext.timeline(pg_temp.id('guarded')) WHERE version > 1;
-- nudge kept the status (held -> held): no new timer, nothing more fires
SELECT order_ext.run_timers() AS fired;

--------------------------------------------------------------------------
-- Every fired timer went through fire(): one event and one outbox row each
--------------------------------------------------------------------------

SELECT count(*) AS timer_events,
       count(*) FILTER (WHERE e.actor = 'system') AS by_system,
       count(*) FILTER (WHERE x.order_id IS NOT NULL) AS with_outbox
FROM order_ext.order_events e
LEFT JOIN order_ext.outbox x USING (order_id, version)
WHERE e.event IN ('expire', 'confirm_receipt', 'complete', 'timeout', 'nudge') AND e.actor = 'system';
SELECT count(*) AS orders,
       count(*) FILTER (WHERE r.version = (SELECT count(*) FROM order_ext.order_events e WHERE e.order_id = r.order_id)) AS events_per_version
FROM o JOIN order_ext.orders r ON r.order_id = o.id;

--------------------------------------------------------------------------
-- The due-timer query uses timers_due_idx, also with many timers
--------------------------------------------------------------------------

INSERT INTO order_ext.timers (order_id, subject, subject_id, status, version, event, due_at)
SELECT g, 'order', g, 'pending_payment', 1, 'expire', now() + interval '1 day' + g * interval '1 second'
FROM generate_series(1, 10000) g;
ANALYZE order_ext.timers;
EXPLAIN (COSTS OFF) SELECT ctid FROM order_ext.timers WHERE due_at <= now() ORDER BY due_at LIMIT 10;
EXPLAIN (COSTS OFF) SELECT ctid FROM order_ext.timers WHERE due_at <= now() ORDER BY due_at LIMIT 1000;
-- none of them is due
SELECT order_ext.run_timers() AS fired;
SELECT count(*) AS not_due_kept FROM order_ext.timers WHERE order_id BETWEEN 1 AND 10000;
DELETE FROM order_ext.timers WHERE order_id BETWEEN 1 AND 10000;

-- the first two orders still wait for their 30 minutes
SELECT tag, pg_temp.state(tag) FROM o WHERE tag IN ('late', 'late_v') ORDER BY tag;

--------------------------------------------------------------------------
-- Due times are reckoned in UTC, whatever the TimeZone of the session that
-- moved the order (six months from any day cross a daylight-saving change
-- in New York or in Sydney, or in both, which then differ from UTC), and
-- are never in the past ('-12 mons +360 days' passes the CHECK, a month
-- counting as 30 days, but is 5 or 6 days back)
--------------------------------------------------------------------------

INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses)
VALUES ('tz_wait', 'waiting', '{lapsed}');
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects, requires) VALUES
    ('tz_wait', 'waiting', 'lapse', 'lapsed', '{system}', '{}', NULL),
    ('tz_wait', 'waiting', 'back', 'lapsed', '{system}', '{}', NULL);
INSERT INTO order_ext.timeouts (machine, status, after, event) VALUES
    ('tz_wait', 'waiting', '6 mons', 'lapse'),
    ('tz_wait', 'waiting', '-12 mons +360 days', 'back');
BEGIN;
SET LOCAL TimeZone = 'America/New_York';
SELECT pg_temp.mk('tz_ny', 'tz_wait') IS NOT NULL AS created;
SET LOCAL TimeZone = 'Australia/Sydney';
SELECT pg_temp.mk('tz_syd', 'tz_wait') IS NOT NULL AS created;
SET LOCAL TimeZone = 'UTC';
SELECT pg_temp.mk('tz_utc', 'tz_wait') IS NOT NULL AS created;
SELECT t.event, count(DISTINCT t.due_at) AS due_times,
       bool_and(t.due_at = CASE t.event WHEN 'lapse' THEN (now() AT TIME ZONE 'UTC' + interval '6 mons') AT TIME ZONE 'UTC'
                                       ELSE now() END) AS as_reckoned_in_utc
FROM order_ext.timers t JOIN o ON o.id = t.order_id
WHERE o.tag IN ('tz_ny', 'tz_syd', 'tz_utc') GROUP BY t.event ORDER BY t.event;
COMMIT;

DROP EXTENSION order_ext CASCADE;
