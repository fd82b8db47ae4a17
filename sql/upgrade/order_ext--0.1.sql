-- order_ext 0.1 install script (frozen: the released 0.1; upgraded by order_ext--0.1--0.2.sql)
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
-- State machines (definitions are data; machine.c caches them per backend)
--------------------------------------------------------------------------

CREATE TABLE order_ext.machines (
    machine           text PRIMARY KEY
                      CHECK (machine ~ '^[a-z][a-z0-9_]{0,62}$'),
    initial_status    text NOT NULL CHECK (initial_status ~ '^[a-z][a-z0-9_]{0,62}$'),
    terminal_statuses text[] NOT NULL DEFAULT '{}',
    description       text
);
COMMENT ON TABLE order_ext.machines IS
'One row per order state machine: orders start in initial_status; terminal_statuses end an order''s life (archivable, no timers).';

-- (machine, from_status, event) -> to_status.  Deliberately no unique key on
-- (machine, from_status, event): a broken machine may be inserted, and
-- order_ext.validate_machine() says what is wrong with it.
CREATE TABLE order_ext.transitions (
    id          serial PRIMARY KEY,
    machine     text   NOT NULL REFERENCES order_ext.machines ON UPDATE CASCADE ON DELETE CASCADE,
    from_status text   NOT NULL CHECK (from_status ~ '^[a-z][a-z0-9_]{0,62}$'),
    event       text   NOT NULL CHECK (event ~ '^[a-z][a-z0-9_]{0,62}$'),
    to_status   text   NOT NULL CHECK (to_status ~ '^[a-z][a-z0-9_]{0,62}$'),
    actors      text[] NOT NULL DEFAULT '{system}' CHECK (cardinality(actors) > 0),
    effects     text[] NOT NULL DEFAULT '{}'
                CHECK (effects <@ ARRAY['stamp:paid_at', 'stamp:shipped_at', 'stamp:received_at',
                                        'stamp:completed_at', 'stamp:closed_at', 'merge_attrs']),
    requires    jsonb  CHECK (requires IS NULL OR jsonb_typeof(requires) = 'object')
);
CREATE INDEX transitions_lookup_idx ON order_ext.transitions (machine, from_status, event);
COMMENT ON TABLE order_ext.transitions IS
'The state machines: from_status --event--> to_status, who may fire it (actors: buyer, merchant, system, platform; internal: only order_ext''s own functions, e.g. split), what it does (effects), and an optional guard (requires: the subject''s attributes must contain this JSON object).';
COMMENT ON COLUMN order_ext.transitions.effects IS
'stamp:<milestone column> sets that column to now(); merge_attrs merges payload.attrs into the order''s attrs.';

CREATE TABLE order_ext.status_labels (
    machine text NOT NULL REFERENCES order_ext.machines ON UPDATE CASCADE ON DELETE CASCADE,
    status  text NOT NULL,
    role    text NOT NULL CHECK (role IN ('buyer', 'merchant', 'system', 'platform')),
    label   text NOT NULL,
    PRIMARY KEY (machine, status, role)
);
COMMENT ON TABLE order_ext.status_labels IS
'What each role sees for a status (the seed''s per-role status views).';

CREATE TABLE order_ext.timeouts (
    machine text     NOT NULL REFERENCES order_ext.machines ON UPDATE CASCADE ON DELETE CASCADE,
    status  text     NOT NULL,
    after   interval NOT NULL CHECK (after >= interval '0'),
    event   text     NOT NULL,
    PRIMARY KEY (machine, status, event)
);
COMMENT ON TABLE order_ext.timeouts IS
'When an order enters status, a timer due "after" later fires event (through the state machine). Changing a row changes the rule for orders entering the status afterwards.';

INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses, description) VALUES
    ('physical',   'pending_payment', '{completed,cancelled,closed,split}',
     'B2C physical goods: pay, ship, confirm receipt, complete'),
    ('virtual',    'pending_payment', '{completed,cancelled,closed,split}',
     'Virtual goods: pay, deliver, complete'),
    ('after_sale', 'requested',       '{refunded}',
     'After-sales requests: approve or reject, appeal, return, refund');

INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects, requires) VALUES
    ('physical', 'pending_payment', 'pay',             'paid',            '{system}',                '{stamp:paid_at}',      NULL),
    ('physical', 'pending_payment', 'cancel',          'cancelled',       '{buyer,merchant,system}', '{stamp:closed_at}',    NULL),
    ('physical', 'pending_payment', 'expire',          'cancelled',       '{system}',                '{stamp:closed_at}',    NULL),
    ('physical', 'pending_payment', 'modify',          'pending_payment', '{buyer,merchant}',        '{merge_attrs}',        NULL),
    ('physical', 'paid',            'modify',          'paid',            '{buyer,merchant}',        '{merge_attrs}',        NULL),
    ('physical', 'paid',            'ship',            'shipped',         '{merchant}',              '{stamp:shipped_at}',   NULL),
    ('physical', 'shipped',         'confirm_receipt', 'received',        '{buyer,system}',          '{stamp:received_at}',  NULL),
    ('physical', 'received',        'complete',        'completed',       '{system}',                '{stamp:completed_at}', NULL),
    ('physical', 'paid',            'close',           'closed',          '{system}',                '{stamp:closed_at}',    NULL),
    ('physical', 'shipped',         'close',           'closed',          '{system}',                '{stamp:closed_at}',    NULL),
    ('physical', 'received',        'close',           'closed',          '{system}',                '{stamp:closed_at}',    NULL),
    ('physical', 'pending_payment', 'split',           'split',           '{internal}',              '{}',                   NULL),
    ('physical', 'paid',            'split',           'split',           '{internal}',              '{}',                   NULL),

    ('virtual',  'pending_payment', 'pay',             'paid',            '{system}',                '{stamp:paid_at}',      NULL),
    ('virtual',  'pending_payment', 'cancel',          'cancelled',       '{buyer,merchant,system}', '{stamp:closed_at}',    NULL),
    ('virtual',  'pending_payment', 'expire',          'cancelled',       '{system}',                '{stamp:closed_at}',    NULL),
    ('virtual',  'pending_payment', 'modify',          'pending_payment', '{buyer,merchant}',        '{merge_attrs}',        NULL),
    ('virtual',  'paid',            'modify',          'paid',            '{buyer,merchant}',        '{merge_attrs}',        NULL),
    ('virtual',  'paid',            'deliver',         'delivered',       '{merchant,system}',       '{stamp:shipped_at}',   NULL),
    ('virtual',  'delivered',       'complete',        'completed',       '{system}',                '{stamp:completed_at}', NULL),
    ('virtual',  'paid',            'close',           'closed',          '{system}',                '{stamp:closed_at}',    NULL),
    ('virtual',  'delivered',       'close',           'closed',          '{system}',                '{stamp:closed_at}',    NULL),
    ('virtual',  'pending_payment', 'split',           'split',           '{internal}',              '{}',                   NULL),
    ('virtual',  'paid',            'split',           'split',           '{internal}',              '{}',                   NULL),

    ('after_sale', 'requested',   'approve',        'approved',    '{merchant,system}', '{}', NULL),
    ('after_sale', 'requested',   'reject',         'rejected',    '{merchant}',        '{}', NULL),
    ('after_sale', 'rejected',    'appeal',         'arbitration', '{buyer}',           '{}', NULL),
    ('after_sale', 'arbitration', 'approve',        'approved',    '{platform}',        '{}', NULL),
    ('after_sale', 'arbitration', 'reject',         'rejected',    '{platform}',        '{}', NULL),
    ('after_sale', 'approved',    'receive_return', 'returned',    '{merchant}',        '{}', '{"kind": "return_refund"}'),
    ('after_sale', 'approved',    'refund',         'refunded',    '{merchant,system}', '{}', '{"kind": "refund_only"}'),
    ('after_sale', 'returned',    'refund',         'refunded',    '{merchant,system}', '{}', NULL);

INSERT INTO order_ext.timeouts (machine, status, after, event) VALUES
    ('physical',   'pending_payment', '30 minutes', 'expire'),
    ('physical',   'shipped',         '10 days',    'confirm_receipt'),
    ('physical',   'received',        '7 days',     'complete'),
    ('virtual',    'pending_payment', '30 minutes', 'expire'),
    ('after_sale', 'requested',       '5 days',     'approve');

INSERT INTO order_ext.status_labels (machine, status, role, label)
SELECT m, s, r, l FROM (VALUES
    ('pending_payment', 'buyer', 'Awaiting your payment'),   ('pending_payment', 'merchant', 'Awaiting buyer payment'),
    ('paid',            'buyer', 'Paid, awaiting shipment'), ('paid',            'merchant', 'To ship'),
    ('shipped',         'buyer', 'On its way'),              ('shipped',         'merchant', 'Shipped'),
    ('delivered',       'buyer', 'Delivered'),               ('delivered',       'merchant', 'Delivered'),
    ('received',        'buyer', 'Received'),                ('received',        'merchant', 'Received by buyer'),
    ('completed',       'buyer', 'Completed'),               ('completed',       'merchant', 'Completed'),
    ('cancelled',       'buyer', 'Cancelled'),               ('cancelled',       'merchant', 'Cancelled'),
    ('closed',          'buyer', 'Closed (refunded)'),       ('closed',          'merchant', 'Closed (refunded)'),
    ('split',           'buyer', 'Split into several orders'), ('split',         'merchant', 'Split')
) AS v(s, r, l)
CROSS JOIN (VALUES ('physical'), ('virtual')) AS mm(m)
WHERE NOT (m = 'virtual' AND s IN ('shipped', 'received'))
  AND NOT (m = 'physical' AND s = 'delivered');

INSERT INTO order_ext.status_labels (machine, status, role, label) VALUES
    ('after_sale', 'requested',   'buyer', 'Waiting for the merchant'), ('after_sale', 'requested',   'merchant', 'To review'),
    ('after_sale', 'approved',    'buyer', 'Approved'),                 ('after_sale', 'approved',    'merchant', 'Approved'),
    ('after_sale', 'rejected',    'buyer', 'Rejected'),                 ('after_sale', 'rejected',    'merchant', 'Rejected'),
    ('after_sale', 'arbitration', 'buyer', 'Under platform review'),    ('after_sale', 'arbitration', 'merchant', 'Under platform review'),
    ('after_sale', 'returned',    'buyer', 'Return received'),          ('after_sale', 'returned',    'merchant', 'Return received'),
    ('after_sale', 'refunded',    'buyer', 'Refunded'),                 ('after_sale', 'refunded',    'merchant', 'Refunded');

CREATE FUNCTION order_ext.config_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'config_changed' LANGUAGE C;
COMMENT ON FUNCTION order_ext.config_changed() IS
'Trigger: a machine table changed; every backend drops its cached machine definitions at commit.';

CREATE TRIGGER machines_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON order_ext.machines FOR EACH STATEMENT EXECUTE FUNCTION order_ext.config_changed();
CREATE TRIGGER transitions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON order_ext.transitions FOR EACH STATEMENT EXECUTE FUNCTION order_ext.config_changed();
CREATE TRIGGER timeouts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON order_ext.timeouts FOR EACH STATEMENT EXECUTE FUNCTION order_ext.config_changed();

--------------------------------------------------------------------------
-- Order tables: partitioned by order_id range, one partition per month of
-- id time (partitions.c makes them).  No foreign keys between them: they
-- would make detaching a month for archiving check every referencing row,
-- and every write path goes through functions that keep them consistent.
--------------------------------------------------------------------------

CREATE TABLE order_ext.orders (
    order_id        bigint      NOT NULL CHECK (order_id > 0),
    parent_id       bigint,
    machine         text        NOT NULL,
    status          text        NOT NULL,
    version         integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    status_version  integer     NOT NULL DEFAULT 1,
    buyer_id        bigint      NOT NULL,
    currency        text        NOT NULL,
    item_total      bigint      NOT NULL CHECK (item_total >= 0),
    discount_total  bigint      NOT NULL DEFAULT 0 CHECK (discount_total >= 0 AND discount_total <= item_total),
    shipping_fee    bigint      NOT NULL DEFAULT 0 CHECK (shipping_fee >= 0),
    payable_total   bigint      NOT NULL CHECK (payable_total >= 0),
    paid_total      bigint      NOT NULL DEFAULT 0 CHECK (paid_total >= 0),
    refunded_total  bigint      NOT NULL DEFAULT 0 CHECK (refunded_total >= 0 AND refunded_total <= paid_total),
    attrs           jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attrs) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    paid_at         timestamptz,
    shipped_at      timestamptz,
    received_at     timestamptz,
    completed_at    timestamptz,
    closed_at       timestamptz,
    request_hash    uuid,
    PRIMARY KEY (order_id)
) PARTITION BY RANGE (order_id);
CREATE INDEX orders_buyer_idx ON order_ext.orders (buyer_id);
COMMENT ON TABLE order_ext.orders IS
'Orders, partitioned by order_id (one partition per month of id time). Every UPDATE bumps version by one; status changes only through order_ext.fire().';
COMMENT ON COLUMN order_ext.orders.status_version IS
'The version at which the order entered its current status (timers scheduled then are still due).';
COMMENT ON COLUMN order_ext.orders.request_hash IS
'Fingerprint of the create_order request: the same order_id with another request is refused (OE004).';

CREATE TABLE order_ext.order_items (
    order_id        bigint  NOT NULL,
    line_no         integer NOT NULL CHECK (line_no > 0),
    sku             text    NOT NULL,
    qty             integer NOT NULL CHECK (qty > 0),
    unit_price      bigint  NOT NULL CHECK (unit_price >= 0),
    discount_alloc  bigint  NOT NULL DEFAULT 0 CHECK (discount_alloc >= 0),
    refunded_qty    integer NOT NULL DEFAULT 0 CHECK (refunded_qty >= 0 AND refunded_qty <= qty),
    refunded_amount bigint  NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    merchant_id     bigint,
    warehouse_id    bigint,
    PRIMARY KEY (order_id, line_no)
) PARTITION BY RANGE (order_id);
COMMENT ON TABLE order_ext.order_items IS
'Order lines; discount_alloc is the line''s share of all discounts (they add up to orders.discount_total exactly).';

CREATE TABLE order_ext.order_payments (
    order_id    bigint      NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('payment', 'refund')),
    txn_id      text        NOT NULL CHECK (txn_id <> ''),
    method      text        NOT NULL DEFAULT 'default',
    amount      bigint      NOT NULL CHECK (amount > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, kind, txn_id)
) PARTITION BY RANGE (order_id);
COMMENT ON TABLE order_ext.order_payments IS
'Payments and refunds, one row per gateway serial (txn_id) or refund id.';

CREATE TABLE order_ext.order_discounts (
    order_id    bigint  NOT NULL,
    seq         integer NOT NULL CHECK (seq > 0),
    kind        text    NOT NULL,
    code        text,
    amount      bigint  NOT NULL CHECK (amount >= 0),
    line_no     integer CHECK (line_no > 0),
    PRIMARY KEY (order_id, seq)
) PARTITION BY RANGE (order_id);
COMMENT ON TABLE order_ext.order_discounts IS
'Discounts of an order as requested; line_no NULL means order-level (allocated to lines by largest remainder).';

CREATE TABLE order_ext.order_events (
    order_id     bigint      NOT NULL,
    version      integer     NOT NULL CHECK (version > 0),
    event        text        NOT NULL,
    from_status  text,
    to_status    text        NOT NULL,
    actor        text        NOT NULL,
    payload      jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, version)
) PARTITION BY RANGE (order_id);
COMMENT ON TABLE order_ext.order_events IS
'The timeline: one row per change of an order, keyed by the version it produced.';

-- The outbox: one row per order event (and per refund_due notice), written
-- in the same transaction.  Keyed by order_id first so it distributes with
-- the order; readers may rely on (order_id, version), not on id order.
CREATE SEQUENCE order_ext.outbox_id_seq;
CREATE TABLE order_ext.outbox (
    id          bigint      NOT NULL DEFAULT nextval('order_ext.outbox_id_seq'),
    order_id    bigint      NOT NULL,
    version     integer,
    event       text        NOT NULL,
    payload     jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, id)
);
ALTER SEQUENCE order_ext.outbox_id_seq OWNED BY order_ext.outbox.id;
CREATE INDEX outbox_id_idx ON order_ext.outbox (id);
COMMENT ON TABLE order_ext.outbox IS
'Events out: one row per order event, written in the same transaction as the change.';

-- Timers: one row per scheduled timeout.  A timer is stale, and dropped
-- when it comes due, if its subject has left the status it was set for
-- (status or status_version differ).
CREATE TABLE order_ext.timers (
    order_id    bigint      NOT NULL,
    subject     text        NOT NULL DEFAULT 'order' CHECK (subject IN ('order', 'after_sale')),
    subject_id  bigint      NOT NULL,
    status      text        NOT NULL,
    version     integer     NOT NULL,
    event       text        NOT NULL,
    due_at      timestamptz NOT NULL,
    PRIMARY KEY (order_id, subject, subject_id, version, event)
);
CREATE INDEX timers_due_idx ON order_ext.timers (due_at);
COMMENT ON TABLE order_ext.timers IS
'Scheduled timeouts (per order_ext.timeouts), fired by order_ext.run_timers().';

CREATE FUNCTION order_ext.orders_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'orders_guard' LANGUAGE C;
COMMENT ON FUNCTION order_ext.orders_guard() IS
'Trigger: every UPDATE of an order bumps version by exactly one and sets updated_at; order_id, machine, buyer_id and created_at never change; status changes only through order_ext.fire().';

CREATE TRIGGER orders_guard BEFORE UPDATE ON order_ext.orders
    FOR EACH ROW EXECUTE FUNCTION order_ext.orders_guard();

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

--------------------------------------------------------------------------
-- Creating orders
--------------------------------------------------------------------------

CREATE FUNCTION order_ext.create_order(
    order_id     bigint,
    buyer_id     bigint,
    items        jsonb,
    machine      text   DEFAULT 'physical',
    discounts    jsonb  DEFAULT '[]',
    shipping_fee bigint DEFAULT 0,
    attrs        jsonb  DEFAULT '{}',
    currency     text   DEFAULT 'CNY')
    RETURNS order_ext.orders
    AS 'MODULE_PATHNAME', 'create_order' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.create_order(bigint, bigint, jsonb, text, jsonb, bigint, jsonb, text) IS
'Create an order idempotently. items: [{"sku","qty","unit_price"[,"merchant_id"][,"warehouse_id"]}]; discounts: [{"kind","code","amount"[,"line"]}]. The same order_id with the same request returns the existing order and changes nothing; with another request: OE004.';

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

CREATE FUNCTION order_ext.machine_dot(name text) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    SET intervalstyle = 'postgres_verbose' AS $$
DECLARE
    m order_ext.machines;
    dot text;
BEGIN
    SELECT * INTO m FROM order_ext.machines WHERE machine = name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'machine "%" does not exist', name USING ERRCODE = '22023';
    END IF;
    SELECT format(E'digraph %s {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname="Helvetica"];\n  edge [fontname="Helvetica", fontsize=10];\n  __start [shape=point];\n  __start -> %s;\n',
                  quote_ident(name), quote_ident(m.initial_status))
        || coalesce((SELECT string_agg(format(E'  %s [shape=box, style="rounded,bold,filled", fillcolor="#eeeeee"];\n', quote_ident(s)), '' ORDER BY s)
                       FROM unnest(m.terminal_statuses) s), '')
        || coalesce((SELECT string_agg(
                       format(E'  %s -> %s [label="%s\\n(%s)%s"];\n', quote_ident(t.from_status), quote_ident(t.to_status),
                              t.event, array_to_string(t.actors, ', '),
                              coalesce((SELECT E'\\n' || string_agg(ltrim(o.after::text, '@ '), ', ')
                                          FROM order_ext.timeouts o
                                         WHERE o.machine = name AND o.status = t.from_status AND o.event = t.event), '')),
                       '' ORDER BY t.id)
                       FROM order_ext.transitions t WHERE t.machine = name), '')
        || E'}\n'
      INTO dot;
    RETURN dot;
END $$;
COMMENT ON FUNCTION order_ext.machine_dot(text) IS
'The machine as Graphviz text (terminal statuses shaded; edges labelled with event, actors and timeout): psql -Atc "SELECT order_ext.machine_dot(''physical'')" | dot -Tsvg > physical.svg';

--------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; grant_app / grant_admin hand out roles.
--------------------------------------------------------------------------

REVOKE ALL ON SCHEMA order_ext FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA order_ext FROM PUBLIC;

CREATE FUNCTION order_ext.grant_app(role name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f regprocedure;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = '22004';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA order_ext TO %I', role);
    EXECUTE format('GRANT SELECT ON order_ext.orders, order_ext.order_items, order_ext.order_payments,'
                   ' order_ext.order_discounts, order_ext.order_events, order_ext.machines,'
                   ' order_ext.transitions, order_ext.status_labels, order_ext.timeouts TO %I', role);
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'order_ext'::regnamespace
          AND p.proname = ANY (ARRAY['new_order_id', 'order_id_time', 'min_order_id', 'create_order',
                                     'fire', 'timeline', 'status_label', 'validate_machine', 'machine_dot'])
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, role);
    END LOOP;
END $$;
COMMENT ON FUNCTION order_ext.grant_app(name) IS
'Let a role use order_ext as an application: call the order, payment, refund and event functions and read the order tables. It cannot write the tables directly, change stock or machines, or archive.';

CREATE FUNCTION order_ext.grant_admin(role name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f regprocedure;
BEGIN
    PERFORM order_ext.grant_app(role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON order_ext.machines, order_ext.transitions,'
                   ' order_ext.status_labels, order_ext.timeouts TO %I', role);
    EXECUTE format('GRANT USAGE ON SEQUENCE order_ext.transitions_id_seq TO %I', role);
    EXECUTE format('GRANT SELECT ON order_ext.timers TO %I', role);
    EXECUTE format('GRANT SELECT ON order_ext.outbox TO %I', role);
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'order_ext'::regnamespace
          AND p.proname = ANY (ARRAY['create_partitions', 'maintain', 'run_timers'])
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, role);
    END LOOP;
END $$;
COMMENT ON FUNCTION order_ext.grant_admin(name) IS
'Let a role administer order_ext: everything grant_app gives, plus stock, machines, timeouts, archiving and partition maintenance.';

REVOKE EXECUTE ON FUNCTION order_ext.grant_app(name), order_ext.grant_admin(name) FROM PUBLIC;

--------------------------------------------------------------------------
-- The current month and the next three, ready now.
--------------------------------------------------------------------------

SELECT order_ext.maintain();
