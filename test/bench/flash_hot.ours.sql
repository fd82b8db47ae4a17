-- order_ext, hot mode: a one-line order for the flash-sale SKU, whose stock
-- is spread over 64 buckets (set_stock(..., hot => true, buckets => 64)).
\set buyer random(1, 1000000)
SELECT order_id FROM order_ext.create_order(order_ext.new_order_id(), :buyer,
     '[{"sku":"FLASH-H","qty":1,"unit_price":999}]'::jsonb);
