-- test/bench/setup.sql — run once on the bench cluster before any comparison.
-- Creates what the scripts need; the current month's partitions are made by
-- CREATE EXTENSION itself (it runs order_ext.maintain()).
CREATE EXTENSION order_ext;
CREATE SEQUENCE bench_seq;     -- baseline of new_order_id

-- fire(): a user-defined two-status machine so that every fire is legal,
-- 20,000 orders on it, and plain copies of orders/order_events for the
-- baseline (no trigger, no partitions).
INSERT INTO order_ext.machines (machine, initial_status, description)
VALUES ('bench_toggle', 'a', 'bench: a <-> b');
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors)
VALUES ('bench_toggle', 'a', 'toggle', 'b', '{system}'),
       ('bench_toggle', 'b', 'toggle', 'a', '{system}');
CREATE TABLE bench_fire_ids (n int PRIMARY KEY, order_id bigint NOT NULL);
INSERT INTO bench_fire_ids
SELECT i, (order_ext.create_order(order_ext.new_order_id(), i,
           '[{"sku":"X","qty":1,"unit_price":100}]', 'bench_toggle')).order_id
FROM generate_series(1, 20000) i;
CREATE TABLE bench_orders (LIKE order_ext.orders INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
INSERT INTO bench_orders SELECT * FROM order_ext.orders WHERE machine = 'bench_toggle';
CREATE TABLE bench_events (LIKE order_ext.order_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
INSERT INTO bench_events SELECT e.* FROM order_ext.order_events e JOIN bench_fire_ids USING (order_id);
VACUUM ANALYZE;

-- stock (issue 4): the baseline's stock table, and the same SKUs in
-- order_ext: the flash-sale SKU in normal and in hot mode, and 10,000 SKUs.
-- Enough units that no run sells out.
CREATE TABLE bench_stock (sku text PRIMARY KEY, on_hand bigint NOT NULL,
                          reserved bigint NOT NULL DEFAULT 0,
                          CHECK (reserved >= 0 AND reserved <= on_hand)) WITH (fillfactor = 50);
INSERT INTO bench_stock VALUES ('FLASH', 1000000000000);
INSERT INTO bench_stock SELECT 'R-' || i, 1000000000 FROM generate_series(1, 10000) i;
SELECT count(*) FROM (
    SELECT order_ext.set_stock('FLASH-N', 1000000000000)
    UNION ALL SELECT order_ext.set_stock('FLASH-H', 1000000000000, hot => true, buckets => 64)
    UNION ALL SELECT order_ext.set_stock('R-' || i, 1000000000) FROM generate_series(1, 10000) i) s;
-- life_order: plain copies (no trigger, no partitioning) of the tables an
-- order's life writes, for the baseline's raw SQL
CREATE TABLE bench_life_orders (LIKE order_ext.orders INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_life_items (LIKE order_ext.order_items INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_life_payments (LIKE order_ext.order_payments INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_life_events (LIKE order_ext.order_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_life_outbox (LIKE order_ext.outbox INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_life_timers (LIKE order_ext.timers INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
VACUUM ANALYZE;
