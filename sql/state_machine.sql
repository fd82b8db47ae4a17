--
-- state_machine: fire(), timeline(), status_label(), the version rule and
-- user-defined machines  (API.md "Moving orders through their state machine")
--
-- Ids and timestamps are never printed: orders are known by a tag (pg_temp.o),
-- and error messages have ids masked as <id>.
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- err(sql): 'ok', or 'SQLSTATE: message' (ids masked, hint appended)
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    h text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{13,}', '<id>', 'g')
        || CASE WHEN coalesce(h, '') <> '' THEN ' HINT: ' || h ELSE '' END;
END $$;

-- the orders of this test, by tag
CREATE TEMP TABLE o (tag text PRIMARY KEY, id bigint NOT NULL UNIQUE);

-- mk(tag, machine, attrs): a new one-line order (SKU without stock row); free
-- (payable 0), so that 'pay' may be fired directly: with money to pay it
-- only comes from record_payment (sql/money.sql)
CREATE FUNCTION pg_temp.mk(tag text, machine text DEFAULT 'physical', attrs jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := order_ext.new_order_id();
BEGIN
    PERFORM order_ext.create_order(new_id, 42, '[{"sku":"SM-1","qty":1,"unit_price":0}]',
                                   machine => machine, attrs => attrs);
    INSERT INTO pg_temp.o VALUES (tag, new_id);
    RETURN new_id;
END $$;

CREATE FUNCTION pg_temp.id(tag text) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT id FROM pg_temp.o WHERE o.tag = $1 $$;

-- state(tag): what must not change after an error
-- (volatile: it sees what the statement's earlier calls did)
CREATE FUNCTION pg_temp.state(tag text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT format('%s v%s events=%s outbox=%s attrs=%s', r.status, r.version,
                  (SELECT count(*) FROM order_ext.order_events e WHERE e.order_id = r.order_id),
                  (SELECT count(*) FROM order_ext.outbox x WHERE x.order_id = r.order_id),
                  r.attrs)
    FROM order_ext.orders r WHERE r.order_id = pg_temp.id($1)
$$;

-- milestones(tag): which milestone columns are set
CREATE FUNCTION pg_temp.milestones(r order_ext.orders) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT concat_ws(',',
        CASE WHEN r.paid_at      IS NOT NULL THEN 'paid_at' END,
        CASE WHEN r.shipped_at   IS NOT NULL THEN 'shipped_at' END,
        CASE WHEN r.received_at  IS NOT NULL THEN 'received_at' END,
        CASE WHEN r.completed_at IS NOT NULL THEN 'completed_at' END,
        CASE WHEN r.closed_at    IS NOT NULL THEN 'closed_at' END)
$$;

-- reach(tag, status): a new physical order brought to a status by the forward
-- and reverse flows of API.md
CREATE FUNCTION pg_temp.reach(tag text, status text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    i bigint := pg_temp.mk(tag);
    step text[];
    path text[] := CASE status
        WHEN 'pending_payment' THEN '{}'
        WHEN 'paid'      THEN '{{pay,system}}'
        WHEN 'shipped'   THEN '{{pay,system},{ship,merchant}}'
        WHEN 'received'  THEN '{{pay,system},{ship,merchant},{confirm_receipt,buyer}}'
        WHEN 'completed' THEN '{{pay,system},{ship,merchant},{confirm_receipt,buyer},{complete,system}}'
        WHEN 'cancelled' THEN '{{cancel,buyer}}'
        WHEN 'closed'    THEN '{{pay,system},{close,system}}'
    END;
BEGIN
    IF path IS NULL THEN
        RAISE EXCEPTION 'no path to %', status;
    END IF;
    IF cardinality(path) > 0 THEN
        FOREACH step SLICE 1 IN ARRAY path LOOP
            PERFORM order_ext.fire(i, step[1], actor => step[2]);
        END LOOP;
    END IF;
    IF (SELECT r.status FROM order_ext.orders r WHERE r.order_id = i) <> status THEN
        RAISE EXCEPTION 'order % did not reach %', tag, status;
    END IF;
    RETURN i;
END $$;

-- try_fire(id, event, actor, payload): '-> new status' if fire() succeeds
-- (then rolled back), else the SQLSTATE
CREATE FUNCTION pg_temp.try_fire(i bigint, ev text, who text, payload jsonb DEFAULT '{"attrs": {}}')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r order_ext.orders;
BEGIN
    BEGIN
        r := order_ext.fire(i, ev, NULL, who, payload);
        RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = r.status;
    EXCEPTION WHEN SQLSTATE 'ZZ999' THEN
        RETURN '-> ' || SQLERRM;
    END;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;

--------------------------------------------------------------------------
-- 'physical' forward: create -> pay -> ship -> confirm_receipt -> complete
--------------------------------------------------------------------------

SELECT pg_temp.mk('walk_p') IS NOT NULL AS created;
SELECT machine, status, version, pg_temp.milestones(r) AS milestones
FROM order_ext.orders r WHERE order_id = pg_temp.id('walk_p');
-- each fire returns the new row: version + 1, the milestone stamped now()
SELECT status, version, pg_temp.milestones(r) AS milestones, paid_at = now() AS stamped_now
FROM order_ext.fire(pg_temp.id('walk_p'), 'pay') r;
CREATE TEMP TABLE walk_p_paid AS SELECT paid_at FROM order_ext.orders WHERE order_id = pg_temp.id('walk_p');
SELECT status, version, pg_temp.milestones(r) AS milestones, shipped_at = now() AS stamped_now
FROM order_ext.fire(pg_temp.id('walk_p'), 'ship', 2, 'merchant') r;
SELECT status, version, pg_temp.milestones(r) AS milestones, received_at = now() AS stamped_now
FROM order_ext.fire(pg_temp.id('walk_p'), 'confirm_receipt', 3, 'buyer') r;
SELECT status, version, pg_temp.milestones(r) AS milestones, completed_at = now() AS stamped_now
FROM order_ext.fire(pg_temp.id('walk_p'), 'complete', 4, 'system') r;
-- the stored row is the returned one; earlier stamps kept
SELECT status, version, pg_temp.milestones(r) AS milestones,
       paid_at = (SELECT paid_at FROM walk_p_paid) AS paid_at_kept,
       paid_at <= shipped_at AND shipped_at <= received_at AND received_at <= completed_at AS stamps_in_order,
       updated_at >= created_at AS updated_at_moved
FROM order_ext.orders r WHERE order_id = pg_temp.id('walk_p');
-- timeline: create, then one row per fire
SELECT version, event, from_status, to_status, actor, payload
FROM order_ext.timeline(pg_temp.id('walk_p'));
-- one outbox row per event, the same (version, event)
SELECT x.version, x.event
FROM order_ext.outbox x WHERE x.order_id = pg_temp.id('walk_p') ORDER BY x.version;

--------------------------------------------------------------------------
-- 'virtual' forward: create -> pay -> deliver -> complete
--------------------------------------------------------------------------

SELECT pg_temp.mk('walk_v', 'virtual') IS NOT NULL AS created;
SELECT machine, status, version, pg_temp.milestones(r) AS milestones
FROM order_ext.orders r WHERE order_id = pg_temp.id('walk_v');
SELECT status, version, pg_temp.milestones(r) AS milestones
FROM order_ext.fire(pg_temp.id('walk_v'), 'pay', 1) r;
-- physical events do not exist on 'virtual'; deliver is not for the buyer
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'ship', actor => 'merchant')$$, pg_temp.id('walk_v'))) AS ship,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'deliver', actor => 'buyer')$$, pg_temp.id('walk_v'))) AS deliver_by_buyer,
       pg_temp.state('walk_v') AS after;
SELECT status, version, pg_temp.milestones(r) AS milestones
FROM order_ext.fire(pg_temp.id('walk_v'), 'deliver', 2, 'merchant') r;
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'confirm_receipt', actor => 'buyer')$$, pg_temp.id('walk_v'))) AS confirm_receipt,
       pg_temp.state('walk_v') AS after;
SELECT status, version, pg_temp.milestones(r) AS milestones
FROM order_ext.fire(pg_temp.id('walk_v'), 'complete', 3) r;
SELECT version, event, from_status, to_status, actor
FROM order_ext.timeline(pg_temp.id('walk_v'));
-- deliver by system works too
SELECT pg_temp.mk('walk_v2', 'virtual') IS NOT NULL AS created;
SELECT status, version FROM order_ext.fire(pg_temp.id('walk_v2'), 'pay');
SELECT status, version, pg_temp.milestones(r) AS milestones
FROM order_ext.fire(pg_temp.id('walk_v2'), 'deliver', actor => 'system') r;

--------------------------------------------------------------------------
-- Reverse flows
--------------------------------------------------------------------------

-- cancel from pending_payment by buyer, merchant or system
SELECT pg_temp.mk('cancel_' || a) IS NOT NULL AS created FROM unnest('{buyer,merchant,system}'::text[]) a;
SELECT a AS actor, r.status, r.version
FROM unnest('{buyer,merchant,system}'::text[]) a,
     LATERAL order_ext.fire(pg_temp.id('cancel_' || a), 'cancel', 1, a) r;
SELECT tag, e.event, e.from_status, e.to_status, e.actor
FROM o, LATERAL order_ext.timeline(o.id) e
WHERE tag LIKE 'cancel\_%' AND e.version = 2 ORDER BY tag;

-- expire: system only
SELECT pg_temp.mk('expire') IS NOT NULL AS created;
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'expire', actor => 'buyer')$$, pg_temp.id('expire'))) AS by_buyer,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'expire', actor => 'merchant')$$, pg_temp.id('expire'))) AS by_merchant,
       pg_temp.state('expire') AS after;
SELECT status, version FROM order_ext.fire(pg_temp.id('expire'), 'expire', 1, 'system');

-- close from paid, shipped, received: system only, stamps closed_at
SELECT pg_temp.reach('close_' || s, s) IS NOT NULL AS ready FROM unnest('{paid,shipped,received}'::text[]) s;
SELECT s AS from_status,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'close', actor => 'buyer')$$, pg_temp.id('close_' || s))) AS by_buyer,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'close', actor => 'merchant')$$, pg_temp.id('close_' || s))) AS by_merchant,
       pg_temp.state('close_' || s) AS after
FROM unnest('{paid,shipped,received}'::text[]) s;
SELECT s AS from_status, r.status, r.version, pg_temp.milestones(r) AS milestones
FROM unnest('{paid,shipped,received}'::text[]) s,
     LATERAL order_ext.fire(pg_temp.id('close_' || s), 'close', actor => 'system') r;

--------------------------------------------------------------------------
-- modify: merges payload.attrs, keeps status, bumps version
--------------------------------------------------------------------------

SELECT pg_temp.mk('modify', attrs => '{"gift": false, "note": "old"}') IS NOT NULL AS created;
SELECT status, version, attrs
FROM order_ext.fire(pg_temp.id('modify'), 'modify', 1, 'buyer', '{"attrs": {"note": "leave at door", "floor": 3}}');
SELECT status, version, attrs
FROM order_ext.fire(pg_temp.id('modify'), 'modify', 2, 'merchant', '{"attrs": {}}');
-- not for the system
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'modify', actor => 'system', payload => '{"attrs": {"x": 1}}')$$,
                          pg_temp.id('modify'))) AS by_system,
       pg_temp.state('modify') AS after;
-- payload.attrs missing or not an object: 22023
SELECT p AS payload,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'modify', actor => 'buyer', payload => %L)$$,
                          pg_temp.id('modify'), p)) AS result,
       pg_temp.state('modify') AS after
FROM unnest(ARRAY['{}', '{"note": "x"}', '{"attrs": [1]}', '{"attrs": "x"}', '{"attrs": null}', '{"attrs": 5}']) p;
-- in paid
SELECT status, version FROM order_ext.fire(pg_temp.id('modify'), 'pay', 3);
SELECT status, version, attrs, pg_temp.milestones(r) AS milestones
FROM order_ext.fire(pg_temp.id('modify'), 'modify', 4, 'merchant', '{"attrs": {"gift": true}}') r;
-- in shipped: OE001
SELECT status, version FROM order_ext.fire(pg_temp.id('modify'), 'ship', 5, 'merchant');
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'modify', actor => 'buyer', payload => '{"attrs": {"x": 1}}')$$,
                          pg_temp.id('modify'))) AS modify_shipped,
       pg_temp.state('modify') AS after;
SELECT version, event, from_status, to_status, actor, payload
FROM order_ext.timeline(pg_temp.id('modify'));

--------------------------------------------------------------------------
-- Every (status, event, actor) of 'physical': allowed exactly when API.md
-- lists it.  One order per status; each attempt is rolled back.
--------------------------------------------------------------------------

SELECT pg_temp.reach('x_' || s, s) IS NOT NULL AS ready
FROM unnest('{pending_payment,paid,shipped,received,completed,cancelled,closed}'::text[]) s;
CREATE TEMP TABLE x_before AS SELECT tag, pg_temp.state(tag) AS state FROM o WHERE tag LIKE 'x\_%';

-- API.md's table for 'physical'
CREATE TEMP TABLE api_physical (from_status text, event text, to_status text, actors text[]);
INSERT INTO api_physical VALUES
    ('pending_payment', 'pay',             'paid',            '{system}'),
    ('pending_payment', 'cancel',          'cancelled',       '{buyer,merchant,system}'),
    ('pending_payment', 'expire',          'cancelled',       '{system}'),
    ('pending_payment', 'modify',          'pending_payment', '{buyer,merchant}'),
    ('paid',            'modify',          'paid',            '{buyer,merchant}'),
    ('paid',            'ship',            'shipped',         '{merchant}'),
    ('shipped',         'confirm_receipt', 'received',        '{buyer,system}'),
    ('received',        'complete',        'completed',       '{system}'),
    ('paid',            'close',           'closed',          '{system}'),
    ('shipped',         'close',           'closed',          '{system}'),
    ('received',        'close',           'closed',          '{system}');

CREATE TEMP TABLE cross_product AS
SELECT s.status, e.event, a.actor,
       pg_temp.try_fire(pg_temp.id('x_' || s.status), e.event, a.actor) AS result
FROM unnest('{pending_payment,paid,shipped,received,completed,cancelled,closed}'::text[]) WITH ORDINALITY s(status, n),
     unnest('{pay,cancel,expire,modify,ship,confirm_receipt,complete,close,deliver,create,refund,no_such_event}'::text[]) e(event),
     unnest('{buyer,merchant,system,platform,hacker}'::text[]) a(actor);

-- how many attempts, and how they ended
SELECT count(*) AS attempts,
       count(*) FILTER (WHERE result LIKE '->%') AS allowed,
       count(*) FILTER (WHERE result = 'OE001') AS oe001,
       count(*) FILTER (WHERE result NOT LIKE '->%' AND result <> 'OE001') AS other
FROM cross_product;
-- the allowed ones, with the actors that may fire them
SELECT status, event, min(result) AS result, string_agg(actor, ',' ORDER BY actor) AS actors
FROM cross_product WHERE result LIKE '->%'
GROUP BY status, event ORDER BY min(result), status, event;
-- differences from API.md (none)
SELECT c.status, c.event, c.actor, c.result,
       coalesce('-> ' || a.to_status, 'OE001') AS api_says
FROM cross_product c
LEFT JOIN api_physical a ON a.from_status = c.status AND a.event = c.event AND c.actor = ANY (a.actors)
WHERE c.result IS DISTINCT FROM coalesce('-> ' || a.to_status, 'OE001')
ORDER BY 1, 2, 3;
-- nothing changed
SELECT count(*) AS changed FROM x_before b WHERE b.state IS DISTINCT FROM pg_temp.state(b.tag);
-- terminal statuses have no way out in any default machine
SELECT count(*) AS ways_out_of_terminal
FROM order_ext.transitions t JOIN order_ext.machines m USING (machine)
WHERE t.from_status = ANY (m.terminal_statuses);

-- 'split' belongs to split_order(): not for the buyer, the merchant or the
-- system; actor internal is reserved and refused from SQL (OE001, an actor
-- not allowed, after the version check: stale and internal is OE002)
SELECT s AS status, a AS actor, pg_temp.try_fire(pg_temp.id('x_' || s), 'split', a) AS result
FROM unnest('{pending_payment,paid}'::text[]) s, unnest('{buyer,merchant,system,internal}'::text[]) a
ORDER BY s, a;
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'split', actor => 'internal')$$, pg_temp.id('x_paid'))) AS internal_refused;
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'split', 99, 'internal')$$, pg_temp.id('x_paid'))) AS internal_stale;

--------------------------------------------------------------------------
-- Actor guards, stale versions, bad input
--------------------------------------------------------------------------

SELECT pg_temp.mk('guard') IS NOT NULL AS created;
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay', actor => 'buyer')$$, pg_temp.id('guard'))) AS pay_by_buyer,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'cancel', actor => 'hacker')$$, pg_temp.id('guard'))) AS cancel_by_hacker,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'cancel', actor => '')$$, pg_temp.id('guard'))) AS cancel_by_empty,
       pg_temp.state('guard') AS after;
SELECT status, version FROM order_ext.fire(pg_temp.id('guard'), 'pay', 1);
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'ship', actor => 'buyer')$$, pg_temp.id('guard'))) AS ship_by_buyer,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'ship', actor => 'system')$$, pg_temp.id('guard'))) AS ship_by_system,
       pg_temp.state('guard') AS after;

-- OE002: expected_version must be the current one (2)
SELECT v AS expected_version,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'ship', %s, 'merchant')$$, pg_temp.id('guard'), v)) AS result,
       pg_temp.state('guard') AS after
FROM unnest(ARRAY[1, 3, 0, -1, 2147483647]) v;
-- the version is checked first: stale and not allowed (complete from paid,
-- pay by buyer) is OE002
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'complete', 1)$$, pg_temp.id('guard'))) AS stale_and_illegal,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay', 7, 'buyer')$$, pg_temp.id('guard'))) AS stale_and_wrong_actor,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'no_such_event', 1, 'hacker')$$, pg_temp.id('guard'))) AS stale_and_unknown,
       pg_temp.state('guard') AS after;
-- the right version works, and a retry of the same request is then stale
SELECT status, version FROM order_ext.fire(pg_temp.id('guard'), 'ship', 2, 'merchant');
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'ship', 2, 'merchant')$$, pg_temp.id('guard'))) AS retried,
       pg_temp.state('guard') AS after;
-- terminal, stale: still OE002
SELECT status, version FROM order_ext.fire(pg_temp.id('guard'), 'confirm_receipt', 3, 'buyer');
SELECT status, version FROM order_ext.fire(pg_temp.id('guard'), 'complete', 4);
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay', 1)$$, pg_temp.id('guard'))) AS terminal_stale,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay', 5)$$, pg_temp.id('guard'))) AS terminal_current,
       pg_temp.state('guard') AS after;

-- OE008: no such order (an unused id of this month, and one of no partition)
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay')$$, order_ext.new_order_id())) AS unused_id,
       pg_temp.err($$SELECT order_ext.fire(1, 'pay')$$) AS id_1,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay', 1)$$, order_ext.new_order_id())) AS unused_with_version;

-- NULL order_id, event, actor: 22023
SELECT pg_temp.err($$SELECT order_ext.fire(NULL, 'pay')$$) AS null_order,
       pg_temp.err(format($$SELECT order_ext.fire(%s, NULL)$$, pg_temp.id('x_pending_payment'))) AS null_event,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'cancel', actor => NULL)$$, pg_temp.id('x_pending_payment'))) AS null_actor,
       pg_temp.state('x_pending_payment') AS after;
-- payload not a JSON object: 22023
SELECT p AS payload,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'cancel', actor => 'buyer', payload => %L)$$,
                          pg_temp.id('x_pending_payment'), p)) AS result,
       pg_temp.state('x_pending_payment') AS after
FROM unnest(ARRAY['[]', '"cancel"', '1', 'null', '[{"a": 1}]']) p;
-- the payload is kept in the timeline and the outbox
SELECT pg_temp.mk('payload') IS NOT NULL AS created;
SELECT status FROM order_ext.fire(pg_temp.id('payload'), 'cancel', 1, 'buyer', '{"reason": "changed my mind"}');
SELECT e.payload AS event_payload, x.payload AS outbox_payload
FROM order_ext.order_events e JOIN order_ext.outbox x USING (order_id, version)
WHERE e.order_id = pg_temp.id('payload') AND e.version = 2;

-- a failed fire() inside a transaction leaves the transaction usable and
-- nothing of its own behind; the whole transaction is all or nothing
SELECT pg_temp.mk('atomic') IS NOT NULL AS created;
BEGIN;
SELECT status, version FROM order_ext.fire(pg_temp.id('atomic'), 'pay', 1);
SELECT status, version FROM order_ext.fire(pg_temp.id('atomic'), 'ship', 2, 'merchant');
ROLLBACK;
SELECT pg_temp.state('atomic') AS after_rollback,
       (SELECT pg_temp.milestones(r) FROM order_ext.orders r WHERE order_id = pg_temp.id('atomic')) AS milestones;

--------------------------------------------------------------------------
-- Direct UPDATEs of order_ext.orders
--------------------------------------------------------------------------

SELECT pg_temp.mk('direct') IS NOT NULL AS created;
-- changing status: OE001, hint naming fire()
SELECT pg_temp.err(format($$UPDATE order_ext.orders SET status = 'paid' WHERE order_id = %s$$, pg_temp.id('direct'))) AS to_paid,
       pg_temp.state('direct') AS after;
SELECT pg_temp.err(format($$UPDATE order_ext.orders SET status = 'cancelled', closed_at = now(), version = version + 1 WHERE order_id = %s AND version = 1$$,
                          pg_temp.id('direct'))) AS to_cancelled,
       pg_temp.state('direct') AS after;
SELECT pg_temp.err(format($$UPDATE order_ext.orders SET status = 'no_such_status' WHERE order_id = %s$$, pg_temp.id('direct'))) AS to_unknown,
       pg_temp.state('direct') AS after;
-- status set to the status it has: allowed, version + 1
UPDATE order_ext.orders SET status = 'pending_payment' WHERE order_id = pg_temp.id('direct') RETURNING status, version;
UPDATE order_ext.orders SET status = status WHERE order_id = pg_temp.id('direct') RETURNING status, version;
-- any other column: version + 1 exactly, whatever SET version says
UPDATE order_ext.orders SET attrs = attrs || '{"note": "a"}', version = 100
WHERE order_id = pg_temp.id('direct') RETURNING status, version, attrs;
UPDATE order_ext.orders SET attrs = attrs || '{"note": "b"}', version = 1
WHERE order_id = pg_temp.id('direct') RETURNING status, version, attrs;
UPDATE order_ext.orders SET attrs = attrs || '{"note": "c"}'
WHERE order_id = pg_temp.id('direct') RETURNING status, version, attrs;
-- the seed article's optimistic update: matches version 6 once, then nothing
UPDATE order_ext.orders SET attrs = attrs || '{"note": "d"}', version = version + 1
WHERE order_id = pg_temp.id('direct') AND version = 6 RETURNING status, version, attrs;
UPDATE order_ext.orders SET attrs = attrs || '{"note": "e"}', version = version + 1
WHERE order_id = pg_temp.id('direct') AND version = 6 RETURNING status, version, attrs;
-- fire() goes on from the current version
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay', 6)$$, pg_temp.id('direct'))) AS pay_at_6,
       pg_temp.state('direct') AS after;
SELECT status, version FROM order_ext.fire(pg_temp.id('direct'), 'pay', 7);
SELECT pg_temp.err(format($$UPDATE order_ext.orders SET status = 'shipped' WHERE order_id = %s$$, pg_temp.id('direct'))) AS to_shipped,
       pg_temp.state('direct') AS after;
-- every direct UPDATE is in the timeline (and the outbox) as a change of
-- its version, by the session's user, status unchanged
SELECT version, from_status, to_status, actor = current_user AS by_current_user,
       event = 'pay' AS is_pay
FROM order_ext.timeline(pg_temp.id('direct')) WHERE version > 1;
-- a multi-row UPDATE that changes status anywhere fails as a whole
SELECT pg_temp.err(format($$UPDATE order_ext.orders SET status = 'cancelled' WHERE order_id IN (%s, %s)$$,
                          pg_temp.id('direct'), pg_temp.id('x_cancelled'))) AS multi_row,
       pg_temp.state('direct') AS direct_after, pg_temp.state('x_cancelled') AS other_after;

--------------------------------------------------------------------------
-- A user-defined machine, added with plain INSERTs, works at once
--------------------------------------------------------------------------

SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.new_order_id(), 42, '[{"sku":"SM-1","qty":1,"unit_price":0}]', machine => 'preorder')$$) AS before_insert;
INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses, description)
VALUES ('preorder', 'deposit_pending', '{completed,cancelled}', 'Pre-sale: deposit, then balance');
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects, requires) VALUES
    ('preorder', 'deposit_pending', 'pay_deposit',     'deposit_paid',    '{system}',       '{}',                   NULL),
    ('preorder', 'deposit_pending', 'cancel',          'cancelled',       '{buyer,system}', '{stamp:closed_at,stock:release}', NULL),
    ('preorder', 'deposit_paid',    'open_balance',    'balance_pending', '{system}',       '{}',                   NULL),
    ('preorder', 'deposit_paid',    'fast_track',      'paid',            '{merchant}',     '{stamp:paid_at}',      '{"vip": true}'),
    ('preorder', 'balance_pending', 'pay',             'paid',            '{system}',       '{stamp:paid_at}',      NULL),
    ('preorder', 'balance_pending', 'cancel',          'cancelled',       '{buyer,system}', '{stamp:closed_at,stock:release}', NULL),
    ('preorder', 'paid',            'ship',            'shipped',         '{merchant}',     '{stamp:shipped_at,stock:commit}', NULL),
    ('preorder', 'shipped',         'confirm_receipt', 'completed',       '{buyer,system}', '{stamp:received_at,stamp:completed_at}', NULL);
SELECT count(*) AS problems FROM order_ext.validate_machine('preorder');

SELECT pg_temp.mk('pre', 'preorder') IS NOT NULL AS created;
SELECT machine, status, version FROM order_ext.orders WHERE order_id = pg_temp.id('pre');
SELECT status, version FROM order_ext.fire(pg_temp.id('pre'), 'pay_deposit', 1);
-- the guarded shortcut needs attrs {"vip": true}
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'fast_track', actor => 'merchant')$$, pg_temp.id('pre'))) AS fast_track_not_vip,
       pg_temp.state('pre') AS after;
SELECT status, version FROM order_ext.fire(pg_temp.id('pre'), 'open_balance', 2);
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'ship', actor => 'merchant')$$, pg_temp.id('pre'))) AS ship_too_early,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay', actor => 'buyer')$$, pg_temp.id('pre'))) AS pay_by_buyer,
       pg_temp.state('pre') AS after;
SELECT status, version, pg_temp.milestones(r) AS milestones FROM order_ext.fire(pg_temp.id('pre'), 'pay', 3) r;
SELECT status, version, pg_temp.milestones(r) AS milestones FROM order_ext.fire(pg_temp.id('pre'), 'ship', 4, 'merchant') r;
SELECT status, version, pg_temp.milestones(r) AS milestones FROM order_ext.fire(pg_temp.id('pre'), 'confirm_receipt', 5, 'buyer') r;
SELECT version, event, from_status, to_status, actor FROM order_ext.timeline(pg_temp.id('pre'));

-- requires: checked against orders.attrs (containment)
SELECT pg_temp.mk('pre_vip', 'preorder', '{"vip": true, "level": 3}') IS NOT NULL AS created;
SELECT pg_temp.mk('pre_novip', 'preorder', '{"vip": false}') IS NOT NULL AS created;
SELECT pg_temp.mk('pre_vipstr', 'preorder', '{"vip": "true"}') IS NOT NULL AS created;
SELECT tag, r.status FROM o, LATERAL order_ext.fire(o.id, 'pay_deposit') r
WHERE tag IN ('pre_vip', 'pre_novip', 'pre_vipstr') ORDER BY tag;
SELECT tag, pg_temp.err(format($$SELECT order_ext.fire(%s, 'fast_track', 2, 'merchant')$$, id)) AS fast_track,
       pg_temp.state(tag) AS after
FROM o WHERE tag IN ('pre_vip', 'pre_novip', 'pre_vipstr') ORDER BY tag;
-- the guard does not replace the actor check
SELECT pg_temp.mk('pre_vip2', 'preorder', '{"vip": true}') IS NOT NULL AS created;
SELECT status FROM order_ext.fire(pg_temp.id('pre_vip2'), 'pay_deposit');
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'fast_track', actor => 'buyer')$$, pg_temp.id('pre_vip2'))) AS vip_by_buyer,
       pg_temp.state('pre_vip2') AS after;
-- a guard added later applies at once (the attrs become VIP by a direct UPDATE)
UPDATE order_ext.orders SET attrs = attrs || '{"vip": true}' WHERE order_id = pg_temp.id('pre_novip') RETURNING status, version;
SELECT status, version FROM order_ext.fire(pg_temp.id('pre_novip'), 'fast_track', 3, 'merchant');
UPDATE order_ext.transitions SET requires = '{"vip": true, "level": 3}'
WHERE machine = 'preorder' AND event = 'fast_track';
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'fast_track', actor => 'merchant')$$, pg_temp.id('pre_vip2'))) AS needs_level_now,
       pg_temp.state('pre_vip2') AS after;

--------------------------------------------------------------------------
-- The timeline replays to the current status, for every order of this test
-- (every change is an event: those of fire() and those of direct UPDATEs)
--------------------------------------------------------------------------

WITH ev AS (
    SELECT o.tag, e.version, e.event, e.from_status, e.to_status,
           lag(e.to_status) OVER w AS prev_to,
           row_number() OVER w AS n,
           count(*) OVER (PARTITION BY o.tag) AS cnt
    FROM o CROSS JOIN LATERAL order_ext.timeline(o.id) e
    WINDOW w AS (PARTITION BY o.tag ORDER BY e.version)
), per_order AS (
    SELECT o.tag,
           bool_and(CASE WHEN ev.n = 1
                         THEN ev.event = 'create' AND ev.from_status IS NULL AND ev.to_status = m.initial_status
                         ELSE ev.from_status = ev.prev_to END) AS chain_ok,
           bool_and(ev.version = ev.n) AS versions_dense,
           bool_and(ev.n < ev.cnt OR ev.to_status = r.status) AS ends_at_status,
           count(ev.*) = r.version AS count_is_version,
           count(ev.*) = (SELECT count(*) FROM order_ext.outbox x WHERE x.order_id = o.id) AS outbox_per_event
    FROM o
    JOIN order_ext.orders r ON r.order_id = o.id
    JOIN order_ext.machines m ON m.machine = r.machine
    LEFT JOIN ev ON ev.tag = o.tag
    GROUP BY o.tag, o.id, r.version, r.status
)
SELECT count(*) AS orders,
       count(*) FILTER (WHERE chain_ok) AS chain_ok,
       count(*) FILTER (WHERE versions_dense) AS versions_dense,
       count(*) FILTER (WHERE ends_at_status) AS ends_at_status,
       count(*) FILTER (WHERE count_is_version) AS count_is_version,
       count(*) FILTER (WHERE outbox_per_event) AS outbox_per_event,
       string_agg(tag, ',' ORDER BY tag) FILTER (WHERE NOT (chain_ok AND versions_dense AND ends_at_status
                                                             AND count_is_version AND outbox_per_event)) AS failing
FROM per_order;
-- the outbox carries exactly the events (order_id, version, event)
SELECT (SELECT count(*) FROM order_ext.order_events) AS events,
       (SELECT count(*) FROM order_ext.outbox) AS outbox,
       (SELECT count(*) FROM (SELECT order_id, version, event FROM order_ext.order_events
                              EXCEPT SELECT order_id, version, event FROM order_ext.outbox) d) AS events_not_in_outbox;

--------------------------------------------------------------------------
-- status_label(machine, status, role)
--------------------------------------------------------------------------

SELECT s, order_ext.status_label('physical', s, 'buyer') AS buyer,
       order_ext.status_label('physical', s, 'merchant') AS merchant,
       order_ext.status_label('physical', s, 'system') AS system
FROM unnest('{pending_payment,paid,shipped,received,completed,cancelled,closed,split}'::text[]) s;
SELECT s, order_ext.status_label('virtual', s, 'buyer') AS buyer,
       order_ext.status_label('virtual', s, 'merchant') AS merchant
FROM unnest('{pending_payment,paid,delivered,completed}'::text[]) s;
-- no label: the status itself; labels added with INSERT apply at once
SELECT order_ext.status_label('physical', 'no_such_status', 'buyer') AS unknown_status,
       order_ext.status_label('preorder', 'deposit_pending', 'buyer') AS unlabelled;
INSERT INTO order_ext.status_labels VALUES ('preorder', 'deposit_pending', 'buyer', 'Deposit due');
SELECT order_ext.status_label('preorder', 'deposit_pending', 'buyer') AS labelled,
       order_ext.status_label('preorder', 'deposit_pending', 'merchant') AS other_role;
-- bad role, unknown machine: 22023
SELECT pg_temp.err($$SELECT order_ext.status_label('physical', 'paid', 'hacker')$$) AS bad_role,
       pg_temp.err($$SELECT order_ext.status_label('physical', 'paid', NULL)$$) AS null_role,
       pg_temp.err($$SELECT order_ext.status_label('physical', 'paid', 'Buyer')$$) AS capital_role;
SELECT pg_temp.err($$SELECT order_ext.status_label('no_such_machine', 'paid', 'buyer')$$) AS unknown_machine,
       pg_temp.err($$SELECT order_ext.status_label(NULL, 'paid', 'buyer')$$) AS null_machine;

DROP FUNCTION pg_temp.milestones(order_ext.orders);
DROP EXTENSION order_ext CASCADE;
