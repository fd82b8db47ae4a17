-- order_ext install script (copied to order_ext--<version>.sql at build time)
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
    machine         text PRIMARY KEY
                    CHECK (machine ~ '^[a-z][a-z0-9_]{0,62}$'),
    initial_status  text NOT NULL CHECK (initial_status <> ''),
    description     text
);
COMMENT ON TABLE order_ext.machines IS
'One row per order state machine; order_ext.create_order(..., machine) starts orders in initial_status.';

INSERT INTO order_ext.machines (machine, initial_status, description) VALUES
    ('physical',   'pending_payment', 'B2C physical goods: pay, ship, confirm receipt, complete'),
    ('virtual',    'pending_payment', 'Virtual goods: pay, deliver, complete'),
    ('after_sale', 'requested',       'After-sales requests: approve or reject, return, refund');

CREATE FUNCTION order_ext.config_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'config_changed' LANGUAGE C;
COMMENT ON FUNCTION order_ext.config_changed() IS
'Trigger: a machine table changed; every backend drops its cached machine definitions at commit.';

CREATE TRIGGER machines_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON order_ext.machines FOR EACH STATEMENT EXECUTE FUNCTION order_ext.config_changed();

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
                   ' order_ext.order_discounts, order_ext.order_events, order_ext.machines TO %I', role);
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'order_ext'::regnamespace
          AND p.proname = ANY (ARRAY['new_order_id', 'order_id_time', 'min_order_id', 'create_order'])
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
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON order_ext.machines TO %I', role);
    EXECUTE format('GRANT SELECT ON order_ext.outbox TO %I', role);
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'order_ext'::regnamespace
          AND p.proname = ANY (ARRAY['create_partitions', 'maintain'])
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
