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

INSERT INTO order_ext.role_grants VALUES
    ('app', 'table', 'orders', 'SELECT'),
    ('app', 'table', 'order_items', 'SELECT'),
    ('app', 'table', 'order_payments', 'SELECT'),
    ('app', 'table', 'order_discounts', 'SELECT'),
    ('app', 'table', 'order_events', 'SELECT'),
    ('admin', 'table', 'timers', 'SELECT'),
    ('admin', 'table', 'outbox', 'SELECT');

