--
-- ids: new_order_id(), order_id_time(), min_order_id()  (API.md "Identifiers")
--
-- Ids, timestamps and hashes are never printed: only booleans, counts and
-- differences, so the output is the same on every run.
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- err(sql): 'ok', or 'SQLSTATE: message' of the error the statement raised
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

--------------------------------------------------------------------------
-- new_order_id
--------------------------------------------------------------------------

-- positive, a bigint
SELECT order_ext.new_order_id() > 0 AS positive,
       pg_typeof(order_ext.new_order_id()) AS type;

-- 100000 calls in one statement, one call per row in row order: all
-- positive, all distinct, each strictly larger than the one before
WITH ids AS MATERIALIZED (
    SELECT g.n, order_ext.new_order_id() AS id
    FROM generate_series(1, 100000) AS g(n)
), s AS (
    SELECT n, id, lag(id) OVER (ORDER BY n) AS prev FROM ids
)
SELECT count(*) AS calls,
       count(DISTINCT id) AS distinct_ids,
       count(*) FILTER (WHERE id <= 0) AS not_positive,
       count(*) FILTER (WHERE id <= prev) AS not_increasing
FROM s;

-- the same in row order with ordinality over an unordered source
WITH ids AS MATERIALIZED (
    SELECT u.ord, order_ext.new_order_id() AS id
    FROM unnest(array_fill(0, ARRAY[5000])) WITH ORDINALITY AS u(x, ord)
)
SELECT count(*) FILTER (WHERE id <= prev) AS not_increasing
FROM (SELECT id, lag(id) OVER (ORDER BY ord) AS prev FROM ids) s;

-- across statements: a later id is larger than every earlier one
SELECT order_ext.new_order_id() AS id1 \gset
SELECT order_ext.new_order_id() > :id1 AS next_statement_larger;
SELECT pg_sleep(0.01);
SELECT order_ext.new_order_id() > :id1 AS after_sleep_larger;
-- ids issued a second later are larger, also in time
SELECT order_ext.new_order_id() AS id2 \gset
SELECT pg_sleep(1.0);
SELECT order_ext.new_order_id() AS id3 \gset
SELECT :id3 > :id2 AS second_later_larger,
       order_ext.order_id_time(:id3) - order_ext.order_id_time(:id2) >= interval '0.9 second' AS time_a_second_later;

-- the node id field (bits 12..21) is order_ext.node_id
SELECT (order_ext.new_order_id() >> 12) & 1023 = current_setting('order_ext.node_id')::int AS node_id_embedded;

-- order_id_time of a fresh id is now (ids may run a few ms ahead under load)
SELECT order_ext.order_id_time(order_ext.new_order_id())
       BETWEEN now() - interval '1 minute' AND now() + interval '1 minute' AS time_is_now;
SELECT order_ext.order_id_time(order_ext.new_order_id())
       BETWEEN clock_timestamp() - interval '1 second' AND clock_timestamp() + interval '1 second' AS time_is_clock;

-- min_order_id(order_id_time(id)) <= id < min_order_id(order_id_time(id) + 1 ms)
WITH ids AS MATERIALIZED (
    SELECT order_ext.new_order_id() AS id FROM generate_series(1, 1000)
)
SELECT count(*) FILTER (WHERE NOT (
           order_ext.min_order_id(order_ext.order_id_time(id)) <= id
       AND id < order_ext.min_order_id(order_ext.order_id_time(id) + interval '1 millisecond'))) AS outside_its_ms
FROM ids;

-- an id issued now is >= min_order_id(now() - 1 day): the range scan of API.md
SELECT order_ext.new_order_id() >= order_ext.min_order_id(now() - interval '1 day') AS in_last_day,
       order_ext.new_order_id() >= order_ext.min_order_id(now()) AS in_this_transaction;

--------------------------------------------------------------------------
-- order_id_time / min_order_id
--------------------------------------------------------------------------

-- order_id_time has millisecond precision; min_order_id rounds down to the ms
SELECT order_ext.order_id_time(order_ext.min_order_id('2024-02-10 12:34:56.789999+00'));
SELECT order_ext.min_order_id('2024-02-10 12:34:56.789999+00')
     = order_ext.min_order_id('2024-02-10 12:34:56.789+00') AS floor_to_ms;
-- every id of one ms maps back to that ms; the next ms starts a new range
SELECT order_ext.order_id_time(order_ext.min_order_id('2024-02-10 12:00:00+00') + 4194303) AS last_id_of_ms,
       order_ext.order_id_time(order_ext.min_order_id('2024-02-10 12:00:00+00') + 4194304) AS first_id_of_next_ms;
-- one ms is 2^22 ids (10 bits node + 12 bits sequence)
SELECT order_ext.min_order_id('2024-02-10 12:00:00.001+00')
     - order_ext.min_order_id('2024-02-10 12:00:00+00') AS ids_per_ms;
-- independent of the session time zone
SET TimeZone = 'Asia/Shanghai';
SELECT order_ext.min_order_id('2024-02-10 20:00:00+08') = order_ext.min_order_id('2024-02-10 12:00:00+00') AS tz_independent;
SET TimeZone = 'UTC';

-- min_order_id is strictly monotone over the whole id range
WITH t AS (
    SELECT ts FROM generate_series(timestamptz '2020-01-01 00:00:00.001+00',
                                   timestamptz '2089-09-01 00:00:00+00',
                                   interval '9 days 7 hours 3.217 seconds') AS g(ts)
), s AS (
    SELECT ts, order_ext.min_order_id(ts) AS id,
           lag(order_ext.min_order_id(ts)) OVER (ORDER BY ts) AS prev
    FROM t
)
SELECT count(*) > 2700 AS many,
       count(*) FILTER (WHERE id <= prev) AS not_increasing,
       count(*) FILTER (WHERE order_ext.order_id_time(id) <> date_trunc('milliseconds', ts)) AS no_round_trip
FROM s;

-- the ends of the id range
SELECT order_ext.min_order_id('2020-01-01 00:00:00.001+00') AS first_ms_id;
SELECT order_ext.order_id_time(1) AS time_of_id_1;
SELECT order_ext.order_id_time(9223372036854775807) AS time_of_max_id;
SELECT order_ext.min_order_id('2089-09-06 15:47:35.551+00')
     = 9223372036854775807 - 4194303 AS last_ms_is_max_bigint;

-- errors: ids are positive
SELECT pg_temp.err('SELECT order_ext.order_id_time(0)');
SELECT pg_temp.err('SELECT order_ext.order_id_time(-5)');
SELECT pg_temp.err('SELECT order_ext.order_id_time(-9223372036854775808)');
-- errors: times outside the id range, and infinite times
SELECT pg_temp.err($$SELECT order_ext.min_order_id('infinity')$$);
SELECT pg_temp.err($$SELECT order_ext.min_order_id('-infinity')$$);
SELECT pg_temp.err($$SELECT order_ext.min_order_id('2019-12-31')$$);
SELECT pg_temp.err($$SELECT order_ext.min_order_id('2019-12-31 23:59:59.999+00')$$);
SELECT pg_temp.err($$SELECT order_ext.min_order_id('2100-01-01')$$);
SELECT pg_temp.err($$SELECT order_ext.min_order_id('2089-09-06 15:47:35.552+00')$$);

-- NULL in, NULL out (STRICT)
SELECT order_ext.order_id_time(NULL) IS NULL AS time_of_null,
       order_ext.min_order_id(NULL) IS NULL AS min_of_null;

-- declared properties
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, p.prorettype::regtype
FROM pg_proc p
WHERE p.pronamespace = 'order_ext'::regnamespace
  AND p.proname IN ('new_order_id', 'order_id_time', 'min_order_id')
ORDER BY p.proname;

DROP EXTENSION order_ext CASCADE;
