--------------------------------------------------------------------------
-- Archiving history orders (archive.c): a history twin of every per-order
-- table, partitioned the same way, so that a month can move as a whole
-- partition and single orders can move by primary key.
--------------------------------------------------------------------------

-- Same columns, defaults, CHECK constraints and indexes as the live tables:
-- a live partition detached from its parent can be attached here as it is.
CREATE TABLE order_ext.orders_history
    (LIKE order_ext.orders INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
     PRIMARY KEY (order_id)) PARTITION BY RANGE (order_id);
CREATE INDEX orders_history_buyer_idx ON order_ext.orders_history (buyer_id);
COMMENT ON TABLE order_ext.orders_history IS
'Archived orders (order_ext.archive()): the same columns as order_ext.orders, partitioned by order_id the same way. Read with order_ext.find_order() or the view order_ext.all_orders.';

CREATE TABLE order_ext.order_items_history
    (LIKE order_ext.order_items INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
     PRIMARY KEY (order_id, line_no)) PARTITION BY RANGE (order_id);
COMMENT ON TABLE order_ext.order_items_history IS
'Lines of archived orders (same columns as order_ext.order_items).';

CREATE TABLE order_ext.order_payments_history
    (LIKE order_ext.order_payments INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
     PRIMARY KEY (order_id, kind, txn_id)) PARTITION BY RANGE (order_id);
COMMENT ON TABLE order_ext.order_payments_history IS
'Payments and refunds of archived orders (same columns as order_ext.order_payments).';

CREATE TABLE order_ext.order_discounts_history
    (LIKE order_ext.order_discounts INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
     PRIMARY KEY (order_id, seq)) PARTITION BY RANGE (order_id);
COMMENT ON TABLE order_ext.order_discounts_history IS
'Discounts of archived orders (same columns as order_ext.order_discounts).';

CREATE TABLE order_ext.order_events_history
    (LIKE order_ext.order_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
     PRIMARY KEY (order_id, version)) PARTITION BY RANGE (order_id);
COMMENT ON TABLE order_ext.order_events_history IS
'Timelines of archived orders (same columns as order_ext.order_events).';

-- After-sales requests of archived orders (all finished): not partitioned,
-- like order_ext.after_sales; archive() moves them after their orders.
CREATE TABLE order_ext.after_sales_history
    (LIKE order_ext.after_sales INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
     PRIMARY KEY (order_id, id));
CREATE INDEX after_sales_history_id_idx ON order_ext.after_sales_history (id);
-- user data, not part of the extension's definition: pg_dump keeps the rows
SELECT pg_catalog.pg_extension_config_dump('order_ext.after_sales_history', '');
COMMENT ON TABLE order_ext.after_sales_history IS
'After-sales requests of archived orders (same columns as order_ext.after_sales), moved by order_ext.archive() once their order is in history.';

-- Reports over live and archived orders alike.
CREATE VIEW order_ext.all_orders AS
    SELECT o.*, false AS archived FROM order_ext.orders o
    UNION ALL
    SELECT h.*, true AS archived FROM order_ext.orders_history h;
COMMENT ON VIEW order_ext.all_orders IS
'Every order, live (archived = false) or archived by order_ext.archive() (archived = true); an order is in exactly one of the two.';

CREATE FUNCTION order_ext.archive(older_than interval DEFAULT '90 days', batch_size integer DEFAULT 1000)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'archive' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.archive(interval, integer) IS
'Move orders created before now() - older_than (by the time in their id) whose status is terminal, with all their rows, to the history tables; returns how many orders moved. A month whose orders are all archivable moves as whole partitions in one short transaction; other orders move batch_size at a time by primary key, one transaction per batch, pausing order_ext.archive_pause between batches. Runs in a background process of its own (it commits batch by batch), so call it outside a transaction that has written anything. Cancel it at any time: finished batches stay moved, the next call carries on.';

-- Internal: the yield point archive()'s batch statements call for every row
-- they move (order_ext.archive_yield).  No one else has EXECUTE.
CREATE FUNCTION order_ext.archive_yield() RETURNS boolean
    AS 'MODULE_PATHNAME', 'archive_yield' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION order_ext.archive_yield() IS
'Internal to order_ext.archive(): called for every row a batch moves; every 16 rows, while more tasks are runnable than the machine has CPUs, sleeps (at most 2 ms), so that live work gets a CPU. Always true.';

CREATE FUNCTION order_ext.find_order(order_id bigint) RETURNS order_ext.orders
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT o FROM order_ext.orders o WHERE o.order_id = $1
    UNION ALL
    SELECT jsonb_populate_record(NULL::order_ext.orders, to_jsonb(h))
      FROM order_ext.orders_history h WHERE h.order_id = $1
    LIMIT 1
$$;
COMMENT ON FUNCTION order_ext.find_order(bigint) IS
'The order, live or archived; NULL when there is no such order.';

-- timeline() of 50_state_machine.sql, extended to archived orders.
CREATE OR REPLACE FUNCTION order_ext.timeline(order_id bigint) RETURNS SETOF order_ext.order_events
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (x.e).* FROM (
        SELECT e FROM order_ext.order_events e WHERE e.order_id = $1
        UNION ALL
        SELECT jsonb_populate_record(NULL::order_ext.order_events, to_jsonb(h))
          FROM order_ext.order_events_history h WHERE h.order_id = $1) x
    ORDER BY (x.e).version
$$;
COMMENT ON FUNCTION order_ext.timeline(bigint) IS
'The order''s events in order: creation first, one row per version; archived orders too.';

CREATE FUNCTION order_ext.run_timers_claimed(max integer DEFAULT 1000) RETURNS integer
    AS 'MODULE_PATHNAME', 'run_timers_claimed' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.run_timers_claimed(integer) IS
'Internal (the background worker): like run_timers(max), but returns how many due timers were handled, fired or dropped as stale, so that a caller can loop until none are left.';

INSERT INTO order_ext.role_grants VALUES
    ('app', 'table', 'orders_history', 'SELECT'),
    ('app', 'table', 'order_items_history', 'SELECT'),
    ('app', 'table', 'order_payments_history', 'SELECT'),
    ('app', 'table', 'order_discounts_history', 'SELECT'),
    ('app', 'table', 'order_events_history', 'SELECT'),
    ('app', 'table', 'after_sales_history', 'SELECT'),
    ('app', 'table', 'all_orders', 'SELECT'),
    ('app', 'function', 'find_order', 'EXECUTE'),
    ('admin', 'function', 'archive', 'EXECUTE'),
    ('admin', 'function', 'run_timers_claimed', 'EXECUTE');
