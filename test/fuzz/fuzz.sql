-- test/fuzz/fuzz.sql — a seeded fuzzer for order_ext's public functions
-- (issue 7).  Loaded into a database that has the extension; then
--
--     CALL fuzz.run(seed, steps);
--     SELECT * FROM fuzz.failures;        -- empty when all went well
--
-- Each step is its own transaction: a random valid call (create, pay, ship,
-- cancel, refund, split, after-sales, timers, archive, stock changes, ...) or a malformed
-- one (JSON of the wrong shape or type, huge and negative numbers, NULL in
-- every argument, unknown names).  After every step:
--   - an error must carry a 22xxx or OExxx SQLSTATE (anything else, e.g. an
--     internal error or a constraint violation, is a failure);
--   - the order the step touched must be consistent: version = number of
--     events, events 1..version, the last event's to_status = status,
--     sum of discount_alloc = discount_total, payable_total = item_total -
--     discount_total + shipping_fee, paid_total and refunded_total = the
--     payment and refund rows, line refunds within bounds;
--   - the order's after-sales requests under way can all still be driven
--     to refunded (tried, then rolled back);
--   - stock must be consistent: check_stock() empty, purchase-limit holdings
--     = what the buyers' orders hold, live or archived.
-- A failure is recorded with the seed, the step and the call, so that
-- CALL fuzz.run(seed, step) reproduces it.  Functions of capabilities that
-- are not installed are skipped (to_regproc).

DROP SCHEMA IF EXISTS fuzz CASCADE;
CREATE SCHEMA fuzz;

CREATE TABLE fuzz.failures (seed int, step int, action text, call text, problem text);
CREATE TABLE fuzz.log (seed int, step int, action text, outcome text);
CREATE TABLE fuzz.orders (order_id bigint PRIMARY KEY, buyer_id bigint, request jsonb);

-- the SKU pool: normal, hot, on_pay, limited, untracked
CREATE TABLE fuzz.skus (sku text PRIMARY KEY, tracked boolean);
INSERT INTO fuzz.skus VALUES
    ('FZ-N1', true), ('FZ-N2', true), ('FZ-HOT', true), ('FZ-PAY', true),
    ('FZ-LIM', true), ('FZ-FREE', false), ('FZ-COUPON', false);

CREATE FUNCTION fuzz.pick(a anyarray) RETURNS anyelement LANGUAGE sql VOLATILE AS
$$ SELECT a[1 + floor(random() * cardinality(a))::int] $$;

CREATE FUNCTION fuzz.chance(p float8) RETURNS boolean LANGUAGE sql VOLATILE AS
$$ SELECT random() < p $$;

-- a random order of this run (1, which does not exist, if none yet)
CREATE FUNCTION fuzz.some_order() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT coalesce((SELECT order_id FROM fuzz.orders
                     OFFSET floor(random() * (SELECT count(*) FROM fuzz.orders)) LIMIT 1), 1)
$$;

-- a junk JSON value of a random kind
CREATE FUNCTION fuzz.junk() RETURNS jsonb LANGUAGE sql VOLATILE AS $$
    SELECT fuzz.pick(ARRAY[
        'null', '"x"', '-1', '0', '1.5', '1e300', '9223372036854775808', '-9223372036854775809',
        '[]', '{}', '[1,2]', '{"a":1}', 'true', '""', '"' || repeat('y', 300) || '"',
        '2147483648', '[null]', '{"sku":null}'])::jsonb
$$;

-- a random item line; bad => possibly malformed
CREATE FUNCTION fuzz.line(bad boolean) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    l jsonb := jsonb_build_object(
        'sku', (SELECT fuzz.pick(array_agg(sku)) FROM fuzz.skus),
        'qty', 1 + floor(random() * 3)::int,
        'unit_price', fuzz.pick(ARRAY[0, 1, 99, 1999, 100000, 12345]));
    k text;
BEGIN
    IF fuzz.chance(0.2) THEN
        l := l || jsonb_build_object('merchant_id', 1 + floor(random() * 3)::int);
    END IF;
    IF bad THEN
        k := fuzz.pick(ARRAY['sku', 'qty', 'unit_price', 'merchant_id', 'warehouse_id', 'colour']);
        IF fuzz.chance(0.3) THEN
            l := l - k;
        ELSE
            l := jsonb_set(l, ARRAY[k], fuzz.junk(), true);
        END IF;
    END IF;
    RETURN l;
END $$;

-- ok(): run a call; '' or the SQLSTATE of its error; unexpected SQLSTATEs
-- are recorded as failures
CREATE FUNCTION fuzz.try(seed int, step int, action text, call text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
BEGIN
    EXECUTE call;
    RETURN '';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    IF left(st, 2) NOT IN ('22', 'OE') THEN
        INSERT INTO fuzz.failures VALUES (seed, step, action, call, st || ': ' || msg);
    END IF;
    RETURN st;
END $$;

-- the invariants of one order; problems as text (empty: none)
CREATE FUNCTION fuzz.order_problems(id bigint) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    o order_ext.orders;
    has_money boolean := to_regproc('order_ext.record_payment') IS NOT NULL;
BEGIN
    SELECT * INTO o FROM order_ext.orders WHERE order_id = id;
    IF NOT FOUND THEN
        RETURN;                 -- never created, or archived
    END IF;
    IF o.version <> (SELECT count(*) FROM order_ext.order_events WHERE order_id = id) THEN
        RETURN NEXT format('version %s but %s events', o.version,
                           (SELECT count(*) FROM order_ext.order_events WHERE order_id = id));
    END IF;
    IF EXISTS (SELECT 1 FROM order_ext.order_events WHERE order_id = id AND (version < 1 OR version > o.version)) THEN
        RETURN NEXT 'event versions outside 1..version';
    END IF;
    IF o.status IS DISTINCT FROM (SELECT to_status FROM order_ext.order_events
                                  WHERE order_id = id ORDER BY version DESC LIMIT 1) THEN
        RETURN NEXT 'replaying the timeline does not give the status';
    END IF;
    IF o.discount_total <> (SELECT coalesce(sum(discount_alloc), 0) FROM order_ext.order_items WHERE order_id = id)
       AND o.status <> 'split' THEN
        RETURN NEXT 'sum of discount_alloc differs from discount_total';
    END IF;
    IF o.payable_total <> greatest(o.item_total - o.discount_total + o.shipping_fee, 0) THEN
        RETURN NEXT 'payable_total is not item_total - discount_total + shipping_fee';
    END IF;
    IF has_money THEN
        IF o.paid_total <> (SELECT coalesce(sum(amount), 0) FROM order_ext.order_payments
                            WHERE order_id = id AND kind = 'payment') AND o.status <> 'split' THEN
            RETURN NEXT 'paid_total differs from the payment rows';
        END IF;
        IF o.refunded_total <> (SELECT coalesce(sum(amount), 0) FROM order_ext.order_payments
                                WHERE order_id = id AND kind = 'refund') AND o.status <> 'split' THEN
            RETURN NEXT 'refunded_total differs from the refund rows';
        END IF;
        IF o.refunded_total > o.paid_total THEN
            RETURN NEXT 'refunded more than paid';
        END IF;
        IF EXISTS (SELECT 1 FROM order_ext.order_items
                   WHERE order_id = id
                     AND (refunded_qty < 0 OR refunded_qty > qty OR refunded_amount < 0
                          OR refunded_amount > qty::bigint * unit_price - discount_alloc)) THEN
            RETURN NEXT 'a line refunded out of bounds';
        END IF;
    END IF;
END $$;

-- after-sales requests under way can all still finish: driven to refunded
-- one after the other (approve, receive the return, refund), inside a
-- block that is always rolled back, none fails.  A request that could
-- never refund (its money gone some other way) would stay under way for
-- good and keep its order live.
CREATE FUNCTION fuzz.request_problems(oid_ bigint) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r record;
    a order_ext.after_sales;
    problems text[] := '{}';
    ev text;
    who text;
    i int;
BEGIN
    IF to_regproc('order_ext.open_after_sale') IS NULL THEN
        RETURN;
    END IF;
    BEGIN
        FOR r IN SELECT s.id FROM order_ext.after_sales s
                 WHERE s.order_id = oid_ AND s.status IN ('requested', 'approved', 'arbitration', 'returned')
                 ORDER BY s.id LOOP
            FOR i IN 1 .. 4 LOOP
                SELECT * INTO a FROM order_ext.after_sales s WHERE s.order_id = oid_ AND s.id = r.id;
                EXIT WHEN a.status = 'refunded';
                ev := CASE WHEN a.status IN ('requested', 'arbitration') THEN 'approve'
                           WHEN a.status = 'approved' AND a.kind = 'return_refund' THEN 'receive_return'
                           ELSE 'refund' END;
                who := CASE WHEN a.status = 'arbitration' THEN 'platform' ELSE 'merchant' END;
                BEGIN
                    PERFORM order_ext.fire_after_sale(a.id, ev, NULL, who);
                EXCEPTION WHEN OTHERS THEN
                    problems := problems || format('request %s (%s, %s) cannot %s: %s %s', a.id, a.kind, a.status,
                                                   ev, SQLSTATE, SQLERRM);
                    EXIT;
                END;
            END LOOP;
        END LOOP;
        RAISE EXCEPTION USING ERRCODE = 'ZZ998', MESSAGE = 'roll back';
    EXCEPTION WHEN SQLSTATE 'ZZ998' THEN
        NULL;
    END;
    RETURN QUERY SELECT unnest(problems);
END $$;

-- the invariants of stock
CREATE FUNCTION fuzz.stock_problems() RETURNS SETOF text LANGUAGE sql AS $$
    SELECT format('check_stock: %s reserved %s held %s', sku, reserved, held) FROM order_ext.check_stock()
    UNION ALL
    SELECT format('holdings of buyer %s for %s: %s, orders hold %s', h.buyer_id, h.sku, h.qty, coalesce(x.q, 0))
    FROM order_ext.buyer_holdings h
    LEFT JOIN (SELECT o.buyer_id, i.sku, sum(i.qty - i.refunded_qty) AS q
               FROM (SELECT order_id, sku, qty, refunded_qty FROM order_ext.order_items
                     UNION ALL
                     SELECT order_id, sku, qty, refunded_qty FROM order_ext.order_items_history) i
               JOIN order_ext.all_orders o ON o.order_id = i.order_id
               WHERE o.status NOT IN ('cancelled', 'closed', 'split')
               GROUP BY 1, 2) x ON x.buyer_id = h.buyer_id AND x.sku = h.sku
    WHERE h.qty <> coalesce(x.q, 0)
$$;

-- one step: returns the action and its outcome
CREATE FUNCTION fuzz.step(seed int, step int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    pick text;
    acts text[] := ARRAY['create', 'create', 'create', 'create', 'create', 'fire', 'fire', 'fire', 'fire', 'fire',
                         'run_timers', 'set_stock', 'malformed', 'malformed'];
    id bigint;
    o order_ext.orders;
    action text;
    call text;
    outcome text;
    items jsonb;
    discounts jsonb;
    n int;
    req bigint;
    who text;
    p text;
BEGIN
    -- the actions of the capabilities installed, weighted by repetition
    IF to_regproc('order_ext.record_payment') IS NOT NULL THEN
        acts := acts || ARRAY['record_payment', 'record_payment', 'record_payment'];
    END IF;
    IF to_regproc('order_ext.refund') IS NOT NULL THEN
        acts := acts || ARRAY['refund', 'refund'];
    END IF;
    IF to_regproc('order_ext.split_order') IS NOT NULL THEN
        acts := acts || ARRAY['split_order'];
    END IF;
    IF to_regproc('order_ext.archive') IS NOT NULL THEN
        acts := acts || ARRAY['archive'];
    END IF;
    IF to_regproc('order_ext.open_after_sale') IS NOT NULL THEN
        acts := acts || ARRAY['after_sale', 'after_sale'];
    END IF;
    pick := fuzz.pick(acts);
    IF pick = 'create' THEN
        -- create (sometimes malformed, sometimes a replay)
        IF fuzz.chance(0.15) AND EXISTS (SELECT 1 FROM fuzz.orders WHERE request IS NOT NULL) THEN
            SELECT f.order_id, f.request INTO id, items FROM fuzz.orders f WHERE f.request IS NOT NULL
            OFFSET floor(random() * (SELECT count(*) FROM fuzz.orders WHERE request IS NOT NULL)) LIMIT 1;
            IF fuzz.chance(0.5) THEN
                action := 'create_replay';
            ELSE
                action := 'create_other_request';
                -- one line more: never the same request by chance
                items := jsonb_set(items, '{items}', (items->'items') || jsonb_build_array(fuzz.line(false)));
            END IF;
        ELSE
            id := order_ext.new_order_id();
            n := 1 + floor(random() * 4)::int;
            SELECT jsonb_agg(fuzz.line(fuzz.chance(0.05))) INTO items FROM generate_series(1, n);
            discounts := '[]';
            IF fuzz.chance(0.4) THEN
                discounts := jsonb_build_array(jsonb_build_object(
                    'kind', 'coupon', 'code', 'C' || floor(random() * 9)::int,
                    'amount', fuzz.pick(ARRAY[1, 7, 100, 999, 5000, 1000000])));
                IF fuzz.chance(0.3) THEN
                    discounts := discounts || jsonb_build_array(jsonb_build_object(
                        'kind', 'line', 'amount', fuzz.pick(ARRAY[1, 3, 50]), 'line', 1 + floor(random() * n)::int));
                END IF;
                IF fuzz.chance(0.05) THEN
                    discounts := jsonb_build_array(fuzz.junk());
                END IF;
            END IF;
            items := jsonb_build_object('items', items, 'discounts', discounts,
                                        'buyer', 1 + floor(random() * 20)::int,
                                        'shipping', fuzz.pick(ARRAY[0, 0, 800, 1000]),
                                        'machine', CASE WHEN fuzz.chance(0.9) THEN 'physical'
                                                        WHEN fuzz.chance(0.5) THEN 'virtual' ELSE 'no_such' END);
            action := 'create';
        END IF;
        call := format('SELECT order_ext.create_order(%s, %s, %L, %L, %L, %s)', id, items->>'buyer',
                       items->'items', items->>'machine', items->'discounts', items->>'shipping');
        outcome := fuzz.try(seed, step, action, call);
        IF outcome = '' AND action = 'create' THEN
            INSERT INTO fuzz.orders VALUES (id, (items->>'buyer')::bigint, items);
        ELSIF outcome = '' AND action = 'create_other_request' THEN
            INSERT INTO fuzz.failures VALUES (seed, step, action, call, 'a different request for an existing id was accepted');
        ELSIF outcome <> '' AND action = 'create_replay' THEN
            INSERT INTO fuzz.failures VALUES (seed, step, action, call, 'a replay was refused: ' || outcome);
        END IF;
    ELSIF pick = 'fire' THEN
        -- fire an event, valid or not
        -- (mostly an event the order's status allows, by an allowed actor;
        -- rarely one that ends it, so that orders live long enough to move on)
        id := fuzz.some_order();
        SELECT * INTO o FROM order_ext.orders WHERE order_id = id;
        action := 'fire';
        SELECT t.event, fuzz.pick(t.actors) INTO p, call FROM order_ext.transitions t
        WHERE t.machine = o.machine AND t.from_status = o.status AND NOT ('internal' = ANY (t.actors))
        ORDER BY random() * CASE WHEN t.to_status IN ('cancelled', 'closed') THEN 6 ELSE 1 END LIMIT 1;
        IF p IS NULL OR fuzz.chance(0.3) THEN
            p := fuzz.pick(ARRAY['pay', 'cancel', 'expire', 'ship', 'deliver', 'confirm_receipt', 'complete',
                                 'close', 'modify', 'split', 'teleport']);
            call := fuzz.pick(ARRAY['system', 'buyer', 'merchant', 'platform', 'internal', 'hacker']);
        END IF;
        call := format('SELECT order_ext.fire(%s, %L, %s, %L, %L)', id, p,
                       CASE WHEN fuzz.chance(0.2) THEN (1 + floor(random() * 6)::int)::text ELSE 'NULL' END,
                       call, CASE WHEN p = 'modify' THEN '{"attrs":{"note":"x"}}' ELSE '{}' END);
        outcome := fuzz.try(seed, step, action, call);
    ELSIF pick = 'record_payment' THEN
        -- pay, in one or several parts, sometimes twice with the same txn id
        id := fuzz.some_order();
        SELECT * INTO o FROM order_ext.orders WHERE order_id = id;
        action := 'record_payment';
        call := format('SELECT order_ext.record_payment(%s, %L, %s)', id,
                       'T' || CASE WHEN fuzz.chance(0.2) THEN '1' ELSE floor(random() * 1e9)::text END,
                       CASE WHEN o.order_id IS NULL THEN 1
                            WHEN fuzz.chance(0.6) THEN greatest(o.payable_total - o.paid_total, 1)
                            WHEN fuzz.chance(0.5) THEN greatest((o.payable_total - o.paid_total) / 2, 1)
                            ELSE fuzz.pick(ARRAY[-1, 0, 1, 999999999]) END);
        outcome := fuzz.try(seed, step, action, call);
    ELSIF pick = 'refund' THEN
        -- refund by lines or by amount
        id := fuzz.some_order();
        SELECT * INTO o FROM order_ext.orders WHERE order_id = id;
        action := 'refund';
        IF fuzz.chance(0.6) THEN
            call := format('SELECT order_ext.refund(%s, %L, lines => %L, restock => %L)', id,
                           'R' || floor(random() * 1e9)::text,
                           jsonb_build_array(jsonb_build_object('line_no', 1 + floor(random() * 3)::int,
                                                                'qty', 1 + floor(random() * 2)::int)),
                           fuzz.chance(0.5));
        ELSE
            call := format('SELECT order_ext.refund(%s, %L, amount => %s)', id,
                           'R' || floor(random() * 1e9)::text,
                           CASE WHEN o.order_id IS NULL OR fuzz.chance(0.2) THEN fuzz.pick(ARRAY[-5, 0, 1, 10000000])
                                ELSE greatest((o.paid_total - o.refunded_total) / 2, 1) END);
        END IF;
        outcome := fuzz.try(seed, step, action, call);
    ELSIF pick = 'after_sale' THEN
        -- open a request for units of an order, or move one along
        SELECT s.order_id, s.id INTO id, req FROM order_ext.after_sales s
        ORDER BY (s.status IN ('refunded', 'closed') AND fuzz.chance(0.8)), random() LIMIT 1;
        IF id IS NULL OR fuzz.chance(0.4) THEN
            -- mostly an order that can have one (paid, live), else any
            id := CASE WHEN fuzz.chance(0.8) THEN
                           (SELECT r.order_id FROM order_ext.orders r
                             WHERE r.status IN ('paid', 'shipped', 'received', 'delivered')
                             ORDER BY random() LIMIT 1) END;
            id := coalesce(id, fuzz.some_order());
            action := 'open_after_sale';
            call := format('SELECT order_ext.open_after_sale(%s, %L, %L)', id,
                           fuzz.pick(ARRAY['refund_only', 'return_refund', 'refund_only', 'exchange']),
                           jsonb_build_array(jsonb_build_object('line_no', 1 + floor(random() * 3)::int,
                                                                'qty', 1 + floor(random() * 2)::int)));
        ELSE
            action := 'fire_after_sale';
            IF fuzz.chance(0.6) THEN
                -- a move its status allows, by an actor who may make it
                SELECT CASE WHEN s.status = 'requested' THEN fuzz.pick(ARRAY['approve', 'reject'])
                            WHEN s.status = 'rejected' THEN 'appeal'
                            WHEN s.status = 'arbitration' THEN fuzz.pick(ARRAY['approve', 'reject'])
                            WHEN s.status = 'approved' AND s.kind = 'return_refund' THEN 'receive_return'
                            ELSE 'refund' END,
                       CASE WHEN s.status = 'rejected' THEN 'buyer'
                            WHEN s.status = 'arbitration' THEN 'platform' ELSE 'merchant' END
                  INTO p, who FROM order_ext.after_sales s WHERE s.id = req;
            ELSE
                p := fuzz.pick(ARRAY['approve', 'reject', 'appeal', 'receive_return', 'refund', 'close', 'teleport']);
                who := fuzz.pick(ARRAY['merchant', 'merchant', 'buyer', 'platform', 'system', 'hacker']);
            END IF;
            call := format('SELECT order_ext.fire_after_sale(%s, %L, NULL, %L)', req, p, who);
        END IF;
        outcome := fuzz.try(seed, step, action, call);
    ELSIF pick = 'split_order' THEN
        id := fuzz.some_order();
        action := 'split_order';
        call := format('SELECT order_ext.split_order(%s, %L)', id, fuzz.pick(ARRAY['merchant', 'warehouse', 'colour']));
        outcome := fuzz.try(seed, step, action, call);
        IF outcome = '' THEN
            INSERT INTO fuzz.orders SELECT order_id, buyer_id, NULL FROM order_ext.orders
            WHERE parent_id = id ON CONFLICT DO NOTHING;
        END IF;
    ELSIF pick = 'run_timers' THEN
        action := 'run_timers';
        -- make some timers due first
        UPDATE order_ext.timers SET due_at = now() - interval '1 second'
        WHERE order_id IN (SELECT order_id FROM order_ext.timers ORDER BY random() LIMIT 3);
        call := 'SELECT order_ext.run_timers(' || fuzz.pick(ARRAY['10', '1000', '0', '-1', 'NULL']) || ')';
        outcome := fuzz.try(seed, step, action, call);
    ELSIF pick = 'set_stock' THEN
        action := 'set_stock';
        call := format('SELECT order_ext.set_stock(%L, %s, %L, %s)',
                       fuzz.pick(ARRAY['FZ-N1', 'FZ-N2', 'FZ-HOT', 'FZ-PAY', 'FZ-LIM']),
                       fuzz.pick(ARRAY[-1, 0, 3, 50, 500]),
                       fuzz.pick(ARRAY['on_create', 'on_create', 'on_pay', 'sometimes']),
                       fuzz.pick(ARRAY['false', 'true']));  -- (text, spliced as SQL)
        outcome := fuzz.try(seed, step, action, call);
    ELSIF pick = 'archive' THEN
        action := 'archive';
        call := format('SELECT order_ext.archive(%L, %s)', fuzz.pick(ARRAY['0 seconds', '1 day', '-1 day']),
                       fuzz.pick(ARRAY['1', '100', '0', 'NULL']));
        outcome := fuzz.try(seed, step, action, call);
    ELSE
        -- malformed calls of every kind
        action := 'malformed';
        call := fuzz.pick(ARRAY[
            format('SELECT order_ext.create_order(NULL, 1, %L)', jsonb_build_array(fuzz.line(false))),
            format('SELECT order_ext.create_order(%s, NULL, %L)', order_ext.new_order_id(), jsonb_build_array(fuzz.line(false))),
            format('SELECT order_ext.create_order(%s, 1, NULL)', order_ext.new_order_id()),
            format('SELECT order_ext.create_order(%s, 1, %L)', order_ext.new_order_id(), fuzz.junk()),
            format('SELECT order_ext.create_order(%s, 1, %L, shipping_fee => -1)', order_ext.new_order_id(), jsonb_build_array(fuzz.line(false))),
            format('SELECT order_ext.create_order(%s, 1, %L, shipping_fee => 9223372036854775807)', order_ext.new_order_id(), jsonb_build_array(fuzz.line(false))),
            format('SELECT order_ext.create_order(%s, 1, %L, attrs => %L)', order_ext.new_order_id(), jsonb_build_array(fuzz.line(false)), fuzz.junk()),
            format('SELECT order_ext.create_order(%s, 1, %L, currency => NULL)', order_ext.new_order_id(), jsonb_build_array(fuzz.line(false))),
            format('SELECT order_ext.create_order(-5, 1, %L)', jsonb_build_array(fuzz.line(false))),
            format('SELECT order_ext.fire(NULL, %L)', 'pay'),
            format('SELECT order_ext.fire(%s, NULL)', fuzz.some_order()),
            format('SELECT order_ext.fire(%s, %L, payload => %L)', fuzz.some_order(), 'modify', fuzz.junk()),
            format('SELECT order_ext.fire(%s, %L)', 123456789, 'pay'),
            'SELECT order_ext.set_stock(NULL, 1)',
            'SELECT order_ext.set_purchase_limit(''FZ-LIM'', -1)',
            'SELECT order_ext.available(NULL)',
            'SELECT order_ext.order_id_time(NULL)',
            'SELECT order_ext.min_order_id(''infinity'')',
            'SELECT order_ext.order_id_time(-1)',
            'SELECT order_ext.create_partitions(''infinity'', ''-infinity'')',
            'SELECT order_ext.status_label(NULL, NULL, NULL)',
            'SELECT order_ext.validate_machine(''no_such'')',
            format('SELECT order_ext.timeline(%s)', fuzz.some_order())]);
        outcome := fuzz.try(seed, step, action, call);
    END IF;

    -- the invariants after the step
    IF id IS NOT NULL THEN
        INSERT INTO fuzz.failures
        SELECT seed, step, action, call, 'order ' || id || ': ' || pr.problem FROM fuzz.order_problems(id) AS pr(problem);
        INSERT INTO fuzz.failures
        SELECT seed, step, action, call, 'order ' || id || ': ' || pr.problem FROM fuzz.request_problems(id) AS pr(problem);
        INSERT INTO fuzz.failures
        SELECT seed, step, action, call, 'child ' || c.order_id || ': ' || pr.problem
        FROM order_ext.orders c, fuzz.order_problems(c.order_id) AS pr(problem) WHERE c.parent_id = id;
    END IF;
    INSERT INTO fuzz.failures SELECT seed, step, action, call, pr.problem FROM fuzz.stock_problems() AS pr(problem);
    INSERT INTO fuzz.log VALUES (seed, step, action, coalesce(nullif(outcome, ''), 'ok'));
    RETURN action;
END $$;

-- run steps 1..steps of a seed, one transaction per step
CREATE PROCEDURE fuzz.run(seed int, steps int) LANGUAGE plpgsql AS $$
DECLARE
    i int;
BEGIN
    PERFORM setseed((seed % 1000000) / 1000000.0);
    -- the stock pool (again for a second seed: on top of what is reserved)
    PERFORM order_ext.set_stock(v.sku, v.units + coalesce(s.reserved, 0), v.policy, v.hot, 4)
    FROM (VALUES ('FZ-N1', 500, 'on_create', false), ('FZ-N2', 40, 'on_create', false),
                 ('FZ-HOT', 300, 'on_create', true), ('FZ-PAY', 30, 'on_pay', false),
                 ('FZ-LIM', 1000, 'on_create', false)) AS v(sku, units, policy, hot)
    LEFT JOIN order_ext.stock s ON s.sku = v.sku;
    PERFORM order_ext.set_purchase_limit('FZ-LIM', 5), order_ext.set_purchase_limit('FZ-COUPON', 2);
    COMMIT;
    FOR i IN 1 .. steps LOOP
        PERFORM fuzz.step(seed, i);
        COMMIT;
    END LOOP;
END $$;
