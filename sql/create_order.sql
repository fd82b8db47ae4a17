--
-- create_order: money, discount allocation, idempotency, validation
-- (API.md "Creating orders (idempotent)", "Errors")
--
-- Orders here use fixed ids of 2024-02 (a month made with
-- create_partitions, as for a historical import), so that error messages
-- that name an order id are the same on every run.  :base is the first id
-- of 2024-02-10 00:00 UTC.
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- try(...): create_order with the given arguments (id :base + 100 unless
-- given); 'ok ...' with the money, or 'SQLSTATE: message'
CREATE FUNCTION pg_temp.try(items jsonb, discounts jsonb DEFAULT '[]', shipping_fee bigint DEFAULT 0,
                            attrs jsonb DEFAULT '{}', currency text DEFAULT 'CNY',
                            machine text DEFAULT 'physical',
                            id bigint DEFAULT order_ext.min_order_id('2024-02-10 00:00:00+00') + 100,
                            buyer bigint DEFAULT 1)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    o record;
BEGIN
    SELECT * INTO o FROM order_ext.create_order(id, buyer, items, machine, discounts, shipping_fee, attrs, currency);
    RETURN format('ok: item_total=%s discount_total=%s shipping_fee=%s payable_total=%s',
                  o.item_total, o.discount_total, o.shipping_fee, o.payable_total);
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- alloc(id): the lines' discount_alloc in line_no order
CREATE FUNCTION pg_temp.alloc(id bigint) RETURNS text LANGUAGE sql AS $$
SELECT string_agg(discount_alloc::text, ',' ORDER BY line_no) FROM order_ext.order_items WHERE order_id = id
$$;

CREATE FUNCTION pg_temp.counts() RETURNS text LANGUAGE sql AS $$
SELECT format('orders=%s items=%s discounts=%s events=%s outbox=%s',
              (SELECT count(*) FROM order_ext.orders),
              (SELECT count(*) FROM order_ext.order_items),
              (SELECT count(*) FROM order_ext.order_discounts),
              (SELECT count(*) FROM order_ext.order_events),
              (SELECT count(*) FROM order_ext.outbox))
$$;

SELECT order_ext.create_partitions('2024-02-01 00:00:00+00', '2024-02-01 00:00:00+00') AS months;
SELECT order_ext.min_order_id('2024-02-10 00:00:00+00') AS base \gset

--------------------------------------------------------------------------
-- A realistic order: 3 lines, a line-level promotion, an order coupon, a
-- shipping fee.
--
--   line 1  A-1  2 x 1999 = 3998
--   line 2  B-2  1 x 5000 = 5000   promo P5 500 on line 2 -> 4500 left
--   line 3  C-3  3 x  333 =  999
--   item_total = 9997
--
-- The coupon C10 (1000, order-level) is spread over what is left of each
-- line: 3998 + 4500 + 999 = 9497.
--   line 1  1000 * 3998 / 9497 = 420 remainder 9260
--   line 2  1000 * 4500 / 9497 = 473 remainder 7919
--   line 3  1000 *  999 / 9497 = 105 remainder 1815
--   420 + 473 + 105 = 998: the 2 units left go to the largest remainders,
--   lines 1 and 2.  Shares 421, 474, 105.
-- discount_alloc = 421, 500 + 474 = 974, 105   (sum 1500 = discount_total)
-- payable_total  = 9997 - 1500 + 800 = 9297
--------------------------------------------------------------------------

SELECT pg_temp.counts();
SELECT order_id = :base + 1 AS id_kept, parent_id, buyer_id, machine, status, version, currency,
       item_total, discount_total, shipping_fee, payable_total, paid_total, refunded_total, attrs,
       created_at = now() AS created_now, updated_at = now() AS updated_now,
       paid_at IS NULL AND shipped_at IS NULL AND received_at IS NULL
           AND completed_at IS NULL AND closed_at IS NULL AS no_milestones
FROM order_ext.create_order(:base + 1, 1001,
        '[{"sku":"A-1","qty":2,"unit_price":1999,"merchant_id":501,"warehouse_id":9001},
          {"sku":"B-2","qty":1,"unit_price":5000,"merchant_id":502},
          {"sku":"C-3","qty":3,"unit_price":333}]',
        discounts => '[{"kind":"promo","code":"P5","amount":500,"line":2},
                       {"kind":"coupon","code":"C10","amount":1000}]',
        shipping_fee => 800,
        attrs => '{"channel":"app","note":"leave at the door"}');

SELECT line_no, sku, qty, unit_price, discount_alloc, refunded_qty, refunded_amount, merchant_id, warehouse_id
FROM order_ext.order_items WHERE order_id = :base + 1 ORDER BY line_no;
SELECT sum(discount_alloc) AS sum_alloc,
       (SELECT discount_total FROM order_ext.orders WHERE order_id = :base + 1) AS discount_total,
       sum(qty * unit_price) AS sum_lines,
       (SELECT item_total FROM order_ext.orders WHERE order_id = :base + 1) AS item_total
FROM order_ext.order_items WHERE order_id = :base + 1;
SELECT seq, kind, code, amount, line_no FROM order_ext.order_discounts WHERE order_id = :base + 1 ORDER BY seq;
-- the timeline starts with one 'create' event of version 1, and one outbox row
SELECT e.version, e.event, e.from_status, e.to_status, e.payload, e.created_at = o.created_at AS created_with_order
FROM order_ext.order_events e JOIN order_ext.orders o USING (order_id) WHERE order_id = :base + 1;
SELECT x.version, x.event, x.created_at = o.created_at AS created_with_order
FROM order_ext.outbox x JOIN order_ext.orders o USING (order_id) WHERE order_id = :base + 1;
SELECT pg_temp.counts();

--------------------------------------------------------------------------
-- Idempotency: the same request again returns the same order and writes
-- nothing; the same id with another request is OE004
--------------------------------------------------------------------------

-- the same request spelled differently: key order, 2.0 for 2, code null
SELECT order_id = :base + 1 AS same_order, version, status, payable_total
FROM order_ext.create_order(:base + 1, 1001,
        '[{"unit_price":1999,"qty":2.0,"warehouse_id":9001,"sku":"A-1","merchant_id":501},
          {"merchant_id":502,"qty":1,"sku":"B-2","unit_price":5000.00},
          {"qty":3,"unit_price":333,"sku":"C-3"}]',
        'physical',
        '[{"amount":500,"line":2,"code":"P5","kind":"promo"},
          {"amount":1000,"kind":"coupon","code":"C10"}]',
        800,
        '{"note":"leave at the door","channel":"app"}',
        'CNY');
-- the row returned is the stored row
SELECT r = o AS returns_stored_row
FROM order_ext.create_order(:base + 1, 1001,
        '[{"sku":"A-1","qty":2,"unit_price":1999,"merchant_id":501,"warehouse_id":9001},
          {"sku":"B-2","qty":1,"unit_price":5000,"merchant_id":502},
          {"sku":"C-3","qty":3,"unit_price":333}]',
        discounts => '[{"kind":"promo","code":"P5","amount":500,"line":2},
                       {"kind":"coupon","code":"C10","amount":1000}]',
        shipping_fee => 800,
        attrs => '{"channel":"app","note":"leave at the door"}') r,
     order_ext.orders o
WHERE o.order_id = :base + 1;
SELECT pg_temp.counts();
SELECT count(*) AS events FROM order_ext.order_events WHERE order_id = :base + 1;

-- the same id with a different request: OE004, whatever differs
\set items '''[{"sku":"A-1","qty":2,"unit_price":1999,"merchant_id":501,"warehouse_id":9001},{"sku":"B-2","qty":1,"unit_price":5000,"merchant_id":502},{"sku":"C-3","qty":3,"unit_price":333}]'''
\set discounts '''[{"kind":"promo","code":"P5","amount":500,"line":2},{"kind":"coupon","code":"C10","amount":1000}]'''
\set attrs '''{"channel":"app","note":"leave at the door"}'''
-- (the unchanged request, through try(): ok)
SELECT pg_temp.try(:items, :discounts, 800, :attrs, id => :base + 1, buyer => 1001) AS same;
SELECT pg_temp.try(:items, :discounts, 800, :attrs, id => :base + 1, buyer => 1002) AS other_buyer;
SELECT pg_temp.try('[{"sku":"A-1","qty":3,"unit_price":1999,"merchant_id":501,"warehouse_id":9001},{"sku":"B-2","qty":1,"unit_price":5000,"merchant_id":502},{"sku":"C-3","qty":3,"unit_price":333}]',
                   :discounts, 800, :attrs, id => :base + 1, buyer => 1001) AS other_qty;
SELECT pg_temp.try('[{"sku":"A-1","qty":2,"unit_price":1998,"merchant_id":501,"warehouse_id":9001},{"sku":"B-2","qty":1,"unit_price":5000,"merchant_id":502},{"sku":"C-3","qty":3,"unit_price":333}]',
                   :discounts, 800, :attrs, id => :base + 1, buyer => 1001) AS other_price;
SELECT pg_temp.try('[{"sku":"A-2","qty":2,"unit_price":1999,"merchant_id":501,"warehouse_id":9001},{"sku":"B-2","qty":1,"unit_price":5000,"merchant_id":502},{"sku":"C-3","qty":3,"unit_price":333}]',
                   :discounts, 800, :attrs, id => :base + 1, buyer => 1001) AS other_sku;
SELECT pg_temp.try('[{"sku":"A-1","qty":2,"unit_price":1999,"merchant_id":501},{"sku":"B-2","qty":1,"unit_price":5000,"merchant_id":502},{"sku":"C-3","qty":3,"unit_price":333}]',
                   :discounts, 800, :attrs, id => :base + 1, buyer => 1001) AS no_warehouse;
SELECT pg_temp.try('[{"sku":"A-1","qty":2,"unit_price":1999,"merchant_id":501,"warehouse_id":9001},{"sku":"B-2","qty":1,"unit_price":5000,"merchant_id":503},{"sku":"C-3","qty":3,"unit_price":333}]',
                   :discounts, 800, :attrs, id => :base + 1, buyer => 1001) AS other_merchant;
SELECT pg_temp.try('[{"sku":"B-2","qty":1,"unit_price":5000,"merchant_id":502},{"sku":"A-1","qty":2,"unit_price":1999,"merchant_id":501,"warehouse_id":9001},{"sku":"C-3","qty":3,"unit_price":333}]',
                   :discounts, 800, :attrs, id => :base + 1, buyer => 1001) AS lines_reordered;
SELECT pg_temp.try('[{"sku":"A-1","qty":2,"unit_price":1999,"merchant_id":501,"warehouse_id":9001},{"sku":"B-2","qty":1,"unit_price":5000,"merchant_id":502}]',
                   :discounts, 800, :attrs, id => :base + 1, buyer => 1001) AS line_dropped;
SELECT pg_temp.try(:items, '[{"kind":"promo","code":"P5","amount":500,"line":2},{"kind":"coupon","code":"C10","amount":1001}]',
                   800, :attrs, id => :base + 1, buyer => 1001) AS other_discount_amount;
SELECT pg_temp.try(:items, '[{"kind":"promo","code":"P5","amount":500,"line":1},{"kind":"coupon","code":"C10","amount":1000}]',
                   800, :attrs, id => :base + 1, buyer => 1001) AS other_discount_line;
SELECT pg_temp.try(:items, '[{"kind":"promo","code":"P5","amount":500,"line":2},{"kind":"coupon","code":"C11","amount":1000}]',
                   800, :attrs, id => :base + 1, buyer => 1001) AS other_discount_code;
SELECT pg_temp.try(:items, '[{"kind":"promo","code":"P5","amount":500,"line":2}]',
                   800, :attrs, id => :base + 1, buyer => 1001) AS discount_dropped;
SELECT pg_temp.try(:items, :discounts, 0, :attrs, id => :base + 1, buyer => 1001) AS other_shipping;
SELECT pg_temp.try(:items, :discounts, 800, '{"channel":"web","note":"leave at the door"}', id => :base + 1, buyer => 1001) AS other_attrs;
SELECT pg_temp.try(:items, :discounts, 800, '{}', id => :base + 1, buyer => 1001) AS no_attrs;
SELECT pg_temp.try(:items, :discounts, 800, :attrs, 'USD', id => :base + 1, buyer => 1001) AS other_currency;
SELECT pg_temp.try(:items, :discounts, 800, :attrs, machine => 'virtual', id => :base + 1, buyer => 1001) AS other_machine;
-- nothing was written by any of them
SELECT pg_temp.counts();
SELECT version, status, buyer_id, payable_total, attrs FROM order_ext.orders WHERE order_id = :base + 1;

--------------------------------------------------------------------------
-- Machines
--------------------------------------------------------------------------

SELECT machine, status, version FROM order_ext.create_order(:base + 2, 1001, '[{"sku":"EBOOK-1","qty":1,"unit_price":2500}]', 'virtual');
SELECT event, version, to_status FROM order_ext.order_events WHERE order_id = :base + 2;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', machine => 'nope') AS unknown_machine;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', machine => '') AS empty_machine;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', machine => 'Physical') AS machine_case;
-- the after-sale requests' machine is not an order's: its statuses release no stock
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', machine => 'after_sale') AS request_machine;

--------------------------------------------------------------------------
-- Malformed requests: 22023 (SQL NULL included) naming the field;
-- amounts negative or too large: OE007.  Nothing is written.
--------------------------------------------------------------------------

SELECT pg_temp.counts() AS counts_before \gset

-- items: not an array
SELECT pg_temp.try('{"sku":"A","qty":1,"unit_price":1}') AS items_object;
SELECT pg_temp.try('"A"') AS items_string;
SELECT pg_temp.try('5') AS items_number;
SELECT pg_temp.try('true') AS items_boolean;
SELECT pg_temp.try('null') AS items_json_null;
SELECT pg_temp.try(NULL) AS items_sql_null;
SELECT pg_temp.try('[]') AS items_empty;
-- items: elements
SELECT pg_temp.try('[1]') AS element_number;
SELECT pg_temp.try('[null]') AS element_null;
SELECT pg_temp.try('[[{"sku":"A","qty":1,"unit_price":1}]]') AS element_array;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}, "B"]') AS second_element_string;
SELECT pg_temp.try('[{"qty":1,"unit_price":1}]') AS missing_sku;
SELECT pg_temp.try('[{"sku":"A","unit_price":1}]') AS missing_qty;
SELECT pg_temp.try('[{"sku":"A","qty":1}]') AS missing_unit_price;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}, {"sku":"B","qty":1}]') AS second_missing_unit_price;
SELECT pg_temp.try('[{"sku":null,"qty":1,"unit_price":1}]') AS sku_null;
SELECT pg_temp.try('[{"sku":"","qty":1,"unit_price":1}]') AS sku_empty;
SELECT pg_temp.try('[{"sku":5,"qty":1,"unit_price":1}]') AS sku_number;
SELECT pg_temp.try('[{"sku":["A"],"qty":1,"unit_price":1}]') AS sku_array;
SELECT pg_temp.try(jsonb_build_array(jsonb_build_object('sku', repeat('x', 201), 'qty', 1, 'unit_price', 1))) AS sku_too_long;
SELECT pg_temp.try('[{"sku":"A","qty":0,"unit_price":1}]') AS qty_zero;
SELECT pg_temp.try('[{"sku":"A","qty":-1,"unit_price":1}]') AS qty_negative;
SELECT pg_temp.try('[{"sku":"A","qty":2.5,"unit_price":1}]') AS qty_fraction;
SELECT pg_temp.try('[{"sku":"A","qty":"2","unit_price":1}]') AS qty_string;
SELECT pg_temp.try('[{"sku":"A","qty":true,"unit_price":1}]') AS qty_boolean;
SELECT pg_temp.try('[{"sku":"A","qty":null,"unit_price":1}]') AS qty_null;
SELECT pg_temp.try('[{"sku":"A","qty":1e10,"unit_price":1}]') AS qty_1e10;
SELECT pg_temp.try('[{"sku":"A","qty":2147483648,"unit_price":1}]') AS qty_above_int;
SELECT pg_temp.try('[{"sku":"A","qty":99999999999999999999999,"unit_price":1}]') AS qty_huge;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":-1}]') AS price_negative;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1.5}]') AS price_fraction;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":"100"}]') AS price_string;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":9223372036854775808}]') AS price_above_bigint;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":-9223372036854775808}]') AS price_min_bigint;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1e30}]') AS price_1e30;
SELECT pg_temp.try('[{"sku":"A","qty":2,"unit_price":4611686018427387904}]') AS line_overflow;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":4611686018427387904},{"sku":"B","qty":1,"unit_price":4611686018427387904}]') AS item_total_overflow;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1,"colour":"red"}]') AS unknown_key;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1,"line":1}]') AS unknown_key_line;
-- a long unknown key is cut at 64 bytes, never inside a character: 63
-- letters and an "é" (2 bytes) show as the 63 letters
SELECT pg_temp.try(('[{"sku":"A","qty":1,"unit_price":1,"' || repeat('k', 63) || 'é":1}]')::jsonb)
       = '22023: items[0] has an unknown field "' || repeat('k', 63) || '"' AS long_key_cut_whole;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1,"merchant_id":"M1"}]') AS merchant_string;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1,"warehouse_id":1.5}]') AS warehouse_fraction;
-- discounts
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '{"kind":"coupon","amount":1}') AS discounts_object;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', 'null') AS discounts_json_null;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', NULL) AS discounts_sql_null;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '[5]') AS discount_element_number;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '[{"amount":1}]') AS discount_missing_kind;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '[{"kind":"coupon"}]') AS discount_missing_amount;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '[{"kind":"coupon","amount":null}]') AS discount_amount_null;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '[{"kind":"","amount":1}]') AS discount_kind_empty;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '[{"kind":"coupon","code":7,"amount":1}]') AS discount_code_number;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '[{"kind":"coupon","amount":-1}]') AS discount_negative;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '[{"kind":"coupon","amount":1.5}]') AS discount_fraction;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '[{"kind":"coupon","amount":"1"}]') AS discount_string;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', '[{"kind":"coupon","amount":1,"percent":10}]') AS discount_unknown_key;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100},{"sku":"C","qty":1,"unit_price":100}]',
                   '[{"kind":"coupon","amount":1,"line":0}]') AS discount_line_0;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100},{"sku":"C","qty":1,"unit_price":100}]',
                   '[{"kind":"coupon","amount":1,"line":4}]') AS discount_line_4_of_3;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100},{"sku":"C","qty":1,"unit_price":100}]',
                   '[{"kind":"coupon","amount":1,"line":-1}]') AS discount_line_negative;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100},{"sku":"C","qty":1,"unit_price":100}]',
                   '[{"kind":"coupon","amount":1,"line":"1"}]') AS discount_line_string;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100},{"sku":"C","qty":1,"unit_price":100}]',
                   '[{"kind":"coupon","amount":1,"line":1.5}]') AS discount_line_fraction;
-- a line-level discount bigger than its line (100), alone or added up
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100}]',
                   '[{"kind":"promo","amount":101,"line":2}]') AS line_discount_too_big;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100}]',
                   '[{"kind":"promo","amount":60,"line":1},{"kind":"promo","amount":41,"line":1}]') AS line_discounts_add_up_too_big;
-- order-level discounts bigger than the items (200), alone or with line discounts
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100}]',
                   '[{"kind":"coupon","amount":201}]') AS order_discount_too_big;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100}]',
                   '[{"kind":"coupon","amount":150},{"kind":"points","amount":51}]') AS order_discounts_add_up_too_big;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100}]',
                   '[{"kind":"promo","amount":100,"line":1},{"kind":"coupon","amount":101}]') AS after_line_discount_too_big;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]',
                   '[{"kind":"coupon","amount":9223372036854775807},{"kind":"points","amount":1}]') AS discount_total_overflow;
-- shipping fee, payable
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100}]', shipping_fee => -1) AS shipping_negative;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":9223372036854775807}]', shipping_fee => 1) AS payable_overflow;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', shipping_fee => 9223372036854775807) AS payable_overflow_by_fee;
-- attrs
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', attrs => '[]') AS attrs_array;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', attrs => '"gift"') AS attrs_string;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', attrs => 'null') AS attrs_json_null;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', attrs => '3') AS attrs_number;
-- currency: three upper-case letters
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', currency => 'cny') AS currency_lower;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', currency => 'EURO') AS currency_four;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', currency => '') AS currency_empty;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', currency => 'US1') AS currency_digit;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', currency => ' CN') AS currency_space;
-- order_id
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', id => 0) AS order_id_zero;
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1}]', id => -1) AS order_id_negative;
-- every NULL argument: 22023 naming it
SELECT pg_temp.err($$SELECT order_ext.create_order(NULL, 1, '[{"sku":"A","qty":1,"unit_price":1}]')$$) AS null_order_id;
SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.min_order_id('2024-02-10 00:00:00+00') + 100, NULL, '[{"sku":"A","qty":1,"unit_price":1}]')$$) AS null_buyer_id;
SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.min_order_id('2024-02-10 00:00:00+00') + 100, 1, NULL)$$) AS null_items;
SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.min_order_id('2024-02-10 00:00:00+00') + 100, 1, '[{"sku":"A","qty":1,"unit_price":1}]', machine => NULL)$$) AS null_machine;
SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.min_order_id('2024-02-10 00:00:00+00') + 100, 1, '[{"sku":"A","qty":1,"unit_price":1}]', discounts => NULL)$$) AS null_discounts;
SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.min_order_id('2024-02-10 00:00:00+00') + 100, 1, '[{"sku":"A","qty":1,"unit_price":1}]', shipping_fee => NULL)$$) AS null_shipping_fee;
SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.min_order_id('2024-02-10 00:00:00+00') + 100, 1, '[{"sku":"A","qty":1,"unit_price":1}]', attrs => NULL)$$) AS null_attrs;
SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.min_order_id('2024-02-10 00:00:00+00') + 100, 1, '[{"sku":"A","qty":1,"unit_price":1}]', currency => NULL)$$) AS null_currency;
-- and the error happens at the top level too (not only in a subtransaction)
SELECT * FROM order_ext.create_order(:base + 100, 1, '[{"sku":"A","qty":0,"unit_price":1}]');
SELECT * FROM order_ext.create_order(:base + 100, 1, '[{"sku":"A","qty":1,"unit_price":-1}]');
-- nothing half-written by any of the failures above
SELECT pg_temp.counts() = :'counts_before' AS nothing_written;
SELECT count(*) AS order_100 FROM order_ext.orders WHERE order_id = :base + 100;

-- 1000 lines is the most: 1000 works, 1001 is refused
SELECT pg_temp.try((SELECT jsonb_agg(jsonb_build_object('sku', 'S-' || i, 'qty', 1, 'unit_price', i) ORDER BY i)
                    FROM generate_series(1, 1001) i), id => :base + 3) AS lines_1001;
SELECT pg_temp.counts() = :'counts_before' AS nothing_written;
SELECT pg_temp.try((SELECT jsonb_agg(jsonb_build_object('sku', 'S-' || i, 'qty', 1, 'unit_price', i) ORDER BY i)
                    FROM generate_series(1, 1000) i),
                   '[{"kind":"coupon","amount":1001}]', id => :base + 3) AS lines_1000;
-- lines numbered 1..1000 in the order given; the coupon spread exactly
SELECT count(*) AS lines, min(line_no), max(line_no), count(DISTINCT line_no) AS distinct_line_no,
       count(*) FILTER (WHERE sku <> 'S-' || line_no OR unit_price <> line_no) AS out_of_order,
       sum(discount_alloc) AS sum_alloc,
       count(*) FILTER (WHERE discount_alloc > qty * unit_price) AS alloc_above_line
FROM order_ext.order_items WHERE order_id = :base + 3;

--------------------------------------------------------------------------
-- Discount allocation edge cases (largest remainder, ties to lower line_no)
--------------------------------------------------------------------------

-- one line takes the whole discount: 2997 - 1000 = 1997
SELECT pg_temp.try('[{"sku":"A","qty":3,"unit_price":999}]', '[{"kind":"coupon","amount":1000}]', id => :base + 10);
SELECT pg_temp.alloc(:base + 10);

-- three equal lines of 100, coupon 100: 33 each, remainders equal, the one
-- unit left goes to line 1
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100},{"sku":"C","qty":1,"unit_price":100}]',
                   '[{"kind":"coupon","amount":100}]', id => :base + 11);
SELECT pg_temp.alloc(:base + 11);
-- coupon 200: 66 each, 2 units left: lines 1 and 2
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":100},{"sku":"B","qty":1,"unit_price":100},{"sku":"C","qty":1,"unit_price":100}]',
                   '[{"kind":"coupon","amount":200}]', id => :base + 12);
SELECT pg_temp.alloc(:base + 12);
-- seven lines of 1, coupon 3: 0 each, 3 units left: lines 1, 2, 3
SELECT pg_temp.try((SELECT jsonb_agg(jsonb_build_object('sku', 'U-' || i, 'qty', 1, 'unit_price', 1) ORDER BY i)
                    FROM generate_series(1, 7) i),
                   '[{"kind":"coupon","amount":3}]', id => :base + 13);
SELECT pg_temp.alloc(:base + 13);

-- largest remainder, not largest line: lines 10, 30, 60, coupon 7
--   0.7 -> 0 (rem .7), 2.1 -> 2 (rem .1), 4.2 -> 4 (rem .2): the unit left goes to line 1
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":10},{"sku":"B","qty":1,"unit_price":30},{"sku":"C","qty":1,"unit_price":60}]',
                   '[{"kind":"coupon","amount":7}]', id => :base + 14);
SELECT pg_temp.alloc(:base + 14);

-- a discount equal to the whole item total: payable = shipping fee
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":300},{"sku":"B","qty":1,"unit_price":700}]',
                   '[{"kind":"coupon","amount":1000}]', 500, id => :base + 15);
SELECT pg_temp.alloc(:base + 15);
-- the same with a line-level discount taking all of line 1 first
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":300},{"sku":"B","qty":1,"unit_price":700}]',
                   '[{"kind":"promo","amount":300,"line":1},{"kind":"coupon","amount":700}]', 500, id => :base + 16);
SELECT pg_temp.alloc(:base + 16);

-- a zero-priced line (a gift) gets no share: lines 1000, 0, 500, coupon 100
--   1000 -> 66 (rem 1000/1500), 0 -> 0, 500 -> 33 (rem 500/1500): line 1 gets the unit
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":1000},{"sku":"GIFT","qty":1,"unit_price":0},{"sku":"C","qty":1,"unit_price":500}]',
                   '[{"kind":"coupon","amount":100}]', id => :base + 17);
SELECT pg_temp.alloc(:base + 17);
-- an order of only free lines, no discount
SELECT pg_temp.try('[{"sku":"GIFT","qty":2,"unit_price":0}]', id => :base + 18);

-- a line fully discounted at line level gets no order-level share:
-- lines 500, 500, promo 500 on line 1, coupon 100 -> 500, 100
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":500},{"sku":"B","qty":1,"unit_price":500}]',
                   '[{"kind":"promo","amount":500,"line":1},{"kind":"coupon","amount":100}]', id => :base + 19);
SELECT pg_temp.alloc(:base + 19);

-- several order-level discounts add up: 300 + 200 over two equal lines
SELECT pg_temp.try('[{"sku":"A","qty":2,"unit_price":500},{"sku":"B","qty":1,"unit_price":1000}]',
                   '[{"kind":"coupon","code":"C3","amount":300},{"kind":"points","amount":200}]', id => :base + 20);
SELECT pg_temp.alloc(:base + 20);

-- a zero discount is allowed and changes nothing
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":500}]', '[{"kind":"none","amount":0}]', id => :base + 21);
SELECT pg_temp.alloc(:base + 21);

-- amounts near the bigint limit are allocated exactly (no overflow in
-- amount x line): lines 2^62 and 2^62 - 1 (item_total = 2^63 - 1), coupon 3
--   3 * 2^62 / (2^63 - 1)       = 1 remainder 2^62 + 1
--   3 * (2^62 - 1) / (2^63 - 1) = 1 remainder 2^62 - 2   -> line 1 gets the unit
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":4611686018427387904},{"sku":"B","qty":1,"unit_price":4611686018427387903}]',
                   '[{"kind":"coupon","amount":3}]', 3, id => :base + 22);
SELECT pg_temp.alloc(:base + 22);
-- one more unit of shipping and payable_total would not fit
SELECT pg_temp.try('[{"sku":"A","qty":1,"unit_price":4611686018427387904},{"sku":"B","qty":1,"unit_price":4611686018427387903}]',
                   '[{"kind":"coupon","amount":3}]', 4, id => :base + 23);
-- the largest quantity
SELECT pg_temp.try('[{"sku":"A","qty":2147483647,"unit_price":2}]', id => :base + 24);

--------------------------------------------------------------------------
-- Invariants over every order created above
--------------------------------------------------------------------------

SELECT count(*) AS orders,
       count(*) FILTER (WHERE o.item_total <> (SELECT sum(qty * unit_price) FROM order_ext.order_items i WHERE i.order_id = o.order_id)) AS bad_item_total,
       count(*) FILTER (WHERE o.discount_total <> (SELECT sum(discount_alloc) FROM order_ext.order_items i WHERE i.order_id = o.order_id)) AS bad_discount_total,
       count(*) FILTER (WHERE o.discount_total <> (SELECT coalesce(sum(amount), 0) FROM order_ext.order_discounts d WHERE d.order_id = o.order_id)) AS bad_discount_rows,
       count(*) FILTER (WHERE o.payable_total <> o.item_total - o.discount_total + o.shipping_fee) AS bad_payable,
       count(*) FILTER (WHERE o.status <> 'pending_payment' OR o.version <> 1) AS bad_state,
       count(*) FILTER (WHERE (SELECT count(*) FROM order_ext.order_events e WHERE e.order_id = o.order_id AND e.event = 'create' AND e.version = 1) <> 1) AS bad_events,
       count(*) FILTER (WHERE (SELECT count(*) FROM order_ext.outbox x WHERE x.order_id = o.order_id) <> 1) AS bad_outbox
FROM order_ext.orders o;
SELECT count(*) FILTER (WHERE discount_alloc > qty * unit_price) AS alloc_above_line,
       count(*) FILTER (WHERE discount_alloc < 0) AS alloc_negative
FROM order_ext.order_items;

-- an order in the current month, with an id from new_order_id()
SELECT order_ext.new_order_id() AS now_id \gset
SELECT order_id = :now_id AS id_kept, status, version, payable_total
FROM order_ext.create_order(:now_id, 7, '[{"sku":"NOW-1","qty":1,"unit_price":100}]', shipping_fee => 10);
SELECT order_id = :now_id AS same, version
FROM order_ext.create_order(:now_id, 7, '[{"sku":"NOW-1","qty":1,"unit_price":100}]', shipping_fee => 10);
SELECT count(*) AS events FROM order_ext.order_events WHERE order_id = :now_id;

-- ids of times to come are new_order_id()'s: one more than 10 seconds ahead
-- of the clock (and of every id this server issued) is refused, since it
-- could be issued again; one just ahead is taken, and the generator moves
-- past it, so new_order_id() never hands it out
SELECT regexp_replace(pg_temp.err(format($$SELECT order_ext.create_order(%s, 7, '[{"sku":"NOW-1","qty":1,"unit_price":100}]')$$,
                                         order_ext.min_order_id(clock_timestamp() + interval '1 minute'))),
                      '\d{13,}', '<id>') AS minute_ahead;
SELECT order_ext.min_order_id(clock_timestamp() + interval '300 ms') + 5 AS soon_id \gset
SELECT order_id = :soon_id AS soon_taken
FROM order_ext.create_order(:soon_id, 7, '[{"sku":"NOW-1","qty":1,"unit_price":100}]');
SELECT order_ext.new_order_id() > :soon_id AS generator_moved_past;
-- the same request again returns it, ahead or not
SELECT order_id = :soon_id AS soon_again
FROM order_ext.create_order(:soon_id, 7, '[{"sku":"NOW-1","qty":1,"unit_price":100}]');

-- (try() names order_ext in a default: drop it first so that DROP
-- EXTENSION has nothing of this session's temp schema to report)
DROP FUNCTION pg_temp.try(jsonb, jsonb, bigint, jsonb, text, text, bigint, bigint);
DROP EXTENSION order_ext CASCADE;
