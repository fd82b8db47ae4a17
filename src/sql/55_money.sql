--------------------------------------------------------------------------
-- Money: payments and refunds (money.c)
--------------------------------------------------------------------------

-- A refund row records what it did (request, lines, shipping) for
-- idempotency and reconciliation; a refund of units whose net price is 0
-- (a free gift) is a row of amount 0.
ALTER TABLE order_ext.order_payments ADD COLUMN detail jsonb;
ALTER TABLE order_ext.order_payments DROP CONSTRAINT order_payments_amount_check;
ALTER TABLE order_ext.order_payments ADD CONSTRAINT order_payments_amount_check
    CHECK (amount > 0 OR (kind = 'refund' AND amount = 0));
COMMENT ON COLUMN order_ext.order_payments.detail IS
'Refunds: {"request": what was asked, "lines": [{"line_no","qty","amount"}], "shipping": the shipping fee refunded}.';

CREATE FUNCTION order_ext.record_payment(
    order_id bigint,
    txn_id   text,
    amount   bigint,
    method   text DEFAULT 'default')
    RETURNS order_ext.orders
    AS 'MODULE_PATHNAME', 'record_payment' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.record_payment(bigint, text, bigint, text) IS
'Record a gateway payment (one per txn_id; a repeated callback returns the order and changes nothing). Payments add up; reaching payable_total fires pay. Paying more than is owed: OE007. A payment for an order in a terminal status, or whose pay cannot happen (stock), is recorded and put in the outbox as refund_due; so is one for an order archive() moved to history, in the history tables.';

CREATE FUNCTION order_ext.refund(
    order_id  bigint,
    refund_id text,
    lines     jsonb   DEFAULT NULL,
    amount    bigint  DEFAULT NULL,
    restock   boolean DEFAULT false)
    RETURNS order_ext.orders
    AS 'MODULE_PATHNAME', 'refund' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.refund(bigint, text, jsonb, bigint, boolean) IS
'Refund, idempotently on refund_id, either lines [{"line_no":1,"qty":1}] (units at their price net of their discount share, exactly; the shipping fee with the last unit unless shipped) or an amount. More than paid, or than leaves the after-sales requests under way what they will refund: OE006. A full refund fires close. An archived order is refunded by amount only, in the history tables.';

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'record_payment', 'EXECUTE'),
    ('app', 'function', 'refund', 'EXECUTE');
