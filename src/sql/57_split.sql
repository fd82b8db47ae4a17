--------------------------------------------------------------------------
-- Splitting orders (split.c)
--------------------------------------------------------------------------

CREATE FUNCTION order_ext.split_order(order_id bigint, by text DEFAULT 'merchant')
    RETURNS SETOF bigint
    AS 'MODULE_PATHNAME', 'split_order' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.split_order(bigint, text) IS
'Split an order by merchant (or warehouse) into child orders (new ids, parent_id set) with their lines, discount shares, shipping and payments cut exactly: the children add up to the parent. Children start in the parent''s status; the parent moves to split. Returns the children''s ids (none if all lines are in one group; then nothing changes).';

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'split_order', 'EXECUTE');
