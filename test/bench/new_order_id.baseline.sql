-- baseline: a plain sequence (no time order, no node id, not global).
SELECT nextval('bench_seq');
