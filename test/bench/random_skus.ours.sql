-- order_ext, normal mode: a one-line order for one of 10,000 stock-tracked
-- SKUs picked at random.
\set buyer random(1, 1000000)
\set s random(1, 10000)
SELECT order_id FROM order_ext.create_order(order_ext.new_order_id(), :buyer,
     jsonb_build_array(jsonb_build_object('sku', 'R-' || :s, 'qty', 1, 'unit_price', 999)));
