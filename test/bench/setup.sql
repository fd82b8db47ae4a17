-- test/bench/setup.sql — run once on the bench cluster before any comparison.
-- Creates what the scripts need; the current month's partitions are made by
-- CREATE EXTENSION itself (it runs order_ext.maintain()).
CREATE EXTENSION order_ext;
CREATE SEQUENCE bench_seq;     -- baseline of new_order_id
