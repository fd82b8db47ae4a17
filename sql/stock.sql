--
-- stock: set_stock, available, check_stock, set_purchase_limit; the
-- on_create and on_pay policies; reservations held, committed at ship and
-- released at cancel/expire/close; hot mode (API.md "Stock")
--
-- Orders are known by a tag; ids are masked in error messages.
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';

-- err(sql): 'ok', or 'SQLSTATE: message (detail)' with ids masked
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{13,}', '<id>', 'g')
        || CASE WHEN coalesce(d, '') <> '' THEN ' (' || d || ')' ELSE '' END;
END $$;

CREATE TEMP TABLE o (tag text PRIMARY KEY, id bigint NOT NULL UNIQUE);
CREATE FUNCTION pg_temp.id(tag text) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT id FROM pg_temp.o WHERE o.tag = $1 $$;

-- mk(tag, buyer, items): create an order; 'ok' or the error
CREATE FUNCTION pg_temp.mk(tag text, buyer bigint, items jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := order_ext.new_order_id();
    r text;
BEGIN
    r := pg_temp.err(format('SELECT order_ext.create_order(%s, %s, %L)', new_id, buyer, items));
    IF r = 'ok' THEN
        INSERT INTO pg_temp.o VALUES (tag, new_id);
    END IF;
    RETURN r;
END $$;

-- fire(tag, event, actor)
CREATE FUNCTION pg_temp.fire(tag text, event text, actor text DEFAULT 'system') RETURNS text
LANGUAGE sql AS $$
    SELECT pg_temp.err(format('SELECT order_ext.fire(%s, %L, actor => %L)', pg_temp.id(tag), event, actor))
$$;

-- pay(tag): record_payment of what is left to pay; 'ok' or the error
CREATE FUNCTION pg_temp.pay(tag text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.err(format('SELECT order_ext.record_payment(%s, %L, %s)', o.order_id, 'txn-' || $1,
                              greatest(o.payable_total - o.paid_total, 1)))
    FROM order_ext.orders o WHERE o.order_id = pg_temp.id($1)
$$;

-- st(sku): on_hand/reserved/available and the reservations held, in one line
CREATE FUNCTION pg_temp.st(sku text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT format('%s on_hand=%s reserved=%s available=%s held=%s', $1, s.on_hand, s.reserved,
                  order_ext.available($1),
                  (SELECT coalesce(sum(qty), 0) FROM order_ext.reservations r WHERE r.sku = $1))
    FROM order_ext.stock s WHERE s.sku = $1
$$;

-- res(tag): what an order holds, sku:qty
CREATE FUNCTION pg_temp.res(tag text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(string_agg(sku || ':' || qty, ' ' ORDER BY sku), '-')
    FROM (SELECT sku, sum(qty) AS qty FROM order_ext.reservations
          WHERE order_id = pg_temp.id($1) GROUP BY sku) r
$$;

--------------------------------------------------------------------------
-- set_stock and available: arguments
--------------------------------------------------------------------------

SELECT pg_temp.err($$SELECT order_ext.set_stock(NULL, 1)$$) AS null_sku;
SELECT pg_temp.err($$SELECT order_ext.set_stock('', 1)$$) AS empty_sku;
SELECT pg_temp.err($$SELECT order_ext.set_stock(repeat('x', 201), 1)$$) AS long_sku;
SELECT pg_temp.err($$SELECT order_ext.set_stock('S-1', NULL)$$) AS null_on_hand;
-- NULL policy, hot or buckets: 22023 (it was read as the default, turning a
-- hot on_pay SKU into a plain on_create one)
SELECT pg_temp.err($$SELECT order_ext.set_stock('S-1', 1, NULL)$$) AS null_policy,
       pg_temp.err($$SELECT order_ext.set_stock('S-1', 1, hot => NULL)$$) AS null_hot,
       pg_temp.err($$SELECT order_ext.set_stock('S-1', 1, buckets => NULL)$$) AS null_buckets;
SELECT count(*) AS nothing_written FROM order_ext.stock_skus WHERE sku = 'S-1';
SELECT pg_temp.err($$SELECT order_ext.set_stock('S-1', -1)$$) AS negative_on_hand;
-- at most 10^15 units: at bigint's end, one restock made the stock view fail
-- for every SKU
SELECT pg_temp.err($$SELECT order_ext.set_stock('S-1', 9223372036854775807)$$) AS huge_on_hand,
       pg_temp.err($$SELECT order_ext.set_stock('S-1', 1000000000000001)$$) AS just_over;
SELECT pg_temp.err($$SELECT order_ext.set_stock('S-1', 1, 'later')$$) AS bad_policy;
SELECT pg_temp.err($$SELECT order_ext.set_stock('S-1', 1, hot => true, buckets => 1)$$) AS one_bucket_hot;
SELECT pg_temp.err($$SELECT order_ext.set_stock('S-1', 1, hot => true, buckets => 1025)$$) AS too_many_buckets;
SELECT count(*) AS nothing_written FROM order_ext.stock_skus;

SELECT sku, on_hand, reserved, available, policy, hot, buckets FROM order_ext.set_stock('S-1', 10);
SELECT order_ext.available('S-1') AS available, order_ext.available('NO-SUCH') AS untracked,
       order_ext.available(NULL) AS null_sku;
-- set again: the settings change, nothing else
SELECT sku, on_hand, reserved, available, policy, hot, buckets FROM order_ext.set_stock('S-1', 5, 'on_pay');
SELECT sku, on_hand, reserved, available, policy, hot, buckets FROM order_ext.set_stock('S-1', 10);

--------------------------------------------------------------------------
-- on_create: reserve at create_order; commit at ship; release at cancel
--------------------------------------------------------------------------

SELECT pg_temp.mk('a', 1, '[{"sku":"S-1","qty":3,"unit_price":100}]');
SELECT pg_temp.st('S-1'), pg_temp.res('a');
-- the same request again reserves nothing more
SELECT pg_temp.err(format($$SELECT order_ext.create_order(%s, 1, '[{"sku":"S-1","qty":3,"unit_price":100}]')$$,
                          pg_temp.id('a'))) AS again;
SELECT pg_temp.st('S-1');
-- more than available: OE003, nothing written (no order, no reservation)
SELECT count(*) AS orders_before FROM order_ext.orders \gset
SELECT pg_temp.mk('b', 2, '[{"sku":"S-1","qty":8,"unit_price":100}]') AS too_many;
SELECT count(*) - :orders_before AS orders_added FROM order_ext.orders;
SELECT pg_temp.st('S-1');
-- a SKU without a stock row is not tracked: never reserves, never fails
SELECT pg_temp.mk('c', 2, '[{"sku":"SERVICE","qty":1000000,"unit_price":1},{"sku":"S-1","qty":7,"unit_price":100}]');
SELECT pg_temp.st('S-1'), pg_temp.res('c');
-- sold out now
SELECT pg_temp.mk('d', 3, '[{"sku":"S-1","qty":1,"unit_price":100}]') AS sold_out;
-- cancel gives units back; pay keeps them; ship takes them out of on_hand
SELECT pg_temp.fire('c', 'cancel', 'buyer');
SELECT pg_temp.st('S-1'), pg_temp.res('c');
SELECT pg_temp.pay('a');
SELECT pg_temp.st('S-1'), pg_temp.res('a');
SELECT pg_temp.fire('a', 'ship', 'merchant');
SELECT pg_temp.st('S-1'), pg_temp.res('a');
-- expire (the payment timeout) releases too
SELECT pg_temp.mk('e', 3, '[{"sku":"S-1","qty":2,"unit_price":100}]');
SELECT pg_temp.st('S-1');
SELECT pg_temp.fire('e', 'expire');
SELECT pg_temp.st('S-1'), pg_temp.res('e');
-- close after pay (full refund before shipping) releases; 'close' alone,
-- with the money kept, is refused and releases nothing
SELECT pg_temp.mk('f', 3, '[{"sku":"S-1","qty":2,"unit_price":100}]');
SELECT pg_temp.pay('f');
SELECT pg_temp.fire('f', 'close');
SELECT pg_temp.st('S-1'), pg_temp.res('f');
SELECT status FROM order_ext.refund(pg_temp.id('f'), 'f-all', amount => 200);
SELECT pg_temp.st('S-1'), pg_temp.res('f');
SELECT * FROM order_ext.check_stock();

--------------------------------------------------------------------------
-- one SKU twice in one order: merged before checking
--------------------------------------------------------------------------

SELECT sku, on_hand, available FROM order_ext.set_stock('S-2', 3);
SELECT pg_temp.mk('g', 4, '[{"sku":"S-2","qty":2,"unit_price":1},{"sku":"S-2","qty":2,"unit_price":1}]') AS four_of_three;
SELECT pg_temp.mk('h', 4, '[{"sku":"S-2","qty":2,"unit_price":1},{"sku":"S-1","qty":1,"unit_price":1},{"sku":"S-2","qty":1,"unit_price":1}]');
SELECT pg_temp.st('S-2'), pg_temp.res('h');

--------------------------------------------------------------------------
-- on_pay: nothing reserved at create; pay reserves or fails with OE003
--------------------------------------------------------------------------

SELECT sku, on_hand, available, policy FROM order_ext.set_stock('P-1', 2, 'on_pay');
SELECT pg_temp.mk('p1', 5, '[{"sku":"P-1","qty":2,"unit_price":10}]');
SELECT pg_temp.mk('p2', 6, '[{"sku":"P-1","qty":1,"unit_price":10},{"sku":"S-2","qty":0,"unit_price":1}]') AS bad_line;
SELECT pg_temp.mk('p2', 6, '[{"sku":"P-1","qty":1,"unit_price":10}]');
SELECT pg_temp.st('P-1'), pg_temp.res('p1'), pg_temp.res('p2');
SELECT pg_temp.pay('p1');
SELECT pg_temp.st('P-1'), pg_temp.res('p1');
-- p2's pay cannot happen now (OE003): the money is kept, the order stays
-- unpaid, and a refund_due event names the payment
SELECT pg_temp.pay('p2') AS pay_sold_out;
SELECT status, version, paid_total FROM order_ext.orders WHERE order_id = pg_temp.id('p2');
SELECT event, payload->>'txn_id' AS txn_id FROM order_ext.outbox
WHERE order_id = pg_temp.id('p2') AND event = 'refund_due';
SELECT pg_temp.res('p2') AS p2_holds;
-- cancelling an unpaid on_pay order has nothing to release
SELECT pg_temp.fire('p2', 'cancel', 'buyer');
SELECT pg_temp.st('P-1');
-- restocked: a new order can be paid
SELECT sku, on_hand, available FROM order_ext.set_stock('P-1', 3, 'on_pay');
SELECT pg_temp.mk('p3', 6, '[{"sku":"P-1","qty":1,"unit_price":10}]');
SELECT pg_temp.pay('p3');
SELECT pg_temp.st('P-1'), pg_temp.res('p3');
-- on_hand may not fall below what is reserved
SELECT pg_temp.err($$SELECT order_ext.set_stock('P-1', 2, 'on_pay')$$) AS below_reserved;
SELECT pg_temp.st('P-1');
SELECT * FROM order_ext.check_stock();

--------------------------------------------------------------------------
-- purchase limits
--------------------------------------------------------------------------

SELECT sku, on_hand FROM order_ext.set_stock('L-1', 100);
SELECT pg_temp.err($$SELECT order_ext.set_purchase_limit('L-1', 0)$$) AS zero_limit;
SELECT pg_temp.err($$SELECT order_ext.set_purchase_limit(NULL, 1)$$) AS null_sku;
SELECT order_ext.set_purchase_limit('L-1', 3);
SELECT pg_temp.mk('l1', 7, '[{"sku":"L-1","qty":2,"unit_price":5}]');
SELECT pg_temp.mk('l2', 7, '[{"sku":"L-1","qty":2,"unit_price":5}]') AS over_limit;
SELECT pg_temp.mk('l3', 7, '[{"sku":"L-1","qty":4,"unit_price":5}]') AS over_limit_alone;
SELECT pg_temp.mk('l4', 7, '[{"sku":"L-1","qty":1,"unit_price":5}]');
-- another buyer has their own allowance
SELECT pg_temp.mk('l5', 8, '[{"sku":"L-1","qty":3,"unit_price":5}]');
SELECT buyer_id, sku, qty FROM order_ext.buyer_holdings ORDER BY 1, 2;
-- a cancelled order no longer counts
SELECT pg_temp.fire('l1', 'cancel', 'buyer');
SELECT pg_temp.mk('l6', 7, '[{"sku":"L-1","qty":2,"unit_price":5}]');
SELECT buyer_id, sku, qty FROM order_ext.buyer_holdings ORDER BY 1, 2;
-- limits apply to SKUs without stock rows too
SELECT order_ext.set_purchase_limit('COUPON', 1);
SELECT pg_temp.mk('l7', 9, '[{"sku":"COUPON","qty":1,"unit_price":0}]');
SELECT pg_temp.mk('l8', 9, '[{"sku":"COUPON","qty":1,"unit_price":0}]') AS second_coupon;
-- a new limit counts what buyers already hold (shipped orders too)
SELECT order_ext.set_purchase_limit('S-1', 2);
SELECT buyer_id, sku, qty FROM order_ext.buyer_holdings WHERE sku = 'S-1' ORDER BY 1;
SELECT pg_temp.mk('l9', 1, '[{"sku":"S-1","qty":1,"unit_price":5}]') AS buyer_1_holds_3;
-- NULL removes the limit
SELECT order_ext.set_purchase_limit('S-1', NULL);
SELECT pg_temp.mk('l9', 1, '[{"sku":"S-1","qty":1,"unit_price":5}]');
SELECT count(*) AS s1_holdings FROM order_ext.buyer_holdings WHERE sku = 'S-1';

--------------------------------------------------------------------------
-- hot mode: the units spread over buckets; orders take from one bucket,
-- or from several when no single one has enough
--------------------------------------------------------------------------

SELECT sku, on_hand, available, hot, buckets FROM order_ext.set_stock('H-1', 10, hot => true, buckets => 4);
SELECT bucket, on_hand, reserved FROM order_ext.stock_buckets WHERE sku = 'H-1' ORDER BY bucket;
SELECT pg_temp.mk('h1', 10, '[{"sku":"H-1","qty":3,"unit_price":1}]');
SELECT pg_temp.mk('h2', 11, '[{"sku":"H-1","qty":3,"unit_price":1}]');
SELECT pg_temp.st('H-1');
-- 4 units left, at most 2 in any bucket: an order for 4 takes from several
SELECT max(on_hand - reserved) AS largest_bucket FROM order_ext.stock_buckets WHERE sku = 'H-1';
SELECT pg_temp.mk('h3', 12, '[{"sku":"H-1","qty":4,"unit_price":1}]');
SELECT pg_temp.st('H-1'), pg_temp.res('h3');
SELECT count(*) > 1 AS from_several_buckets FROM order_ext.reservations WHERE order_id = pg_temp.id('h3');
SELECT pg_temp.mk('h4', 13, '[{"sku":"H-1","qty":1,"unit_price":1}]') AS sold_out;
-- cancel puts the units back in the buckets they came from
SELECT pg_temp.fire('h3', 'cancel', 'buyer');
SELECT pg_temp.st('H-1');
-- back to normal mode with reservations held: they stay in their buckets
SELECT sku, on_hand, reserved, available, hot, buckets FROM order_ext.set_stock('H-1', 20);
SELECT count(*) FILTER (WHERE reserved = 0) AS empty_buckets, sum(reserved) AS reserved,
       count(*) FILTER (WHERE bucket > 0 AND on_hand <> reserved) AS extra_buckets_with_free_units
FROM order_ext.stock_buckets WHERE sku = 'H-1';
SELECT pg_temp.pay('h1'), pg_temp.fire('h1', 'ship', 'merchant');
SELECT pg_temp.fire('h2', 'cancel', 'buyer');
SELECT pg_temp.st('H-1');
-- and hot again
SELECT sku, on_hand, reserved, available, hot, buckets FROM order_ext.set_stock('H-1', 17, hot => true, buckets => 8);
SELECT count(*) AS buckets, sum(on_hand) AS on_hand FROM order_ext.stock_buckets WHERE sku = 'H-1';
SELECT * FROM order_ext.check_stock();

--------------------------------------------------------------------------
-- the invariants are enforced, and check_stock reports drift
--------------------------------------------------------------------------

SELECT pg_temp.err($$UPDATE order_ext.stock_buckets SET reserved = on_hand + 1 WHERE sku = 'S-1'$$) AS reserved_above_on_hand;
SELECT pg_temp.err($$UPDATE order_ext.stock_buckets SET reserved = -1 WHERE sku = 'S-2'$$) AS negative_reserved;
SELECT pg_temp.err($$UPDATE order_ext.stock_buckets SET on_hand = -1 WHERE sku = 'S-2'$$) AS negative_on_hand;
BEGIN;
UPDATE order_ext.stock_buckets SET reserved = reserved - 1 WHERE sku = 'S-2';
DELETE FROM order_ext.reservations WHERE order_id = pg_temp.id('p3');
SELECT * FROM order_ext.check_stock();
ROLLBACK;
SELECT * FROM order_ext.check_stock();

--------------------------------------------------------------------------
-- user machines can use the stock effects; unknown effects are refused
--------------------------------------------------------------------------

SELECT split_part(pg_temp.err($$INSERT INTO order_ext.transitions (machine, from_status, event, to_status, effects)
                     VALUES ('physical', 'paid', 'zap', 'paid', '{stock:vanish}')$$), ' (', 1) AS unknown_effect;

--------------------------------------------------------------------------
-- stock meets money: refunds, returns, splits (issue 5 on top of issue 4)
--------------------------------------------------------------------------

SELECT sku, on_hand, available FROM order_ext.set_stock('M-1', 10);
SELECT sku, on_hand, available FROM order_ext.set_stock('M-2', 10, hot => true, buckets => 2);
SELECT order_ext.set_purchase_limit('M-1', 5);
-- a refund of units before shipping releases their reservation (restock or not)
SELECT pg_temp.mk('m1', 20, '[{"sku":"M-1","qty":3,"unit_price":100},{"sku":"M-2","qty":2,"unit_price":50}]');
SELECT pg_temp.pay('m1');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'm1-r1', lines => '[{"line_no":1,"qty":1}]')$$, pg_temp.id('m1'))) AS refund_one;
SELECT pg_temp.st('M-1'), pg_temp.res('m1');
SELECT qty AS holdings FROM order_ext.buyer_holdings WHERE buyer_id = 20 AND sku = 'M-1';
-- shipping commits what is left; a refund after shipping restocks only with restock
SELECT pg_temp.fire('m1', 'ship', 'merchant');
SELECT pg_temp.st('M-1'), pg_temp.st('M-2');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'm1-r2', lines => '[{"line_no":1,"qty":1}]')$$, pg_temp.id('m1'))) AS refund_no_restock;
SELECT pg_temp.st('M-1');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'm1-r3', lines => '[{"line_no":2,"qty":2}]', restock => true)$$, pg_temp.id('m1'))) AS refund_restock;
SELECT pg_temp.st('M-2');
SELECT qty AS holdings FROM order_ext.buyer_holdings WHERE buyer_id = 20 AND sku = 'M-1';
-- a full refund by amount before shipping closes the order and releases the rest
SELECT pg_temp.mk('m2', 21, '[{"sku":"M-1","qty":2,"unit_price":100}]');
SELECT pg_temp.pay('m2');
SELECT pg_temp.st('M-1'), pg_temp.res('m2');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'm2-r', amount => 200)$$, pg_temp.id('m2'))) AS refund_all;
SELECT status FROM order_ext.orders WHERE order_id = pg_temp.id('m2');
SELECT pg_temp.st('M-1'), pg_temp.res('m2');
SELECT count(*) AS m2_holdings FROM order_ext.buyer_holdings WHERE buyer_id = 21 AND qty > 0;
-- an after-sale return restocks once: at receive_return, not again at refund
SELECT pg_temp.mk('m3', 22, '[{"sku":"M-1","qty":2,"unit_price":100}]');
SELECT pg_temp.pay('m3'), pg_temp.fire('m3', 'ship', 'merchant');
SELECT pg_temp.st('M-1');
SELECT order_ext.open_after_sale(pg_temp.id('m3'), 'return_refund', '[{"line_no":1,"qty":1}]', 'too small') AS as_id \gset
SELECT status FROM order_ext.fire_after_sale(:as_id, 'approve', actor => 'merchant');
SELECT status FROM order_ext.fire_after_sale(:as_id, 'receive_return', actor => 'merchant');
SELECT pg_temp.st('M-1');
SELECT status FROM order_ext.fire_after_sale(:as_id, 'refund', actor => 'merchant');
SELECT pg_temp.st('M-1');
-- split_order hands the reservations to the children; the parent holds none
SELECT pg_temp.mk('m4', 23, '[{"sku":"M-1","qty":1,"unit_price":100,"merchant_id":1},{"sku":"M-2","qty":3,"unit_price":10,"merchant_id":2}]');
SELECT pg_temp.pay('m4');
SELECT pg_temp.res('m4') AS before_split, pg_temp.st('M-1'), pg_temp.st('M-2');
SELECT count(*) AS children FROM order_ext.split_order(pg_temp.id('m4'));
SELECT pg_temp.res('m4') AS parent_holds,
       (SELECT string_agg(r.sku || ':' || r.qty, ' ' ORDER BY r.sku) FROM order_ext.reservations r
        JOIN order_ext.orders c ON c.order_id = r.order_id WHERE c.parent_id = pg_temp.id('m4')) AS children_hold;
SELECT qty AS holdings FROM order_ext.buyer_holdings WHERE buyer_id = 23 AND sku = 'M-1';
-- each child ships its own units
SELECT count(*) AS shipped FROM order_ext.orders c,
       LATERAL order_ext.fire(c.order_id, 'ship', actor => 'merchant') f
WHERE c.parent_id = pg_temp.id('m4');
SELECT pg_temp.st('M-1'), pg_temp.st('M-2');
SELECT * FROM order_ext.check_stock();

--------------------------------------------------------------------------
-- purchase limits with a user machine that holds (stock:release) and
-- resumes (stock:reserve): the units count off at the hold, on again at the
-- resume (OE005 if the buyer holds too much by then), and a close after a
-- hold does not take them off twice (it took other orders' units off the
-- buyer's count, letting the buyer past the limit); setting the limit again
-- counts the same way (the last stock effect of each order's timeline), also
-- for a status of the machine's own that ends orders (voided)
--------------------------------------------------------------------------
INSERT INTO order_ext.machines VALUES ('holdm', 'pending_payment', '{completed,cancelled,closed,voided}', 'hold and resume');
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects) VALUES
    ('holdm', 'pending_payment', 'pay', 'paid', '{system}', '{stamp:paid_at,stock:reserve}'),
    ('holdm', 'pending_payment', 'cancel', 'cancelled', '{buyer,system}', '{stamp:closed_at,stock:release}'),
    ('holdm', 'paid', 'hold', 'on_hold', '{merchant}', '{stock:release}'),
    ('holdm', 'on_hold', 'resume', 'paid', '{merchant}', '{stock:reserve}'),
    ('holdm', 'paid', 'void', 'voided', '{merchant}', '{stock:release}'),
    ('holdm', 'on_hold', 'close', 'closed', '{system}', '{stamp:closed_at,stock:release}'),
    ('holdm', 'paid', 'close', 'closed', '{system}', '{stamp:closed_at,stock:release}');
SELECT count(*) AS problems FROM order_ext.validate_machine('holdm');
SELECT order_ext.set_stock('HM', 100) IS NOT NULL AS tracked, order_ext.set_purchase_limit('HM', 4);
CREATE FUNCTION pg_temp.mkm(tag text, machine text, qty int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := order_ext.new_order_id();
    r text;
BEGIN
    r := pg_temp.err(format('SELECT order_ext.create_order(%s, 60, %L, machine => %L)', new_id,
                            jsonb_build_array(jsonb_build_object('sku', 'HM', 'qty', qty, 'unit_price', 10)), machine));
    IF r = 'ok' THEN
        INSERT INTO pg_temp.o VALUES (tag, new_id);
    END IF;
    RETURN r;
END $$;
CREATE FUNCTION pg_temp.held() RETURNS bigint LANGUAGE sql AS
$$ SELECT coalesce(sum(qty), 0) FROM order_ext.buyer_holdings WHERE buyer_id = 60 AND sku = 'HM' $$;
SELECT pg_temp.mkm('hm1', 'holdm', 2) AS hm1, pg_temp.mkm('hm2', 'physical', 2) AS hm2;
SELECT pg_temp.held() AS held;
SELECT pg_temp.pay('hm1') AS paid, pg_temp.fire('hm1', 'hold', 'merchant') AS hold, pg_temp.held() AS held_on_hold;
SELECT pg_temp.fire('hm1', 'resume', 'merchant') AS resume, pg_temp.held() AS held_resumed;
SELECT pg_temp.fire('hm1', 'hold', 'merchant') AS hold_again, pg_temp.held() AS held_on_hold_again;
-- refunded in full while on hold: closes (stock:release), nothing more comes off
SELECT status FROM order_ext.refund(pg_temp.id('hm1'), 'hm1-all', amount => 20);
SELECT pg_temp.held() AS held_closed;
SELECT pg_temp.mkm('hm3', 'physical', 3) AS over_the_limit;
-- a resume that would take the buyer past the limit is refused
SELECT pg_temp.mkm('hm4', 'holdm', 2) AS hm4;
SELECT pg_temp.pay('hm4') AS paid, pg_temp.fire('hm4', 'hold', 'merchant') AS hold, pg_temp.held() AS held;
SELECT pg_temp.mkm('hm5', 'physical', 2) AS hm5, pg_temp.held() AS held;
SELECT pg_temp.fire('hm4', 'resume', 'merchant') AS resume_over_the_limit, pg_temp.held() AS held;
-- voided (a status of the machine's own) stops counting, at run time and
-- when the limit is set again
SELECT pg_temp.fire('hm5', 'cancel', 'buyer') AS hm5_cancelled, pg_temp.mkm('hm6', 'holdm', 1) AS hm6;
SELECT pg_temp.pay('hm6') AS paid, pg_temp.held() AS held;
SELECT pg_temp.fire('hm6', 'void', 'merchant') AS void, pg_temp.held() AS held_voided;
SELECT order_ext.set_purchase_limit('HM', 4);
SELECT pg_temp.held() AS held_counted_again;
-- a transition with both effects: release wins (as the timeline reads it),
-- so an order on hold that goes through it stays uncounted
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects) VALUES
    ('holdm', 'on_hold', 'recheck', 'on_hold', '{merchant}', '{stock:reserve,stock:release}');
SELECT pg_temp.mkm('hm7', 'holdm', 1) AS hm7;
SELECT pg_temp.pay('hm7') AS paid, pg_temp.fire('hm7', 'hold', 'merchant') AS hold, pg_temp.held() AS held;
SELECT pg_temp.fire('hm7', 'recheck', 'merchant') AS recheck, pg_temp.held() AS held_after_recheck;
SELECT order_ext.set_purchase_limit('HM', 4);
SELECT pg_temp.held() AS held_counted_again;
-- a machine that reopens a cancelled order (a way out of a terminal
-- status): the second cancel takes nothing off again (it took the units of
-- the buyer's other order off, letting the buyer past the limit)
INSERT INTO order_ext.machines VALUES ('reopenm', 'pending_payment', '{cancelled,completed}', NULL);
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects) VALUES
    ('reopenm', 'pending_payment', 'cancel', 'cancelled', '{buyer}', '{stamp:closed_at,stock:release}'),
    ('reopenm', 'cancelled', 'reopen', 'pending_payment', '{buyer}', '{}'),
    ('reopenm', 'pending_payment', 'pay', 'completed', '{system}', '{stamp:paid_at,stock:commit}');
SELECT order_ext.set_purchase_limit('HM', 2);
SELECT pg_temp.fire('hm2', 'cancel', 'buyer') AS hm2_cancelled, pg_temp.held() AS held;
SELECT pg_temp.mkm('ro1', 'reopenm', 2) AS ro1;
SELECT pg_temp.held() AS held;
SELECT pg_temp.fire('ro1', 'cancel', 'buyer') AS cancel, pg_temp.held() AS held_cancelled;
SELECT pg_temp.fire('ro1', 'reopen', 'buyer') AS reopen, pg_temp.mkm('ro2', 'physical', 2) AS ro2;
SELECT pg_temp.held() AS held;
SELECT pg_temp.fire('ro1', 'cancel', 'buyer') AS cancel_again, pg_temp.held() AS held_cancelled_again;
SELECT pg_temp.mkm('ro3', 'physical', 2) AS over_the_limit;

DROP EXTENSION order_ext CASCADE;
