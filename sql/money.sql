--
-- money: record_payment() and refund()  (API.md "Money")
--
-- Ids and timestamps are never printed: orders are known by a tag (pg_temp.o),
-- and error messages have ids masked as <id>.  Stock-dependent checks
-- (a 'pay' refused for stock, restock) come with the stock module.
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';

-- err(sql): 'ok', or 'SQLSTATE: message' (ids masked)
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{13,}', '<id>', 'g');
END $$;

CREATE TEMP TABLE o (tag text PRIMARY KEY, id bigint NOT NULL UNIQUE);
CREATE FUNCTION pg_temp.id(tag text) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT id FROM pg_temp.o WHERE o.tag = $1 $$;

-- mk(tag, shipping_fee): the README's order: 3 lines, a coupon, a line discount
-- (item_total 5497, discount_total 1100, payable 5497 - 1100 + shipping)
CREATE FUNCTION pg_temp.mk(tag text, shipping bigint DEFAULT 800) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := order_ext.new_order_id();
BEGIN
    PERFORM order_ext.create_order(new_id, 42,
        '[{"sku":"A-1","qty":2,"unit_price":1999},
          {"sku":"B-2","qty":1,"unit_price":500},
          {"sku":"C",  "qty":3,"unit_price":333}]',
        discounts => '[{"kind":"coupon","code":"C10","amount":1000},
                       {"kind":"promo","amount":100,"line":2}]',
        shipping_fee => shipping);
    INSERT INTO pg_temp.o VALUES (tag, new_id);
    RETURN new_id;
END $$;

-- money(tag): the order's money and status, and what its rows say
CREATE FUNCTION pg_temp.money(tag text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT format('%s v%s payable=%s paid=%s refunded=%s | payments=%s refunds=%s events=%s outbox=%s',
                  r.status, r.version, r.payable_total, r.paid_total, r.refunded_total,
                  (SELECT coalesce(sum(amount), 0) FROM order_ext.order_payments p
                    WHERE p.order_id = r.order_id AND p.kind = 'payment'),
                  (SELECT coalesce(sum(amount), 0) FROM order_ext.order_payments p
                    WHERE p.order_id = r.order_id AND p.kind = 'refund'),
                  (SELECT count(*) FROM order_ext.order_events e WHERE e.order_id = r.order_id),
                  (SELECT count(*) FROM order_ext.outbox x WHERE x.order_id = r.order_id))
    FROM order_ext.orders r WHERE r.order_id = pg_temp.id($1)
$$;

-- lines(tag): refunded units and amounts per line
CREATE FUNCTION pg_temp.lines(tag text)
RETURNS TABLE (line_no int, qty int, net bigint, refunded_qty int, refunded_amount bigint)
LANGUAGE sql VOLATILE AS $$
    SELECT i.line_no, i.qty, i.qty * i.unit_price - i.discount_alloc, i.refunded_qty, i.refunded_amount
    FROM order_ext.order_items i WHERE i.order_id = pg_temp.id($1) ORDER BY i.line_no
$$;

--------------------------------------------------------------------------
-- record_payment: one row per txn_id; payments add up; 'pay' when paid
--------------------------------------------------------------------------

SELECT pg_temp.mk('p') IS NOT NULL AS created;
SELECT pg_temp.money('p');
-- 'pay' needs the money, whoever fires it
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay')$$, pg_temp.id('p'))) AS pay_unpaid;
-- balance first, then card: the card payment completes the order and fires
-- 'pay' in the same version (the payment rides on the transition)
SELECT status, version, paid_total FROM order_ext.record_payment(pg_temp.id('p'), 'BAL-1', 2000, 'balance');
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay')$$, pg_temp.id('p'))) AS pay_part_paid;
SELECT status, version, paid_total, paid_at IS NOT NULL AS paid_at
FROM order_ext.record_payment(pg_temp.id('p'), 'CARD-9', 3197, 'card');
SELECT pg_temp.money('p');
SELECT version, event, from_status, to_status, actor, payload FROM order_ext.timeline(pg_temp.id('p'));
SELECT kind, txn_id, method, amount FROM order_ext.order_payments
WHERE order_id = pg_temp.id('p') ORDER BY created_at, txn_id;
-- a repeated callback returns the order and changes nothing
SELECT status, version, paid_total FROM order_ext.record_payment(pg_temp.id('p'), 'BAL-1', 2000, 'balance');
SELECT status, version, paid_total FROM order_ext.record_payment(pg_temp.id('p'), 'CARD-9', 3197, 'card');
SELECT pg_temp.money('p');
-- the same txn_id with another amount or method: OE004
SELECT pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'CARD-9', 3198, 'card')$$, pg_temp.id('p'))) AS other_amount,
       pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'CARD-9', 3197, 'wechat')$$, pg_temp.id('p'))) AS other_method;
-- paying a paid order again: OE007 (it owes nothing)
SELECT pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'CARD-10', 1)$$, pg_temp.id('p'))) AS paid_twice;
SELECT pg_temp.money('p');

-- overpayment while awaiting payment: OE007, nothing written
SELECT pg_temp.mk('over') IS NOT NULL AS created;
SELECT status, paid_total FROM order_ext.record_payment(pg_temp.id('over'), 'O-1', 5000);
SELECT pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'O-2', 198)$$, pg_temp.id('over'))) AS overpay;
SELECT pg_temp.money('over');
-- exactly the rest: paid
SELECT status, paid_total FROM order_ext.record_payment(pg_temp.id('over'), 'O-2', 197);

-- bad arguments
SELECT pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'Z', 0)$$, pg_temp.id('over'))) AS zero,
       pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'Z', -5)$$, pg_temp.id('over'))) AS negative,
       pg_temp.err(format($$SELECT order_ext.record_payment(%s, '', 5)$$, pg_temp.id('over'))) AS empty_txn;
SELECT pg_temp.err($$SELECT order_ext.record_payment(NULL, 'Z', 5)$$) AS null_order,
       pg_temp.err(format($$SELECT order_ext.record_payment(%s, NULL, 5)$$, pg_temp.id('over'))) AS null_txn,
       pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'Z', NULL)$$, pg_temp.id('over'))) AS null_amount,
       pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'Z', 5, NULL)$$, pg_temp.id('over'))) AS null_method;
SELECT pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'Z', 5)$$, order_ext.new_order_id())) AS no_such_order;

-- a free order (payable 0) is paid by firing 'pay' directly
DO $$
DECLARE
    new_id bigint := order_ext.new_order_id();
BEGIN
    PERFORM order_ext.create_order(new_id, 42, '[{"sku":"GIFT","qty":1,"unit_price":300}]',
                                   discounts => '[{"kind":"voucher","amount":300}]');
    INSERT INTO pg_temp.o VALUES ('free', new_id);
END $$;
SELECT status, version, payable_total FROM order_ext.fire(pg_temp.id('free'), 'pay');

--------------------------------------------------------------------------
-- Late payments: the money is recorded, the status stays, refund_due
--------------------------------------------------------------------------

SELECT pg_temp.mk('late') IS NOT NULL AS created;
SELECT status, version FROM order_ext.fire(pg_temp.id('late'), 'cancel', actor => 'buyer');
SELECT status, version, paid_total FROM order_ext.record_payment(pg_temp.id('late'), 'LATE-1', 5197, 'card');
SELECT pg_temp.money('late');
SELECT version, event, payload FROM order_ext.outbox
WHERE order_id = pg_temp.id('late') ORDER BY id;
-- the callback repeated: nothing new, no second notice
SELECT status, version, paid_total FROM order_ext.record_payment(pg_temp.id('late'), 'LATE-1', 5197, 'card');
SELECT count(*) AS refund_due_notices FROM order_ext.outbox
WHERE order_id = pg_temp.id('late') AND event = 'refund_due';
-- a late payment can be any amount (it is all to be refunded)
SELECT status, paid_total FROM order_ext.record_payment(pg_temp.id('late'), 'LATE-2', 99999);
-- its units were never paid for: refund by amount
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'R-L0', '[{"line_no":1,"qty":1}]')$$, pg_temp.id('late'))) AS refund_units;
SELECT status, version, paid_total, refunded_total FROM order_ext.refund(pg_temp.id('late'), 'R-L1', amount => 5197);
SELECT status, version, paid_total, refunded_total FROM order_ext.refund(pg_temp.id('late'), 'R-L2', amount => 99999);
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'R-L3', amount => 1)$$, pg_temp.id('late'))) AS nothing_left;
SELECT pg_temp.money('late');

--------------------------------------------------------------------------
-- refund by lines: each unit at its net price, exactly
--------------------------------------------------------------------------

SELECT pg_temp.mk('r') IS NOT NULL AS created;
SELECT status FROM order_ext.record_payment(pg_temp.id('r'), 'R-PAY', 5197);
SELECT * FROM pg_temp.lines('r');
-- line 1: net 3257 over 2 units: the first unit refunds 1628, the second 1629
SELECT status, version, refunded_total FROM order_ext.refund(pg_temp.id('r'), 'RF-1', '[{"line_no":1,"qty":1}]');
SELECT * FROM pg_temp.lines('r');
-- idempotent on refund_id: the same request again changes nothing
SELECT status, version, refunded_total FROM order_ext.refund(pg_temp.id('r'), 'RF-1', '[{"line_no":1,"qty":1}]');
-- the same refund_id with another request: OE004
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-1', '[{"line_no":1,"qty":2}]')$$, pg_temp.id('r'))) AS other_lines,
       pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-1', '[{"line_no":1,"qty":1}]', restock => true)$$, pg_temp.id('r'))) AS other_restock,
       pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-1', amount => 1628)$$, pg_temp.id('r'))) AS as_amount;
-- more units than are left: OE006
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', '[{"line_no":1,"qty":2}]')$$, pg_temp.id('r'))) AS too_many_units,
       pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', '[{"line_no":3,"qty":2},{"line_no":3,"qty":2}]')$$, pg_temp.id('r'))) AS too_many_merged;
-- bad lines
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', '[{"line_no":4,"qty":1}]')$$, pg_temp.id('r'))) AS no_line_4,
       pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', '[{"line_no":1,"qty":0}]')$$, pg_temp.id('r'))) AS zero_qty,
       pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', '[{"line_no":1}]')$$, pg_temp.id('r'))) AS no_qty;
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', '[{"line":1,"qty":1}]')$$, pg_temp.id('r'))) AS misspelt,
       pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', '[]')$$, pg_temp.id('r'))) AS empty,
       pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', '{"line_no":1}')$$, pg_temp.id('r'))) AS not_array;
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2')$$, pg_temp.id('r'))) AS neither,
       pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', '[{"line_no":1,"qty":1}]', 5)$$, pg_temp.id('r'))) AS both,
       pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', amount => 0)$$, pg_temp.id('r'))) AS zero_amount,
       pg_temp.err(format($$SELECT order_ext.refund(%s, NULL, amount => 1)$$, pg_temp.id('r'))) AS null_refund_id;
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-2', amount => 1)$$, order_ext.new_order_id())) AS no_such_order;
-- refund ids of after-sales refunds are reserved: one taken here would make
-- that request's refund OE004, leaving it approved for good
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'after_sale:1', amount => 1)$$, pg_temp.id('r'))) AS reserved_refund_id;
SELECT pg_temp.money('r');
-- the rest in one refund, lines in any order: with the last unit comes the
-- shipping fee (not shipped), and the order closes
SELECT status, version, refunded_total, closed_at IS NOT NULL AS closed_at
FROM order_ext.refund(pg_temp.id('r'), 'RF-3', '[{"line_no":3,"qty":3},{"line_no":2,"qty":1},{"line_no":1,"qty":1}]');
SELECT * FROM pg_temp.lines('r');
SELECT pg_temp.money('r');
SELECT version, event, from_status, to_status, payload FROM order_ext.timeline(pg_temp.id('r')) WHERE version > 2;
SELECT txn_id, amount, detail FROM order_ext.order_payments
WHERE order_id = pg_temp.id('r') AND kind = 'refund' ORDER BY txn_id;
-- nothing is left to refund
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'RF-4', amount => 1)$$, pg_temp.id('r'))) AS after_full;

--------------------------------------------------------------------------
-- Shipped: the last unit does not bring the shipping fee; the order
-- closes when every unit is back, and the fee can be refunded by amount
--------------------------------------------------------------------------

SELECT pg_temp.mk('s') IS NOT NULL AS created;
SELECT status FROM order_ext.record_payment(pg_temp.id('s'), 'S-PAY', 5197);
SELECT status FROM order_ext.fire(pg_temp.id('s'), 'ship', actor => 'merchant');
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('s'), 'S-1', '[{"line_no":2,"qty":1}]');
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('s'), 'S-2', '[{"line_no":1,"qty":2},{"line_no":3,"qty":3}]');
SELECT pg_temp.money('s');
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('s'), 'S-3', amount => 800);
SELECT pg_temp.money('s');

--------------------------------------------------------------------------
-- By amount: a partial refund (a price adjustment), then units: the units
-- cannot together return more than was paid (OE006); a full refund by
-- amount closes the order
--------------------------------------------------------------------------

SELECT pg_temp.mk('a', 0) IS NOT NULL AS created;
SELECT status FROM order_ext.record_payment(pg_temp.id('a'), 'A-PAY', 4397);
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('a'), 'A-1', amount => 1000);
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('a'), 'A-2', '[{"line_no":1,"qty":2}]');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'A-3', '[{"line_no":2,"qty":1},{"line_no":3,"qty":3}]')$$, pg_temp.id('a'))) AS exceeds;
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'A-3', amount => 141)$$, pg_temp.id('a'))) AS exceeds_by_1;
SELECT status, refunded_total, closed_at IS NOT NULL AS closed_at FROM order_ext.refund(pg_temp.id('a'), 'A-3', amount => 140);
SELECT pg_temp.money('a');

-- a unit whose net price is 0 (fully discounted) refunds 0: recorded all the same
DO $$
DECLARE
    new_id bigint := order_ext.new_order_id();
BEGIN
    PERFORM order_ext.create_order(new_id, 42,
        '[{"sku":"GIFT","qty":1,"unit_price":300},{"sku":"BOOK","qty":1,"unit_price":1000}]',
        discounts => '[{"kind":"gift","amount":300,"line":1}]');
    INSERT INTO pg_temp.o VALUES ('gift', new_id);
END $$;
SELECT status FROM order_ext.record_payment(pg_temp.id('gift'), 'G-PAY', 1000);
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('gift'), 'G-1', '[{"line_no":1,"qty":1}]');
SELECT txn_id, amount FROM order_ext.order_payments WHERE order_id = pg_temp.id('gift') AND kind = 'refund';
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('gift'), 'G-2', '[{"line_no":2,"qty":1}]');

-- an order awaiting the rest of its payment can hand back what it got, by
-- amount; it stays pending (no 'close' from pending_payment)
SELECT pg_temp.mk('pend') IS NOT NULL AS created;
SELECT status FROM order_ext.record_payment(pg_temp.id('pend'), 'PD-1', 1000);
SELECT status, paid_total, refunded_total FROM order_ext.refund(pg_temp.id('pend'), 'PD-R', amount => 1000);
-- and then pay in full: what is owed is payable - (paid - refunded)
SELECT pg_temp.err(format($$SELECT order_ext.record_payment(%s, 'PD-2', 5198)$$, pg_temp.id('pend'))) AS overpay;
SELECT status, paid_total, refunded_total FROM order_ext.record_payment(pg_temp.id('pend'), 'PD-2', 5197);

-- an order that ends keeping part of a payment (paid in part, then
-- cancelled or expired): a refund_due event says what is to be refunded;
-- one with nothing left of its money, or nothing paid, has none
SELECT pg_temp.mk('part') IS NOT NULL AS created, pg_temp.mk('part_back') IS NOT NULL AS created_2,
       pg_temp.mk('unpaid') IS NOT NULL AS created_3;
SELECT status FROM order_ext.record_payment(pg_temp.id('part'), 'PT-1', 2000);
SELECT status FROM order_ext.record_payment(pg_temp.id('part_back'), 'PB-1', 2000);
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('part_back'), 'PB-R', amount => 2000);
SELECT status FROM order_ext.fire(pg_temp.id('part'), 'cancel', actor => 'buyer');
SELECT status FROM order_ext.fire(pg_temp.id('part_back'), 'cancel', actor => 'buyer');
SELECT status FROM order_ext.fire(pg_temp.id('unpaid'), 'expire');
SELECT o.tag, x.version, x.payload
FROM pg_temp.o o JOIN order_ext.outbox x ON x.order_id = o.id AND x.event = 'refund_due'
WHERE o.tag IN ('part', 'part_back', 'unpaid') ORDER BY o.tag;
SELECT status, paid_total, refunded_total FROM order_ext.refund(pg_temp.id('part'), 'PT-R', amount => 2000);

--------------------------------------------------------------------------
-- An application role (grant_app) does all of this through the functions
--------------------------------------------------------------------------

SET client_min_messages = warning;
DROP ROLE IF EXISTS oe_regress_money_app;
RESET client_min_messages;
CREATE ROLE oe_regress_money_app;
SELECT order_ext.grant_app('oe_regress_money_app');
SELECT pg_temp.mk('app') IS NOT NULL AS created;
GRANT SELECT ON pg_temp.o TO oe_regress_money_app;
SET ROLE oe_regress_money_app;
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay')$$, pg_temp.id('app'))) AS pay_without_money;
SELECT status FROM order_ext.record_payment(pg_temp.id('app'), 'APP-1', 5197);
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('app'), 'APP-R', '[{"line_no":2,"qty":1}]');
SELECT (order_ext.fire_after_sale(order_ext.open_after_sale(pg_temp.id('app'), 'refund_only', '[{"line_no":3,"qty":1}]'),
                                   'approve', actor => 'merchant')).status AS after_sale;
SELECT count(*) > 0 AS reads_events FROM order_ext.read_events('oe_regress_money_app');
SELECT pg_temp.err(format($$UPDATE order_ext.orders SET paid_total = 0 WHERE order_id = %s$$, pg_temp.id('app'))) AS write_orders,
       pg_temp.err($$DELETE FROM order_ext.outbox$$) AS write_outbox,
       pg_temp.err($$SELECT order_ext.prune_outbox()$$) AS prune;
RESET ROLE;
SELECT order_ext.unregister_consumer('oe_regress_money_app');
REVOKE ALL ON pg_temp.o FROM oe_regress_money_app;

-- every error above left nothing behind: the totals agree with the rows
SELECT o.tag, r.paid_total = coalesce(p.paid, 0) AS paid_ok, r.refunded_total = coalesce(p.refunded, 0) AS refunded_ok,
       r.refunded_total <= r.paid_total AS within
FROM pg_temp.o o JOIN order_ext.orders r ON r.order_id = o.id
LEFT JOIN (SELECT order_id, sum(amount) FILTER (WHERE kind = 'payment') AS paid,
                  sum(amount) FILTER (WHERE kind = 'refund') AS refunded
           FROM order_ext.order_payments GROUP BY order_id) p ON p.order_id = o.id
ORDER BY o.tag;

--------------------------------------------------------------------------
-- A user machine whose 'pay' has a guard, or no 'system' actor: a payment
-- that cannot fire it is still recorded (API.md: the gateway's money is
-- never dropped; it was OE001 and no payment row), and the order keeps the
-- money for a 'pay' fired later, so nothing is due back yet (no
-- refund_due: the transition that ends an unpaid order says it)
--------------------------------------------------------------------------
INSERT INTO order_ext.machines VALUES ('guarded', 'new', '{done,dead}', NULL), ('by_hand', 'new', '{done}', NULL);
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects, requires) VALUES
    ('guarded', 'new', 'pay', 'paid', '{system}', '{stamp:paid_at}', '{"verified": true}'),
    ('guarded', 'new', 'cancel', 'dead', '{buyer,system}', '{stamp:closed_at,stock:release}', NULL),
    ('guarded', 'paid', 'finish', 'done', '{system}', '{stamp:completed_at}', NULL),
    ('guarded', 'new', 'modify', 'new', '{system}', '{merge_attrs}', NULL),
    ('by_hand', 'new', 'pay', 'done', '{merchant}', '{stamp:paid_at}', NULL);
SELECT order_ext.new_order_id() AS g1 \gset
SELECT order_ext.new_order_id() AS g2 \gset
SELECT status FROM order_ext.create_order(:g1, 1, '[{"sku":"G-1","qty":1,"unit_price":100}]', machine => 'guarded');
SELECT status FROM order_ext.create_order(:g2, 1, '[{"sku":"G-1","qty":1,"unit_price":100}]', machine => 'by_hand');
SELECT status, version, paid_total FROM order_ext.record_payment(:g1, 'GW-1', 100);
SELECT status, version, paid_total FROM order_ext.record_payment(:g2, 'GW-2', 100);
SELECT o.order_id = :g1 AS guarded, p.amount,
       (SELECT regexp_replace(x.payload->>'reason', '\d{13,}', '<id>') FROM order_ext.outbox x
        WHERE x.order_id = o.order_id AND x.event = 'refund_due') AS refund_due
FROM order_ext.orders o JOIN order_ext.order_payments p USING (order_id)
WHERE o.order_id IN (:g1, :g2) ORDER BY 1 DESC;
-- once the guard holds, pay fires with the money already there
SELECT status, version FROM order_ext.fire(:g1, 'modify', actor => 'system', payload => '{"attrs": {"verified": true}}');
SELECT status, version, paid_total FROM order_ext.fire(:g1, 'pay', actor => 'system');
SELECT status, version, paid_total FROM order_ext.fire(:g2, 'pay', actor => 'merchant');
SELECT count(*) AS refund_due_notices FROM order_ext.outbox WHERE order_id IN (:g1, :g2) AND event = 'refund_due';
-- a 'pay' defined twice is the machine's error (validate_machine reports
-- it), not a refusal: the call fails and no payment is recorded
INSERT INTO order_ext.machines VALUES ('dup_pay', 'new', '{done}', NULL);
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors) VALUES
    ('dup_pay', 'new', 'pay', 'done', '{merchant}'), ('dup_pay', 'new', 'pay', 'done', '{system}');
SELECT order_ext.new_order_id() AS g3 \gset
SELECT status FROM order_ext.create_order(:g3, 1, '[{"sku":"G-1","qty":1,"unit_price":100}]', machine => 'dup_pay');
SELECT regexp_replace(pg_temp.err(format('SELECT order_ext.record_payment(%s, %L, 100)', :g3, 'GW-3')), '\d{13,}', '<id>', 'g') AS dup_pay;
SELECT count(*) AS dup_pay_payments FROM order_ext.order_payments WHERE order_id = :g3;

DROP EXTENSION order_ext CASCADE;
DROP OWNED BY oe_regress_money_app;
DROP ROLE oe_regress_money_app;
