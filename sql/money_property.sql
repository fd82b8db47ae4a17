--
-- money_property: a randomized property test of the refund arithmetic
-- (API.md "Money": "refunding every unit of every line, in any order and any
-- split, returns exactly paid_total")
--
-- 300 random orders (1-5 lines, 1-6 units each, prices 0-5000, random line
-- and order-level discounts, random shipping fee), paid in 1-3 payments,
-- some shipped; then every unit refunded in random order, alone or with the
-- next one or two.  Properties, checked after every refund and at the end:
--   * no refund and no line's refunded_amount is negative, and no line
--     refunds more than its net (qty * unit_price - discount_alloc)
--   * refunded_total never exceeds paid_total
--   * at the end every line refunded exactly its net, and Σ refunds =
--     paid_total (unshipped: the shipping fee came with the last unit),
--     or paid_total - shipping_fee (shipped), after which refunding the
--     fee by amount makes it exact; every order is closed
-- Seeded (setseed), so a failure reproduces; the summary prints the seed's
-- totals, and the counts of violations, which must be 0.
--
CREATE EXTENSION order_ext;
SELECT setseed(0.20261122);

CREATE FUNCTION pg_temp.rnd(lo bigint, hi bigint) RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT lo + floor(random() * (hi - lo + 1))::bigint $$;

CREATE TEMP TABLE prop (
    n              int PRIMARY KEY,
    lines          int,
    units          int,
    shipped        boolean,
    paid           bigint,
    unit_refunds   bigint,     -- Σ of the refunds by lines
    refunded       bigint,     -- refunded_total at the end
    refund_calls   int,
    violations     int,        -- properties broken during the refunds
    lines_not_net  int,        -- lines whose refunded_amount <> net at the end
    status         text
);

DO $$
#variable_conflict use_variable
DECLARE
    n          int;
    nl         int;
    l          int;
    items      jsonb;
    discounts  jsonb;
    totals     bigint[];
    left_      bigint;
    amt        bigint;
    ship       bigint;
    oid_       bigint;
    r          order_ext.orders;
    payable    bigint;
    paid_left  bigint;
    k          int;
    npay       int;
    units      int[];
    grp        jsonb;
    i          int;
    g          int;
    calls      int;
    bad        int;
    is_shipped boolean;
BEGIN
    FOR n IN 1..300 LOOP
        nl := pg_temp.rnd(1, 5);
        items := '[]';
        totals := '{}';
        FOR l IN 1..nl LOOP
            k := pg_temp.rnd(1, 6);
            amt := pg_temp.rnd(0, 5000);
            items := items || jsonb_build_object('sku', 'P-' || l, 'qty', k, 'unit_price', amt);
            totals := totals || (k * amt);
        END LOOP;
        -- line discounts (at most a third of the line), then order-level ones
        discounts := '[]';
        FOR l IN 1..nl LOOP
            IF random() < 0.3 AND totals[l] > 0 THEN
                amt := pg_temp.rnd(1, greatest(totals[l] / 3, 1));
                discounts := discounts || jsonb_build_object('kind', 'line', 'amount', amt, 'line', l);
                totals[l] := totals[l] - amt;
            END IF;
        END LOOP;
        left_ := (SELECT sum(t) FROM unnest(totals) t);
        FOR k IN 1..pg_temp.rnd(0, 2) LOOP
            IF left_ > 0 THEN
                amt := pg_temp.rnd(1, greatest(left_ / 4, 1));
                discounts := discounts || jsonb_build_object('kind', 'coupon', 'code', 'C' || k, 'amount', amt);
                left_ := left_ - amt;
            END IF;
        END LOOP;
        ship := CASE WHEN random() < 0.4 THEN 0 ELSE pg_temp.rnd(1, 1500) END;
        oid_ := order_ext.new_order_id();
        r := order_ext.create_order(oid_, n, items, discounts => discounts, shipping_fee => ship);
        payable := r.payable_total;

        -- pay: 1-3 payments that add up to payable (a free order fires pay)
        IF payable = 0 THEN
            r := order_ext.fire(oid_, 'pay');
        ELSE
            npay := pg_temp.rnd(1, 3);
            paid_left := payable;
            FOR k IN 1..npay LOOP
                amt := CASE WHEN k = npay OR paid_left = 1 THEN paid_left
                            ELSE pg_temp.rnd(1, paid_left - 1) END;
                r := order_ext.record_payment(oid_, 'PAY-' || k, amt);
                paid_left := paid_left - amt;
                EXIT WHEN paid_left = 0;
            END LOOP;
        END IF;
        is_shipped := random() < 0.3;
        IF is_shipped THEN
            r := order_ext.fire(oid_, 'ship', actor => 'merchant');
        END IF;

        -- every unit, shuffled; refunded alone or with the next one or two
        SELECT array_agg(line_no ORDER BY random()) INTO units
        FROM order_ext.order_items i, generate_series(1, i.qty)
        WHERE i.order_id = oid_;
        calls := 0;
        bad := 0;
        i := 1;
        WHILE i <= cardinality(units) LOOP
            g := CASE WHEN random() < 0.7 THEN 1 ELSE pg_temp.rnd(2, 3) END;
            SELECT jsonb_agg(jsonb_build_object('line_no', u, 'qty', 1)) INTO grp
            FROM unnest(units[i:i + g - 1]) u;
            r := order_ext.refund(oid_, 'RF-' || i, grp);
            calls := calls + 1;
            i := i + g;
            bad := bad
                + (SELECT count(*) FROM order_ext.order_items it
                    WHERE it.order_id = oid_
                      AND (it.refunded_amount < 0
                           OR it.refunded_amount > it.qty * it.unit_price - it.discount_alloc))
                + (SELECT count(*) FROM order_ext.order_payments p
                    WHERE p.order_id = oid_ AND p.kind = 'refund' AND p.amount < 0)
                + CASE WHEN r.refunded_total > r.paid_total THEN 1 ELSE 0 END;
        END LOOP;

        INSERT INTO prop
        SELECT n, nl, cardinality(units), is_shipped, r.paid_total, r.refunded_total, r.refunded_total,
               calls, bad,
               (SELECT count(*) FROM order_ext.order_items it
                 WHERE it.order_id = oid_
                   AND (it.refunded_qty <> it.qty
                        OR it.refunded_amount <> it.qty * it.unit_price - it.discount_alloc)),
               r.status;

        -- shipped: the shipping fee was kept; refund it by amount
        IF is_shipped AND r.shipping_fee > 0 THEN
            r := order_ext.refund(oid_, 'RF-SHIP', amount => r.shipping_fee);
            UPDATE prop p SET refunded = r.refunded_total WHERE p.n = n;
        END IF;
    END LOOP;
END $$;

-- what the seed made (the same on every run)
SELECT count(*) AS orders, sum(lines) AS lines, sum(units) AS units,
       count(*) FILTER (WHERE shipped) AS shipped, sum(paid) AS paid,
       sum(refund_calls) AS refund_calls
FROM prop;

-- the properties: every count must be 0
SELECT count(*) FILTER (WHERE violations > 0) AS negative_or_over_net_or_over_paid,
       count(*) FILTER (WHERE lines_not_net > 0) AS lines_not_refunded_exactly,
       count(*) FILTER (WHERE NOT shipped AND unit_refunds <> paid) AS unshipped_sum_not_paid,
       count(*) FILTER (WHERE shipped AND unit_refunds <> paid - o.shipping_fee) AS shipped_sum_not_paid_less_shipping,
       count(*) FILTER (WHERE refunded <> paid) AS refunded_total_not_paid,
       count(*) FILTER (WHERE prop.status <> 'closed') AS not_closed
FROM prop JOIN order_ext.orders o ON o.buyer_id = prop.n;

-- the ledger agrees with the orders
SELECT count(*) AS orders_whose_ledger_disagrees
FROM order_ext.orders o
WHERE o.refunded_total <> (SELECT coalesce(sum(p.amount), 0) FROM order_ext.order_payments p
                           WHERE p.order_id = o.order_id AND p.kind = 'refund')
   OR o.paid_total <> (SELECT coalesce(sum(p.amount), 0) FROM order_ext.order_payments p
                       WHERE p.order_id = o.order_id AND p.kind = 'payment');

DROP EXTENSION order_ext CASCADE;
