--
-- split: split_order() by merchant or warehouse  (API.md "Money")
--
-- Ids and timestamps are never printed.  Children are known by their first
-- line's SKU.  Reservations moving to the children (StockTransfer) are the
-- stock module's; their check comes with that module.
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

-- mk(tag): 4 lines of merchants 1, 2, 1 and none; a coupon, a line
-- discount, another order-level discount; shipping 800 (payable 5641)
CREATE FUNCTION pg_temp.mk(tag text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := order_ext.new_order_id();
BEGIN
    PERFORM order_ext.create_order(new_id, 42,
        '[{"sku":"A","qty":2,"unit_price":1999,"merchant_id":1,"warehouse_id":7},
          {"sku":"B","qty":1,"unit_price":500,"merchant_id":2,"warehouse_id":7},
          {"sku":"C","qty":3,"unit_price":333,"merchant_id":1,"warehouse_id":8},
          {"sku":"D","qty":1,"unit_price":777,"warehouse_id":8}]',
        discounts => '[{"kind":"coupon","code":"C10","amount":1000},
                       {"kind":"promo","amount":100,"line":2},
                       {"kind":"vip","amount":333}]',
        shipping_fee => 800);
    INSERT INTO pg_temp.o VALUES (tag, new_id);
    RETURN new_id;
END $$;

-- kids(tag): the children of an order, by their first SKU
CREATE FUNCTION pg_temp.kids(tag text)
RETURNS TABLE (first_sku text, status text, version int, item_total bigint, discount_total bigint,
               shipping_fee bigint, payable_total bigint, paid_total bigint, lines text)
LANGUAGE sql VOLATILE AS $$
    SELECT (SELECT i.sku FROM order_ext.order_items i WHERE i.order_id = c.order_id AND i.line_no = 1),
           c.status, c.version, c.item_total, c.discount_total, c.shipping_fee, c.payable_total, c.paid_total,
           (SELECT string_agg(format('%s:%s(%s)', i.line_no, i.sku, i.discount_alloc), ' ' ORDER BY i.line_no)
              FROM order_ext.order_items i WHERE i.order_id = c.order_id)
    FROM order_ext.orders c WHERE c.parent_id = pg_temp.id($1) ORDER BY 1
$$;

-- sums(tag): children against the parent, column by column (paid: against
-- the parent's payments, which moved to the children)
CREATE FUNCTION pg_temp.sums(tag text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT format('children=%s item_total %s discount_total %s shipping_fee %s payable_total %s paid_total %s lines %s',
                  count(*),
                  sum(c.item_total) = p.item_total, sum(c.discount_total) = p.discount_total,
                  sum(c.shipping_fee) = p.shipping_fee, sum(c.payable_total) = p.payable_total,
                  sum(c.paid_total) = (SELECT coalesce(sum(k.amount), 0) FROM order_ext.order_payments k
                                        WHERE k.order_id = p.order_id AND k.kind = 'payment'),
                  (SELECT count(*) FROM order_ext.order_items i JOIN order_ext.orders k ON k.order_id = i.order_id
                    WHERE k.parent_id = p.order_id)
                  = (SELECT count(*) FROM order_ext.order_items i WHERE i.order_id = p.order_id))
    FROM order_ext.orders p JOIN order_ext.orders c ON c.parent_id = p.order_id
    WHERE p.order_id = pg_temp.id($1)
    GROUP BY p.order_id
$$;

--------------------------------------------------------------------------
-- A paid order, by merchant
--------------------------------------------------------------------------

SELECT pg_temp.mk('m') IS NOT NULL AS created;
SELECT status FROM order_ext.record_payment(pg_temp.id('m'), 'BAL', 1000, 'balance');
SELECT status FROM order_ext.record_payment(pg_temp.id('m'), 'CARD', 4641, 'card');
SELECT count(*) AS children FROM order_ext.split_order(pg_temp.id('m'));
SELECT * FROM pg_temp.kids('m');
SELECT pg_temp.sums('m');
-- the parent: terminal 'split', the children named in its timeline; its
-- money moved to the children, so it cannot be refunded twice
SELECT status, version, paid_total, refunded_total FROM order_ext.orders WHERE order_id = pg_temp.id('m');
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'R-P', amount => 1)$$, pg_temp.id('m'))) AS refund_parent;
SELECT version, event, from_status, to_status, actor,
       jsonb_array_length(payload->'children') AS children, payload->>'by' AS by, payload->'paid_moved' AS paid_moved
FROM order_ext.timeline(pg_temp.id('m')) WHERE version = 4;
SELECT (SELECT array_agg(c.order_id ORDER BY c.order_id) FROM order_ext.orders c WHERE c.parent_id = e.order_id)
       = ARRAY(SELECT jsonb_array_elements_text(e.payload->'children')::bigint ORDER BY 1) AS children_match
FROM order_ext.order_events e WHERE e.order_id = pg_temp.id('m') AND e.event = 'split';
-- each child's 'create' names the parent and its lines there
SELECT (SELECT i.sku FROM order_ext.order_items i WHERE i.order_id = e.order_id AND i.line_no = 1) AS first_sku,
       e.version, e.event, e.to_status, e.actor, (e.payload->>'split_from')::bigint = pg_temp.id('m') AS names_parent,
       e.payload->'lines' AS lines
FROM order_ext.order_events e JOIN order_ext.orders c ON c.order_id = e.order_id
WHERE c.parent_id = pg_temp.id('m') ORDER BY 1;
-- payments: every gateway txn adds up over the children to the parent's
SELECT p.txn_id, p.method, p.amount,
       (SELECT sum(k.amount) FROM order_ext.order_payments k JOIN order_ext.orders c ON c.order_id = k.order_id
         WHERE c.parent_id = p.order_id AND k.txn_id = p.txn_id AND k.method = p.method) AS children
FROM order_ext.order_payments p WHERE p.order_id = pg_temp.id('m') ORDER BY p.txn_id;
-- discounts: every discount adds up over the children to the parent's; a
-- child's discount rows add up to its discount_total
SELECT d.kind, d.code, d.amount,
       (SELECT sum(k.amount) FROM order_ext.order_discounts k JOIN order_ext.orders c ON c.order_id = k.order_id
         WHERE c.parent_id = d.order_id AND k.kind = d.kind AND k.code IS NOT DISTINCT FROM d.code) AS children
FROM order_ext.order_discounts d WHERE d.order_id = pg_temp.id('m') ORDER BY d.seq;
SELECT count(*) AS children_whose_discount_rows_disagree
FROM order_ext.orders c
WHERE c.parent_id = pg_temp.id('m')
  AND c.discount_total <> (SELECT sum(k.amount) FROM order_ext.order_discounts k WHERE k.order_id = c.order_id);
-- the line discount went with its line (renumbered)
SELECT i.sku, k.kind, k.amount, k.line_no
FROM order_ext.order_discounts k JOIN order_ext.orders c ON c.order_id = k.order_id
JOIN order_ext.order_items i ON i.order_id = k.order_id AND i.line_no = k.line_no
WHERE c.parent_id = pg_temp.id('m');
-- children carry on by their own machine: ship one, refund another in full
SELECT status FROM order_ext.fire((SELECT order_id FROM order_ext.orders c WHERE c.parent_id = pg_temp.id('m')
                                   AND EXISTS (SELECT 1 FROM order_ext.order_items i WHERE i.order_id = c.order_id AND i.sku = 'B')),
                                  'ship', actor => 'merchant');
SELECT status, refunded_total
FROM order_ext.refund((SELECT order_id FROM order_ext.orders c WHERE c.parent_id = pg_temp.id('m')
                       AND EXISTS (SELECT 1 FROM order_ext.order_items i WHERE i.order_id = c.order_id AND i.sku = 'A')),
                      'R-A', '[{"line_no":1,"qty":2},{"line_no":2,"qty":3}]');
SELECT first_sku, status, payable_total, paid_total FROM pg_temp.kids('m');
-- the parent is done: no more transitions, no second split
SELECT pg_temp.err(format($$SELECT order_ext.split_order(%s)$$, pg_temp.id('m'))) AS split_again,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'cancel', actor => 'buyer')$$, pg_temp.id('m'))) AS cancel_parent;
-- a repeated payment callback to the parent changes nothing; a new payment
-- to it is a late payment: recorded, refund_due
SELECT status, version, paid_total FROM order_ext.record_payment(pg_temp.id('m'), 'CARD', 4641, 'card');
SELECT status, version, paid_total FROM order_ext.record_payment(pg_temp.id('m'), 'CARD-2', 100, 'card');
SELECT event, payload->>'reason' AS reason, payload->'refundable' AS refundable
FROM order_ext.outbox WHERE order_id = pg_temp.id('m') AND event = 'refund_due';
-- that late payment, and only it, can be refunded from the parent
SELECT status, paid_total, refunded_total FROM order_ext.refund(pg_temp.id('m'), 'R-LATE', amount => 100);
SELECT pg_temp.err(format($$SELECT order_ext.refund(%s, 'R-P2', amount => 1)$$, pg_temp.id('m'))) AS refund_more;

--------------------------------------------------------------------------
-- Awaiting payment, part paid, by warehouse: children pending, with the
-- parent's expire deadline and their share of the part payment
--------------------------------------------------------------------------

SELECT pg_temp.mk('w') IS NOT NULL AS created;
SELECT status FROM order_ext.record_payment(pg_temp.id('w'), 'PART', 2000);
SELECT count(*) AS children FROM order_ext.split_order(pg_temp.id('w'), 'warehouse');
SELECT * FROM pg_temp.kids('w');
SELECT pg_temp.sums('w');
-- (the parent's own timer went with its split: its deadline was its
-- creation plus the 30 minutes)
SELECT count(*) AS children_timers,
       count(*) FILTER (WHERE t.due_at = (SELECT p.created_at + interval '30 minutes' FROM order_ext.orders p
                                         WHERE p.order_id = pg_temp.id('w'))) AS same_deadline,
       (SELECT count(*) FROM order_ext.timers p WHERE p.order_id = pg_temp.id('w')) AS parent_timers
FROM order_ext.timers t JOIN order_ext.orders c ON c.order_id = t.order_id
WHERE c.parent_id = pg_temp.id('w') AND t.event = 'expire' AND t.version = 1 AND t.status = 'pending_payment';
-- a child is paid by paying what it still owes
SELECT r.status, r.paid_total = r.payable_total AS paid_in_full
FROM order_ext.orders c,
     LATERAL order_ext.record_payment(c.order_id, 'REST-7', c.payable_total - c.paid_total) r
WHERE c.parent_id = pg_temp.id('w')
  AND EXISTS (SELECT 1 FROM order_ext.order_items i WHERE i.order_id = c.order_id AND i.sku = 'A');

--------------------------------------------------------------------------
-- Nothing to split, and what cannot be split
--------------------------------------------------------------------------

DO $$
DECLARE
    new_id bigint := order_ext.new_order_id();
BEGIN
    PERFORM order_ext.create_order(new_id, 42,
        '[{"sku":"X","qty":1,"unit_price":100,"merchant_id":5},{"sku":"Y","qty":1,"unit_price":100,"merchant_id":5}]');
    INSERT INTO pg_temp.o VALUES ('one', new_id);
END $$;
SELECT count(*) AS children FROM order_ext.split_order(pg_temp.id('one'));
SELECT status, version FROM order_ext.orders WHERE order_id = pg_temp.id('one');
SELECT pg_temp.mk('shipped') IS NOT NULL AS created;
SELECT status FROM order_ext.record_payment(pg_temp.id('shipped'), 'S', 5641);
SELECT status FROM order_ext.fire(pg_temp.id('shipped'), 'ship', actor => 'merchant');
SELECT pg_temp.err(format($$SELECT order_ext.split_order(%s)$$, pg_temp.id('shipped'))) AS shipped;
SELECT pg_temp.mk('refunded') IS NOT NULL AS created;
SELECT status FROM order_ext.record_payment(pg_temp.id('refunded'), 'R', 5641);
SELECT status FROM order_ext.refund(pg_temp.id('refunded'), 'R1', amount => 1);
SELECT pg_temp.err(format($$SELECT order_ext.split_order(%s)$$, pg_temp.id('refunded'))) AS with_refunds;
-- refunds of free units (amount 0) count too: split, the child got those
-- units back unreserved and uncounted, to be shipped and refunded again
SELECT order_ext.new_order_id() AS gift_id \gset
INSERT INTO pg_temp.o VALUES ('gift', :gift_id);
SELECT status FROM order_ext.create_order(:gift_id, 43,
    '[{"sku":"GA","qty":1,"unit_price":700,"merchant_id":1},
      {"sku":"GB","qty":2,"unit_price":0,"merchant_id":2}]');
SELECT status FROM order_ext.record_payment(:gift_id, 'G1', 700);
SELECT status, refunded_total FROM order_ext.refund(:gift_id, 'GR1', '[{"line_no":2,"qty":2}]');
SELECT pg_temp.err(format($$SELECT order_ext.split_order(%s, 'merchant')$$, :gift_id)) AS with_free_refunds,
       (SELECT count(*) FROM order_ext.orders WHERE parent_id = :gift_id) AS children;
SELECT pg_temp.err(format($$SELECT order_ext.split_order(%s, 'sku')$$, pg_temp.id('refunded'))) AS bad_by,
       pg_temp.err(format($$SELECT order_ext.split_order(%s)$$, order_ext.new_order_id())) AS no_order,
       pg_temp.err($$SELECT order_ext.split_order(NULL)$$) AS null_order;
-- nothing of those was written
SELECT count(*) AS children FROM order_ext.orders WHERE parent_id IN (pg_temp.id('one'), pg_temp.id('shipped'), pg_temp.id('refunded'));

--------------------------------------------------------------------------
-- Random orders (seeded): children always add up to the parent
--------------------------------------------------------------------------

SELECT setseed(0.5);
DO $$
DECLARE
    n int;
    l int;
    items jsonb;
    discounts jsonb;
    new_id bigint;
    payable bigint;
BEGIN
    FOR n IN 1..60 LOOP
        items := '[]';
        FOR l IN 1..1 + floor(random() * 6)::int LOOP
            items := items || jsonb_build_object('sku', 'S' || l, 'qty', 1 + floor(random() * 4)::int,
                                                 'unit_price', floor(random() * 3000)::int,
                                                 'merchant_id', floor(random() * 3)::int);
        END LOOP;
        discounts := CASE WHEN random() < 0.7
                          THEN jsonb_build_array(jsonb_build_object('kind', 'c', 'amount', floor(random() * 200)::int),
                                                 jsonb_build_object('kind', 'd', 'amount', floor(random() * 50)::int))
                          ELSE '[]' END;
        new_id := order_ext.new_order_id();
        payable := (order_ext.create_order(new_id, 1000 + n, items, discounts => discounts,
                                           shipping_fee => floor(random() * 900)::bigint)).payable_total;
        IF random() < 0.7 AND payable > 0 THEN
            PERFORM order_ext.record_payment(new_id, 'P1', greatest(payable / 3, 1));
            IF payable / 3 < payable AND random() < 0.8 THEN
                PERFORM order_ext.record_payment(new_id, 'P2', payable - greatest(payable / 3, 1));
            END IF;
        END IF;
        INSERT INTO pg_temp.o VALUES ('rand' || n, new_id);
        PERFORM order_ext.split_order(new_id);
    END LOOP;
END $$;
SELECT count(*) AS orders, count(*) FILTER (WHERE p.status = 'split') AS split,
       count(*) FILTER (WHERE p.status = 'split' AND pg_temp.sums(o.tag) NOT LIKE '%false%') AS adding_up,
       count(*) FILTER (WHERE p.status = 'split' AND (
           EXISTS (SELECT 1 FROM order_ext.orders c WHERE c.parent_id = p.order_id AND c.status <> 'paid' AND p.paid_at IS NOT NULL)
        OR EXISTS (SELECT 1 FROM order_ext.orders c WHERE c.parent_id = p.order_id
                   AND (c.paid_total > c.payable_total
                        OR c.paid_total <> (SELECT coalesce(sum(k.amount), 0) FROM order_ext.order_payments k WHERE k.order_id = c.order_id)
                        OR c.discount_total <> (SELECT coalesce(sum(k.amount), 0) FROM order_ext.order_discounts k WHERE k.order_id = c.order_id)))))
       AS children_wrong
FROM pg_temp.o o JOIN order_ext.orders p ON p.order_id = o.id
WHERE o.tag LIKE 'rand%';

DROP EXTENSION order_ext CASCADE;
