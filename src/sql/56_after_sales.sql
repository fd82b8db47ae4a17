--------------------------------------------------------------------------
-- After-sales requests (aftersale.c), on machine 'after_sale'
--------------------------------------------------------------------------

-- Per order (keyed with order_id, so it distributes with the order); ids
-- come from new_order_id() and are indexed, so fire_after_sale(id) finds
-- the order with one probe.
CREATE TABLE order_ext.after_sales (
    id             bigint      NOT NULL,
    order_id       bigint      NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('refund_only', 'return_refund')),
    status         text        NOT NULL,
    version        integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    status_version integer     NOT NULL DEFAULT 1,
    lines          jsonb       NOT NULL CHECK (jsonb_typeof(lines) = 'array'),
    amount         bigint      NOT NULL CHECK (amount >= 0),
    reason         text,
    refund_id      text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, id)
);
CREATE INDEX after_sales_id_idx ON order_ext.after_sales (id);
-- user data, not part of the extension's definition: pg_dump keeps the rows
SELECT pg_catalog.pg_extension_config_dump('order_ext.after_sales', '');
COMMENT ON TABLE order_ext.after_sales IS
'After-sales requests: units of an order''s lines (lines [{"line_no","qty"}]) to refund, or to return and refund, moving through machine after_sale. amount: what the units would refund when opened; what was refunded once refunded (refund_id after_sale:<id>).';

CREATE FUNCTION order_ext.open_after_sale(
    order_id bigint,
    kind     text,
    lines    jsonb,
    reason   text DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'open_after_sale' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.open_after_sale(bigint, text, jsonb, text) IS
'Open an after-sales request (kind refund_only or return_refund) for units of a paid order''s lines [{"line_no":1,"qty":1}]; returns its id. It starts requested and is approved automatically after the after_sale timeout (5 days) unless the merchant acts.';

CREATE FUNCTION order_ext.fire_after_sale(
    id               bigint,
    event            text,
    expected_version integer DEFAULT NULL,
    actor            text    DEFAULT 'system')
    RETURNS order_ext.after_sales
    AS 'MODULE_PATHNAME', 'fire_after_sale' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.fire_after_sale(bigint, text, integer, text) IS
'Move an after-sales request through machine after_sale (expected_version: OE002; transition or actor not allowed: OE001). receive_return restocks the units; refund refunds them through refund() (refund_id after_sale:<id>).';

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'open_after_sale', 'EXECUTE'),
    ('app', 'function', 'fire_after_sale', 'EXECUTE'),
    ('app', 'table', 'after_sales', 'SELECT');
