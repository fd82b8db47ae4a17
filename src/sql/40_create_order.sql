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

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'create_order', 'EXECUTE');

