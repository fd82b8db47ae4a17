--
-- partitions: monthly partitions of the order tables, maintain(),
-- create_partitions(), and create_order's clear error for a month that
-- has no partition  (API.md "Tables", "Archiving history orders")
--
CREATE EXTENSION order_ext;
-- deliberately not UTC: partitions are UTC months whatever the session says
SET TimeZone = 'PST8PDT';
SET DateStyle = 'ISO, YMD';

CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- every partition of the five partitioned order tables, with the month its
-- name claims (UTC) and its bound expression
CREATE VIEW pg_temp.parts AS
SELECT p.relname AS parent, c.relname AS part,
       to_timestamp(substring(c.relname from '_p([0-9]{4}_[0-9]{2})$'), 'YYYY_MM')::timestamp AS month,
       pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relnamespace = 'order_ext'::regnamespace AND p.relkind = 'p';

-- the tables that are partitioned
SELECT relname FROM pg_class
WHERE relnamespace = 'order_ext'::regnamespace AND relkind = 'p'
ORDER BY relname;

--------------------------------------------------------------------------
-- after CREATE EXTENSION: the current month and the next three
--------------------------------------------------------------------------

SELECT parent, count(*) AS partitions FROM pg_temp.parts GROUP BY parent ORDER BY parent;

-- exactly the months now .. now + 3 (UTC), no more, no less
WITH expected AS (
    SELECT t AS parent,
           t || '_p' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + k * interval '1 month', 'YYYY_MM') AS part
    FROM unnest(ARRAY['orders', 'order_items', 'order_payments', 'order_discounts', 'order_events']) AS t,
         generate_series(0, 3) AS k
)
SELECT (SELECT count(*) FROM expected) AS expected,
       (SELECT count(*) FROM (SELECT parent, part FROM expected EXCEPT SELECT parent, part FROM pg_temp.parts) x) AS missing,
       (SELECT count(*) FROM (SELECT parent, part FROM pg_temp.parts EXCEPT SELECT parent, part FROM expected) x) AS unexpected;

-- each partition covers [min_order_id(month start), min_order_id(next month start)), UTC months
SELECT count(*) AS partitions,
       count(*) FILTER (WHERE bound = format('FOR VALUES FROM (%L) TO (%L)',
                                order_ext.min_order_id(month AT TIME ZONE 'UTC'),
                                order_ext.min_order_id((month + interval '1 month') AT TIME ZONE 'UTC'))) AS bounds_right
FROM pg_temp.parts;

-- the partitions of one month share their bounds, and months are contiguous
SELECT count(DISTINCT bound) AS distinct_bounds FROM pg_temp.parts;
SELECT count(*) AS gaps
FROM (SELECT month, lead(month) OVER (ORDER BY month) AS next
      FROM (SELECT DISTINCT month FROM pg_temp.parts) m) s
WHERE next IS NOT NULL AND next <> month + interval '1 month';

-- nothing to do: 0, and repeatable
SELECT order_ext.maintain() AS maintain;
SELECT order_ext.maintain() AS maintain_again;

-- a missing premade month (all five tables) is made again: 1, then 0
-- (partitions are extension members: released from it before DROP)
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['orders', 'order_items', 'order_payments', 'order_discounts', 'order_events'] LOOP
        EXECUTE format('ALTER EXTENSION order_ext DROP TABLE order_ext.%I',
                       t || '_p' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months', 'YYYY_MM'));
        EXECUTE format('DROP TABLE order_ext.%I',
                       t || '_p' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months', 'YYYY_MM'));
    END LOOP;
END $$;
SELECT count(*) AS partitions_after_drop FROM pg_temp.parts;
SELECT order_ext.maintain() AS maintain_remakes;
SELECT count(*) AS partitions FROM pg_temp.parts;
SELECT order_ext.maintain() AS maintain_again;

-- every orders partition carries the version guard trigger (cloned from the parent)
SELECT count(*) AS orders_partitions,
       count(t.oid) AS with_guard
FROM pg_temp.parts p
LEFT JOIN pg_trigger t ON t.tgrelid = ('order_ext.' || p.part)::regclass AND t.tgname = 'orders_guard'
WHERE p.parent = 'orders';

--------------------------------------------------------------------------
-- create_partitions
--------------------------------------------------------------------------

SELECT order_ext.create_partitions('2024-01-15', '2024-03-02') AS new_months;
SELECT order_ext.create_partitions('2024-01-15', '2024-03-02') AS repeat;
SELECT order_ext.create_partitions('2024-02-01', '2024-02-29') AS inside;
-- overlapping: only December is new
SELECT order_ext.create_partitions('2023-12-31', '2024-01-01') AS overlapping;
SELECT parent, part FROM pg_temp.parts WHERE month < '2025-01-01' ORDER BY parent, part;

-- months are UTC months: 2023-10-31 20:00 PDT is 2023-11-01 03:00 UTC
SELECT order_ext.create_partitions('2023-10-31 20:00:00-07', '2023-10-31 20:00:00-07') AS november;
SELECT part FROM pg_temp.parts WHERE parent = 'orders' AND month < '2023-12-01' ORDER BY part;

-- bounds of everything made so far are still right
SELECT count(*) AS partitions,
       count(*) FILTER (WHERE bound = format('FOR VALUES FROM (%L) TO (%L)',
                                order_ext.min_order_id(month AT TIME ZONE 'UTC'),
                                order_ext.min_order_id((month + interval '1 month') AT TIME ZONE 'UTC'))) AS bounds_right
FROM pg_temp.parts;

-- errors, and nothing is made by a call that fails
SELECT count(*) AS partitions_before_errors FROM pg_temp.parts \gset
SELECT pg_temp.err($$SELECT order_ext.create_partitions('2024-03-02', '2024-01-15')$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions(NULL, '2024-01-15')$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions('2024-01-15', NULL)$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions(NULL, NULL)$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions('infinity', 'infinity')$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions('2024-01-01', 'infinity')$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions('-infinity', '2024-01-01')$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions('2019-12-31 00:00:00+00', '2020-02-01 00:00:00+00')$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions('2030-01-01 00:00:00+00', '2060-01-01 00:00:00+00')$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions('2030-01-01 00:00:00+00', '2095-01-01 00:00:00+00')$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions('2024-03-01', '294276-12-31')$$);
SELECT pg_temp.err($$SELECT order_ext.create_partitions('2089-09-01', '2089-09-02')$$);
SELECT count(*) = :partitions_before_errors AS nothing_made FROM pg_temp.parts;

--------------------------------------------------------------------------
-- partitions are extension members registered with pg_extension_config_dump:
-- pg_dump keeps their rows but not their DDL, which would collide with what
-- CREATE EXTENSION makes in the new database (README "Dump and restore")
--------------------------------------------------------------------------

SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS member_parent
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_ext')
  AND d.deptype = 'e'
  AND d.classid = 'pg_class'::regclass
  AND d.objid IN (SELECT DISTINCT inhparent FROM pg_inherits)
ORDER BY 1;

-- every partition is a member and dumped (its rows), made by CREATE
-- EXTENSION or later by create_partitions
SELECT count(*) > 0 AS has_partitions,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM pg_depend d
           WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
             AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_ext'))) AS not_members,
       count(*) FILTER (WHERE NOT c.oid = ANY ((SELECT extconfig FROM pg_extension WHERE extname = 'order_ext')::oid[]))
           AS not_dumped
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent IN (SELECT d.objid FROM pg_depend d
                      WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_ext')
                        AND d.deptype = 'e' AND d.classid = 'pg_class'::regclass);

-- their indexes and row types are not members by themselves
SELECT count(*) AS partition_index_or_type_members
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_ext')
  AND d.deptype = 'e'
  AND NOT (d.classid = 'pg_class'::regclass
           AND (SELECT relispartition AND relkind = 'r' FROM pg_class WHERE oid = d.objid))
  AND pg_describe_object(d.classid, d.objid, d.objsubid) ~ '_p[0-9]{4}_[0-9]{2}';

-- a restore copies rows into a month the new database does not have: the
-- month is made first (all five tables), as a member; other COPYs are left
-- alone
SELECT count(*) AS months_2031_01 FROM pg_temp.parts WHERE month = '2031-01-01';
COPY order_ext.order_items_p2031_01 FROM '/dev/null';
SELECT count(*) AS months_2031_01 FROM pg_temp.parts WHERE month = '2031-01-01';
SELECT count(*) AS members_2031_01 FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
WHERE d.deptype = 'e' AND c.relname ~ '_p2031_01$';
SELECT pg_temp.err($$COPY order_ext.order_items_p2031_13 FROM '/dev/null'$$) AS no_such_month;
SELECT pg_temp.err($$COPY order_ext.stock_p2031_02 FROM '/dev/null'$$) AS not_an_order_table;
SELECT pg_temp.err($$COPY order_ext.orders_p2031_02 TO '/dev/null'$$) AS copy_to;
SELECT count(*) AS months_2031 FROM pg_temp.parts WHERE month >= '2031-01-01';

--------------------------------------------------------------------------
-- create_order never makes partitions: a month without one is a clear error
--------------------------------------------------------------------------

CREATE FUNCTION pg_temp.counts() RETURNS text LANGUAGE sql AS $$
SELECT format('orders=%s items=%s events=%s outbox=%s partitions=%s',
              (SELECT count(*) FROM order_ext.orders),
              (SELECT count(*) FROM order_ext.order_items),
              (SELECT count(*) FROM order_ext.order_events),
              (SELECT count(*) FROM order_ext.outbox),
              (SELECT count(*) FROM pg_temp.parts))
$$;
SELECT pg_temp.counts();

-- historical import of 2023-02 (no partition): the hint names
-- create_partitions, and running the hint's statement makes it work
DO $$
DECLARE
    msg text;
    hint text;
    code text;
BEGIN
    PERFORM order_ext.create_order(order_ext.min_order_id('2023-02-10 00:00:00+00') + 5, 42,
                                   '[{"sku":"OLD-1","qty":1,"unit_price":100}]');
    RAISE NOTICE 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RAISE NOTICE '% / % / hint names create_partitions: %', code, msg, hint LIKE '%order_ext.create_partitions(%';
    RAISE NOTICE 'hint: %', hint;
    EXECUTE substring(hint from 'SELECT order_ext\.create_partitions\(.*\)');
END $$;
SELECT part FROM pg_temp.parts WHERE month = '2023-02-01' ORDER BY part;
SELECT order_id = order_ext.min_order_id('2023-02-10 00:00:00+00') + 5 AS id_kept, status, version
FROM order_ext.create_order(order_ext.min_order_id('2023-02-10 00:00:00+00') + 5, 42,
                            '[{"sku":"OLD-1","qty":1,"unit_price":100}]');
SELECT tableoid::regclass AS stored_in FROM order_ext.orders
WHERE order_id = order_ext.min_order_id('2023-02-10 00:00:00+00') + 5;
SELECT pg_temp.counts();

-- 2024-04 has no partition either: error, nothing written, no partition made
SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.min_order_id('2024-04-01 00:00:00+00'), 1, '[{"sku":"X","qty":1,"unit_price":1}]')$$);
-- the last id of a far future month
SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.min_order_id('2088-12-31 23:59:59.999+00') + 4194303, 1, '[{"sku":"X","qty":1,"unit_price":1}]')$$);
SELECT pg_temp.counts();

-- ids at the month bounds land in the right month, with all their rows
SELECT order_id = order_ext.min_order_id('2024-02-01 00:00:00+00') AS first_id_of_feb
FROM order_ext.create_order(order_ext.min_order_id('2024-02-01 00:00:00+00'), 7,
                            '[{"sku":"B-1","qty":1,"unit_price":10}]', discounts => '[{"kind":"c","amount":1}]');
SELECT order_id = order_ext.min_order_id('2024-02-01 00:00:00+00') - 1 AS last_id_of_jan
FROM order_ext.create_order(order_ext.min_order_id('2024-02-01 00:00:00+00') - 1, 7,
                            '[{"sku":"B-1","qty":1,"unit_price":10}]');
SELECT order_id = order_ext.min_order_id('2024-04-01 00:00:00+00') - 1 AS last_id_of_mar
FROM order_ext.create_order(order_ext.min_order_id('2024-04-01 00:00:00+00') - 1, 7,
                            '[{"sku":"B-1","qty":1,"unit_price":10}]');
SELECT tableoid::regclass::text AS part, count(*) FROM order_ext.orders WHERE order_id IN
    (order_ext.min_order_id('2024-02-01 00:00:00+00'), order_ext.min_order_id('2024-02-01 00:00:00+00') - 1,
     order_ext.min_order_id('2024-04-01 00:00:00+00') - 1)
GROUP BY 1 ORDER BY 1;
SELECT tableoid::regclass::text AS part, count(*) FROM order_ext.order_items WHERE order_id IN
    (order_ext.min_order_id('2024-02-01 00:00:00+00'), order_ext.min_order_id('2024-02-01 00:00:00+00') - 1,
     order_ext.min_order_id('2024-04-01 00:00:00+00') - 1)
GROUP BY 1 ORDER BY 1;
SELECT tableoid::regclass::text AS part, count(*) FROM order_ext.order_events WHERE order_id IN
    (order_ext.min_order_id('2024-02-01 00:00:00+00'), order_ext.min_order_id('2024-02-01 00:00:00+00') - 1,
     order_ext.min_order_id('2024-04-01 00:00:00+00') - 1)
GROUP BY 1 ORDER BY 1;
SELECT tableoid::regclass::text AS part, count(*) FROM order_ext.order_discounts
GROUP BY 1 ORDER BY 1;

-- an id of the current month works without any create_partitions
SELECT status, version FROM order_ext.create_order(order_ext.new_order_id(), 1, '[{"sku":"NOW","qty":1,"unit_price":1}]');
SELECT pg_temp.counts();

DROP EXTENSION order_ext CASCADE;
-- the partitions went with it
SELECT count(*) AS leftover FROM pg_class WHERE relname ~ '^(orders|order_items|order_payments|order_discounts|order_events)_p[0-9]{4}_[0-9]{2}';
