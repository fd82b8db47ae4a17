-- order_ext, normal mode: a one-line order for the flash-sale SKU
-- (stock reserved in create_order; one stock row for the SKU).
\set buyer random(1, 1000000)
SELECT order_id FROM order_ext.create_order(order_ext.new_order_id(), :buyer,
     '[{"sku":"FLASH-N","qty":1,"unit_price":999}]'::jsonb);
