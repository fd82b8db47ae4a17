--
-- after_sales: open_after_sale(), fire_after_sale() on machine after_sale,
-- auto-approval by timer, the refund through refund()  (API.md "Money")
--
-- Ids and timestamps are never printed.  Restock on receive_return is the
-- stock module's (StockReturnLines); the end of this file checks it.
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';
SET IntervalStyle = 'postgres';

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

-- mk(tag, paid, shipped): 2 lines (net 3257 over 2 units, 326 over 1), shipping 800
CREATE FUNCTION pg_temp.mk(tag text, pay boolean DEFAULT true, ship boolean DEFAULT true)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := order_ext.new_order_id();
BEGIN
    PERFORM order_ext.create_order(new_id, 42,
        '[{"sku":"A-1","qty":2,"unit_price":1999},{"sku":"B-2","qty":1,"unit_price":500}]',
        discounts => '[{"kind":"coupon","amount":916}]', shipping_fee => 800);
    IF pay THEN
        PERFORM order_ext.record_payment(new_id, 'PAY-' || tag, 4382);
    END IF;
    IF ship THEN
        PERFORM order_ext.fire(new_id, 'ship', actor => 'merchant');
    END IF;
    INSERT INTO pg_temp.o VALUES (tag, new_id);
    RETURN new_id;
END $$;

-- an after-sale request by tag
CREATE TEMP TABLE a (tag text PRIMARY KEY, id bigint NOT NULL UNIQUE);
CREATE FUNCTION pg_temp.aid(tag text) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT id FROM pg_temp.a WHERE a.tag = $1 $$;
CREATE FUNCTION pg_temp.open(tag text, order_tag text, kind text, lines jsonb, reason text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := order_ext.open_after_sale(pg_temp.id(order_tag), kind, lines, reason);
BEGIN
    INSERT INTO pg_temp.a VALUES (tag, new_id);
    RETURN (SELECT format('%s %s v%s lines=%s amount=%s', s.kind, s.status, s.version, s.lines, s.amount)
            FROM order_ext.after_sales s WHERE s.id = new_id);
END $$;
-- fire(tag, event, expected, actor): 'status vN amount', or the error
CREATE FUNCTION pg_temp.fire(tag text, event text, expected int DEFAULT NULL, actor text DEFAULT 'merchant')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r order_ext.after_sales;
BEGIN
    r := order_ext.fire_after_sale(pg_temp.aid(tag), event, expected, actor);
    RETURN format('%s v%s amount=%s refund_id=%s', r.status, r.version, r.amount,
                  regexp_replace(r.refund_id, '\d{13,}', '<id>'));
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{13,}', '<id>', 'g');
END $$;
CREATE FUNCTION pg_temp.money(tag text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT format('%s v%s paid=%s refunded=%s', r.status, r.version, r.paid_total, r.refunded_total)
    FROM order_ext.orders r WHERE r.order_id = pg_temp.id($1)
$$;

--------------------------------------------------------------------------
-- return_refund: requested -> approved -> returned -> refunded
--------------------------------------------------------------------------

SELECT pg_temp.mk('o1') IS NOT NULL AS created;
SELECT pg_temp.open('ret', 'o1', 'return_refund', '[{"line_no":1,"qty":1}]', 'too small');
SELECT reason, refund_id IS NULL AS no_refund_yet FROM order_ext.after_sales WHERE id = pg_temp.aid('ret');
-- its timer: approve 5 days after it was opened
SELECT t.subject, t.status, t.version, t.event, t.due_at - s.created_at AS due_after
FROM order_ext.timers t JOIN order_ext.after_sales s ON s.id = t.subject_id
WHERE t.subject = 'after_sale' AND t.subject_id = pg_temp.aid('ret');
-- the buyer cannot approve; a stale version is OE002
SELECT pg_temp.fire('ret', 'approve', actor => 'buyer') AS by_buyer,
       pg_temp.fire('ret', 'approve', 7) AS stale,
       pg_temp.fire('ret', 'refund') AS refund_before_approval,
       pg_temp.fire('ret', 'approve', actor => 'internal') AS internal;
SELECT pg_temp.fire('ret', 'approve', 1);
-- a return_refund is refunded after the goods are back: refund now is OE001 (guard)
SELECT pg_temp.fire('ret', 'refund');
SELECT pg_temp.fire('ret', 'receive_return');
SELECT pg_temp.money('o1');
SELECT pg_temp.fire('ret', 'refund');
SELECT pg_temp.money('o1');
-- the refund is the order's, through refund(): event, ledger row, line
SELECT version, event, actor, regexp_replace(payload::text, '\d{13,}', '<id>', 'g') AS payload
FROM order_ext.timeline(pg_temp.id('o1')) WHERE event = 'refund';
SELECT regexp_replace(txn_id, '\d{13,}', '<id>') AS txn_id, amount
FROM order_ext.order_payments WHERE order_id = pg_temp.id('o1') AND kind = 'refund';
SELECT line_no, refunded_qty, refunded_amount FROM order_ext.order_items
WHERE order_id = pg_temp.id('o1') ORDER BY line_no;
-- refunded is terminal
SELECT pg_temp.fire('ret', 'refund') AS again, pg_temp.fire('ret', 'approve') AS approve_again;
-- every move was an outbox notice, with the request's amount as its row
-- had it after the move (what the units would refund; once refunded, what
-- was)
SELECT event, payload->>'event' AS as_event, payload->>'from_status' AS from_status,
       payload->>'to_status' AS to_status, payload->>'actor' AS actor, payload->'version' AS version,
       payload->'amount' AS amount
FROM order_ext.outbox
WHERE order_id = pg_temp.id('o1') AND event = 'after_sale' ORDER BY id;

--------------------------------------------------------------------------
-- refund_only; the rest of the order; the order closes when all is back
--------------------------------------------------------------------------

SELECT pg_temp.open('rest', 'o1', 'refund_only', '[{"line_no":2,"qty":1},{"line_no":1,"qty":1}]');
-- a return step for a refund_only request: OE001 (guard)
SELECT pg_temp.fire('rest', 'approve');
SELECT pg_temp.fire('rest', 'receive_return');
SELECT pg_temp.fire('rest', 'refund', actor => 'system');
-- shipped: the shipping fee is not refunded with the last unit; the order closed
SELECT pg_temp.money('o1');

--------------------------------------------------------------------------
-- reject, appeal, arbitration by the platform
--------------------------------------------------------------------------

SELECT pg_temp.mk('o2') IS NOT NULL AS created;
SELECT pg_temp.open('arb', 'o2', 'refund_only', '[{"line_no":2,"qty":1}]');
SELECT pg_temp.fire('arb', 'reject');
SELECT pg_temp.fire('arb', 'appeal') AS merchant_appeals;
SELECT pg_temp.fire('arb', 'appeal', actor => 'buyer');
SELECT pg_temp.fire('arb', 'approve') AS merchant_decides;
SELECT pg_temp.fire('arb', 'approve', actor => 'platform');
SELECT pg_temp.fire('arb', 'refund');
SELECT pg_temp.money('o2');

--------------------------------------------------------------------------
-- Auto-approval: the 'approve' timer fires through run_timers
--------------------------------------------------------------------------

SELECT pg_temp.mk('o3') IS NOT NULL AS created;
SELECT pg_temp.open('auto', 'o3', 'refund_only', '[{"line_no":1,"qty":2}]');
SELECT pg_temp.open('acted', 'o3', 'refund_only', '[{"line_no":2,"qty":1}]');
-- the merchant rejects one in time: its timer is stale and dropped
SELECT pg_temp.fire('acted', 'reject');
-- five days pass (the rejected one's appeal window, 15 days, has not)
UPDATE order_ext.timers SET due_at = now() - interval '1 second'
WHERE subject = 'after_sale' AND order_id = pg_temp.id('o3') AND due_at <= now() + interval '5 days';
SELECT order_ext.run_timers() AS fired;
SELECT a.tag, s.status, s.version FROM pg_temp.a a JOIN order_ext.after_sales s ON s.id = a.id
WHERE a.tag IN ('auto', 'acted') ORDER BY a.tag;
-- fifteen days after the rejection, the appeal window closes it: a
-- terminal status, so it claims nothing and no longer keeps its order live
SELECT event, due_at - now() > interval '14 days' AS in_15_days FROM order_ext.timers
WHERE subject = 'after_sale' AND subject_id = (SELECT id FROM pg_temp.a WHERE tag = 'acted');
UPDATE order_ext.timers SET due_at = now() - interval '1 second'
WHERE subject = 'after_sale' AND subject_id = (SELECT id FROM pg_temp.a WHERE tag = 'acted');
SELECT order_ext.run_timers() AS fired;
SELECT s.status, s.version, pg_temp.fire('acted', 'appeal', actor => 'buyer') AS appeal_after_window
FROM order_ext.after_sales s WHERE s.id = (SELECT id FROM pg_temp.a WHERE tag = 'acted');
SELECT payload->>'actor' AS actor, payload->>'to_status' AS to_status FROM order_ext.outbox
WHERE order_id = pg_temp.id('o3') AND event = 'after_sale' AND payload->>'event' = 'approve';
SELECT count(*) AS timers_left FROM order_ext.timers WHERE subject = 'after_sale' AND order_id = pg_temp.id('o3');
SELECT pg_temp.fire('auto', 'refund');
SELECT pg_temp.money('o3');

--------------------------------------------------------------------------
-- Opening: only for paid orders that are still open, units still there
--------------------------------------------------------------------------

SELECT pg_temp.mk('unpaid', false, false) IS NOT NULL AS created;
SELECT pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":1,"qty":1}]')$$, pg_temp.id('unpaid'))) AS unpaid;
SELECT status FROM order_ext.fire(pg_temp.id('unpaid'), 'cancel', actor => 'buyer');
SELECT pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":1,"qty":1}]')$$, pg_temp.id('unpaid'))) AS cancelled_order,
       pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":1,"qty":1}]')$$, pg_temp.id('o1'))) AS closed_order;
SELECT pg_temp.mk('o4', true, false) IS NOT NULL AS created;
SELECT pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'exchange', '[{"line_no":1,"qty":1}]')$$, pg_temp.id('o4'))) AS bad_kind,
       pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":1,"qty":3}]')$$, pg_temp.id('o4'))) AS too_many,
       pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":9,"qty":1}]')$$, pg_temp.id('o4'))) AS no_line,
       pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[]')$$, pg_temp.id('o4'))) AS no_lines;
SELECT pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":1,"qty":1}]')$$, order_ext.new_order_id())) AS no_order,
       pg_temp.err($$SELECT order_ext.open_after_sale(NULL, 'refund_only', '[{"line_no":1,"qty":1}]')$$) AS null_order,
       pg_temp.err(format($$SELECT order_ext.fire_after_sale(%s, 'approve')$$, order_ext.new_order_id())) AS no_after_sale;
-- not shipped yet: the whole order back by after-sales brings the shipping fee
SELECT pg_temp.open('all', 'o4', 'refund_only', '[{"line_no":1,"qty":2},{"line_no":2,"qty":1}]');
SELECT pg_temp.fire('all', 'approve');
SELECT pg_temp.fire('all', 'refund');
SELECT pg_temp.money('o4');
-- a refund by lines of units a request under way claims is refused (OE006):
-- the request refunds them (and a return would restock them twice)
SELECT pg_temp.mk('o5', true, false) IS NOT NULL AS created;
SELECT pg_temp.open('twice', 'o5', 'refund_only', '[{"line_no":2,"qty":1}]');
-- units held by a request under way cannot be asked for again (OE006);
-- a rejected request no longer holds them
SELECT pg_temp.open('first', 'o5', 'refund_only', '[{"line_no":1,"qty":1}]');
SELECT pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":1,"qty":2}]')$$, pg_temp.id('o5'))) AS claimed,
       pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'return_refund', '[{"line_no":2,"qty":1}]')$$, pg_temp.id('o5'))) AS claimed_2;
SELECT pg_temp.fire('first', 'reject');
SELECT pg_temp.open('second', 'o5', 'refund_only', '[{"line_no":1,"qty":2}]');
-- and appealed, it claims them again: refused now that 'second' holds them
SELECT pg_temp.fire('first', 'appeal', actor => 'buyer') AS appeal_after_units_taken;
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'direct', '[{"line_no":2,"qty":1}]')$$, pg_temp.id('o5'))) AS direct_refund_of_claimed;
SELECT pg_temp.fire('twice', 'approve');
SELECT pg_temp.fire('twice', 'refund');
SELECT status, version FROM order_ext.after_sales WHERE id = pg_temp.aid('twice');
-- an order with a request under way, or a rejected one (it can be appealed),
-- is not split: the request's units would come back to the parent, whose
-- reservations the children hold
SELECT pg_temp.mk('o7', true, false) IS NOT NULL AS created;
SELECT pg_temp.open('before_split', 'o7', 'refund_only', '[{"line_no":1,"qty":1}]');
SELECT pg_temp.err(format($$SELECT order_ext.split_order(%s, 'merchant')$$, pg_temp.id('o7'))) AS split_with_request;
SELECT pg_temp.fire('before_split', 'reject');
SELECT pg_temp.err(format($$SELECT order_ext.split_order(%s, 'merchant')$$, pg_temp.id('o7'))) AS split_with_rejected;

--------------------------------------------------------------------------
-- Stock: a returned unit is restocked once
--------------------------------------------------------------------------

SELECT order_ext.set_stock('AS-S', 5) IS NOT NULL AS stocked;
INSERT INTO pg_temp.o SELECT 'o6', order_ext.new_order_id();
SELECT status FROM order_ext.create_order(pg_temp.id('o6'), 44, '[{"sku":"AS-S","qty":1,"unit_price":1000}]');
SELECT status FROM order_ext.record_payment(pg_temp.id('o6'), 'PAY-o6', 1000);
SELECT status FROM order_ext.fire(pg_temp.id('o6'), 'ship', actor => 'merchant');
SELECT on_hand, reserved FROM order_ext.stock WHERE sku = 'AS-S';
SELECT pg_temp.open('ret6', 'o6', 'return_refund', '[{"line_no":1,"qty":1}]');
SELECT pg_temp.fire('ret6', 'approve');
SELECT pg_temp.fire('ret6', 'receive_return');
SELECT on_hand, reserved FROM order_ext.stock WHERE sku = 'AS-S';
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'direct6', '[{"line_no":1,"qty":1}]', restock => true)$$, pg_temp.id('o6'))) AS direct_refund_restocking;
SELECT pg_temp.fire('ret6', 'refund');
SELECT on_hand, reserved FROM order_ext.stock WHERE sku = 'AS-S';
SELECT count(*) AS check_stock_rows FROM order_ext.check_stock();
-- restock puts back only units that left the warehouse: an order closed
-- before shipping gave its units back when it closed, so a later refund of
-- its free unit by lines, with restock, adds none
SELECT order_ext.set_stock('AS-G', 3) IS NOT NULL AS stocked_gift;
INSERT INTO pg_temp.o SELECT 'o8', order_ext.new_order_id();
SELECT status FROM order_ext.create_order(pg_temp.id('o8'), 45,
    '[{"sku":"AS-S","qty":1,"unit_price":1000,"merchant_id":1},{"sku":"AS-G","qty":1,"unit_price":0,"merchant_id":2}]');
SELECT status FROM order_ext.record_payment(pg_temp.id('o8'), 'PAY-o8', 1000);
SELECT sku, on_hand, reserved FROM order_ext.stock WHERE sku IN ('AS-S', 'AS-G') ORDER BY sku;
SELECT status FROM order_ext.refund(pg_temp.id('o8'), 'all8', amount => 1000);
SELECT sku, on_hand, reserved FROM order_ext.stock WHERE sku IN ('AS-S', 'AS-G') ORDER BY sku;
SELECT status FROM order_ext.refund(pg_temp.id('o8'), 'gift8', '[{"line_no":2,"qty":1}]', restock => true);
SELECT sku, on_hand, reserved FROM order_ext.stock WHERE sku IN ('AS-S', 'AS-G') ORDER BY sku;
-- nor do the units of an order whose stock was released leave the buyer's
-- purchase-limit holdings twice: buyer 47 holds 2 of AS-G (limit 2) in two
-- orders; one closes (1 left), and refunding its free unit then keeps 1
SELECT order_ext.set_purchase_limit('AS-G', 2) IS NOT NULL AS limited;
INSERT INTO pg_temp.o SELECT 'o10', order_ext.new_order_id();
INSERT INTO pg_temp.o SELECT 'o11', order_ext.new_order_id();
SELECT status FROM order_ext.create_order(pg_temp.id('o10'), 47, '[{"sku":"AS-G","qty":1,"unit_price":0}]');
SELECT status FROM order_ext.create_order(pg_temp.id('o11'), 47,
    '[{"sku":"AS-S","qty":1,"unit_price":1000},{"sku":"AS-G","qty":1,"unit_price":0}]');
SELECT status FROM order_ext.record_payment(pg_temp.id('o11'), 'PAY-o11', 1000);
SELECT qty AS holds FROM order_ext.buyer_holdings WHERE buyer_id = 47 AND sku = 'AS-G';
SELECT status FROM order_ext.refund(pg_temp.id('o11'), 'all11', amount => 1000);
SELECT qty AS holds FROM order_ext.buyer_holdings WHERE buyer_id = 47 AND sku = 'AS-G';
SELECT status FROM order_ext.refund(pg_temp.id('o11'), 'gift11', '[{"line_no":2,"qty":1}]');
SELECT qty AS holds FROM order_ext.buyer_holdings WHERE buyer_id = 47 AND sku = 'AS-G';
-- so the limit still holds: 1 held, 2 more would be 3
SELECT pg_temp.err(format($$SELECT order_ext.create_order(%s, 47, '[{"sku":"AS-G","qty":2,"unit_price":0}]')$$, order_ext.new_order_id())) AS over_limit;
-- a return received for an order that never shipped restocks nothing
-- either (its units are still reserved; the refund releases them).  The
-- order cannot close before by a refund by amount: the money is the
-- request's (OE006, below)
INSERT INTO pg_temp.o SELECT 'o12', order_ext.new_order_id();
SELECT status FROM order_ext.create_order(pg_temp.id('o12'), 48, '[{"sku":"AS-S","qty":1,"unit_price":1000}]');
SELECT status FROM order_ext.record_payment(pg_temp.id('o12'), 'PAY-o12', 1000);
SELECT pg_temp.open('ret12', 'o12', 'return_refund', '[{"line_no":1,"qty":1}]');
SELECT pg_temp.fire('ret12', 'approve');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'all12', amount => 1000)$$, pg_temp.id('o12'))) AS all_by_amount;
SELECT on_hand, reserved FROM order_ext.stock WHERE sku = 'AS-S';
SELECT pg_temp.fire('ret12', 'receive_return');
SELECT on_hand, reserved FROM order_ext.stock WHERE sku = 'AS-S';
SELECT pg_temp.fire('ret12', 'refund');
SELECT pg_temp.money('o12'), (SELECT on_hand || '/' || reserved FROM order_ext.stock WHERE sku = 'AS-S') AS stock;
-- a split parent's units are its children's: no refund by lines, not even
-- of a free unit (its child holds that unit's reservation)
INSERT INTO pg_temp.o SELECT 'o9', order_ext.new_order_id();
SELECT status FROM order_ext.create_order(pg_temp.id('o9'), 46,
    '[{"sku":"AS-S","qty":1,"unit_price":1000,"merchant_id":1},{"sku":"AS-G","qty":1,"unit_price":0,"merchant_id":2}]');
SELECT status FROM order_ext.record_payment(pg_temp.id('o9'), 'PAY-o9', 1000);
SELECT count(*) AS children FROM order_ext.split_order(pg_temp.id('o9'), 'merchant');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'gift9', '[{"line_no":2,"qty":1}]', restock => true)$$, pg_temp.id('o9'))) AS split_parent_lines;
SELECT sku, on_hand, reserved FROM order_ext.stock WHERE sku IN ('AS-S', 'AS-G') ORDER BY sku;
SELECT count(*) AS check_stock_rows FROM order_ext.check_stock();

-- a rejected request not appealed within the appeal window (15 days, the
-- default timeout) closes, also one whose units went to another request
-- since: closing claims no units, only an appeal does ('first' above)
SELECT pg_temp.fire('first', 'appeal', actor => 'buyer') AS appeal_still_refused;
SELECT pg_temp.fire('first', 'close', actor => 'system') AS close_rejected;
-- and a closed request holds no units: with 'second' rejected too, its two
-- units are free for a new request
SELECT pg_temp.fire('second', 'reject');
SELECT pg_temp.open('third', 'o5', 'refund_only', '[{"line_no":1,"qty":2}]');

-- the money a request under way will refund is held for it: a refund by
-- amount (or of other units) that would leave it too little is OE006, or
-- the approved request could neither refund nor end, and its order never
-- archive; and a request is not opened, nor appealed, for more than is left
SELECT pg_temp.mk('o21') IS NOT NULL AS created;
SELECT pg_temp.open('claim21', 'o21', 'refund_only', '[{"line_no":1,"qty":2}]');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'all-back', amount => 4382)$$, pg_temp.id('o21'))) AS refund_all_by_amount;
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('o21'), 'goodwill', amount => 1198);
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'one-more', amount => 1)$$, pg_temp.id('o21'))) AS one_more;
SELECT pg_temp.fire('claim21', 'approve');
SELECT pg_temp.fire('claim21', 'refund');
SELECT pg_temp.money('o21');
SELECT pg_temp.mk('o22') IS NOT NULL AS created;
SELECT pg_temp.open('rej22', 'o22', 'refund_only', '[{"line_no":1,"qty":1}]');
SELECT pg_temp.fire('rej22', 'reject');
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('o22'), 'most', amount => 3900);
-- (the refusals below with their detail: what the requests under way may
-- refund, and the one asked for on top; no hint about requests when none is
-- under way)
CREATE FUNCTION pg_temp.err_detail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
    h text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{13,}', '<id>', 'g') || ' DETAIL: ' || d
           || coalesce(nullif(' HINT: ' || h, ' HINT: '), '');
END $$;
SELECT pg_temp.err_detail(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":1,"qty":2}]')$$, pg_temp.id('o22'))) AS open_without_money_alone;
SELECT pg_temp.fire('rej22', 'appeal', actor => 'buyer') AS appeal_without_money;
SELECT pg_temp.open('small22', 'o22', 'refund_only', '[{"line_no":2,"qty":1}]');
SELECT pg_temp.err(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":1,"qty":1}]')$$, pg_temp.id('o22'))) AS open_without_money;
SELECT pg_temp.err_detail(format($$SELECT order_ext.open_after_sale(%s, 'refund_only', '[{"line_no":1,"qty":1}]')$$, pg_temp.id('o22'))) AS open_without_money_detail;
-- what is held is the most a request's refund can cost when it happens:
-- its units as the last ones of their line (units are priced in the order
-- they are refunded: 33, 33, 34 here), and the shipping fee once the
-- requests hold every unit an unshipped order has left
INSERT INTO pg_temp.o SELECT 'o31', order_ext.new_order_id();
SELECT status, payable_total FROM order_ext.create_order(pg_temp.id('o31'), 49,
    '[{"sku":"AS-T","qty":3,"unit_price":100}]', discounts => '[{"kind":"coupon","amount":200}]');
SELECT status FROM order_ext.record_payment(pg_temp.id('o31'), 'PAY-o31', 100);
SELECT pg_temp.open('a31', 'o31', 'refund_only', '[{"line_no":1,"qty":1}]');
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('o31'), 'two31', '[{"line_no":1,"qty":2}]');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'one31', amount => 1)$$, pg_temp.id('o31'))) AS one_more;
SELECT pg_temp.fire('a31', 'approve');
SELECT pg_temp.fire('a31', 'refund');
SELECT pg_temp.money('o31');
INSERT INTO pg_temp.o SELECT 'o32', order_ext.new_order_id();
SELECT status, payable_total FROM order_ext.create_order(pg_temp.id('o32'), 49,
    '[{"sku":"AS-T","qty":1,"unit_price":1000},{"sku":"AS-U","qty":1,"unit_price":1000}]', shipping_fee => 500);
SELECT status FROM order_ext.record_payment(pg_temp.id('o32'), 'PAY-o32', 2500);
SELECT pg_temp.open('a32', 'o32', 'refund_only', '[{"line_no":1,"qty":1}]');
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('o32'), 'line32', '[{"line_no":2,"qty":1}]');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'fee32', amount => 500)$$, pg_temp.id('o32'))) AS the_fee;
SELECT pg_temp.fire('a32', 'approve');
SELECT pg_temp.fire('a32', 'refund');
SELECT pg_temp.money('o32');
-- two requests on one line refund two blocks of it, which can cost more
-- together than one block of their units would (units of net 2 over 4:
-- 0, 1, 0, 1): a refund by amount must leave both blocks their worst
INSERT INTO pg_temp.o SELECT 'o33', order_ext.new_order_id();
SELECT status, payable_total FROM order_ext.create_order(pg_temp.id('o33'), 49,
    '[{"sku":"AS-T","qty":4,"unit_price":1}]', discounts => '[{"kind":"coupon","amount":2}]');
SELECT status FROM order_ext.record_payment(pg_temp.id('o33'), 'PAY-o33', 2);
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('o33'), 'first33', '[{"line_no":1,"qty":1}]');
SELECT pg_temp.open('a33', 'o33', 'refund_only', '[{"line_no":1,"qty":1}]'),
       pg_temp.open('b33', 'o33', 'refund_only', '[{"line_no":1,"qty":1}]');
SELECT pg_temp.fire('a33', 'approve'), pg_temp.fire('b33', 'approve');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'amount33', amount => 1)$$, pg_temp.id('o33'))) AS by_amount;
SELECT pg_temp.fire('a33', 'refund');
SELECT status, refunded_total FROM order_ext.refund(pg_temp.id('o33'), 'third33', '[{"line_no":1,"qty":1}]');
SELECT pg_temp.fire('b33', 'refund');
SELECT pg_temp.money('o33');

-- a returned unit is back in stock at once, but still the buyer's for the
-- purchase limit until it is refunded (API.md: refunded units no longer
-- count)
SELECT order_ext.set_stock('AS-L', 10) IS NOT NULL AS stocked,
       order_ext.set_purchase_limit('AS-L', 2) IS NOT NULL AS limited;
INSERT INTO pg_temp.o SELECT 'o41', order_ext.new_order_id();
SELECT status FROM order_ext.create_order(pg_temp.id('o41'), 50, '[{"sku":"AS-L","qty":2,"unit_price":100}]');
SELECT status FROM order_ext.record_payment(pg_temp.id('o41'), 'PAY-o41', 200);
SELECT status FROM order_ext.fire(pg_temp.id('o41'), 'ship', actor => 'merchant');
SELECT pg_temp.open('a41', 'o41', 'return_refund', '[{"line_no":1,"qty":1}]');
SELECT pg_temp.fire('a41', 'approve');
SELECT pg_temp.fire('a41', 'receive_return');
SELECT (SELECT on_hand FROM order_ext.stock WHERE sku = 'AS-L') AS on_hand,
       (SELECT qty FROM order_ext.buyer_holdings WHERE buyer_id = 50 AND sku = 'AS-L') AS holds;
SELECT pg_temp.err(format($$SELECT order_ext.create_order(%s, 50, '[{"sku":"AS-L","qty":1,"unit_price":100}]')$$,
                          order_ext.new_order_id())) AS one_more_before_refund;
SELECT pg_temp.fire('a41', 'refund');
SELECT (SELECT on_hand FROM order_ext.stock WHERE sku = 'AS-L') AS on_hand,
       (SELECT qty FROM order_ext.buyer_holdings WHERE buyer_id = 50 AND sku = 'AS-L') AS holds;
SELECT pg_temp.err(format($$SELECT order_ext.create_order(%s, 50, '[{"sku":"AS-L","qty":1,"unit_price":100}]')$$,
                          order_ext.new_order_id())) AS one_more_after_refund;
SELECT count(*) AS check_stock_rows FROM order_ext.check_stock();

-- the after_sale machine, while requests name it, can be neither deleted
-- nor renamed (23503)
SELECT pg_temp.err($$DELETE FROM order_ext.machines WHERE machine = 'after_sale'$$) AS delete_after_sale,
       pg_temp.err($$UPDATE order_ext.machines SET machine = 'returns' WHERE machine = 'after_sale'$$) AS rename_after_sale;

DROP EXTENSION order_ext CASCADE;
