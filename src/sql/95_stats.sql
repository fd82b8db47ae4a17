--------------------------------------------------------------------------
-- Observability: one view over what a DBA asks first.  (It counts live
-- orders with a scan of order_ext.orders: cheap on a month or two of
-- orders, which is what archiving keeps live.)
--------------------------------------------------------------------------

CREATE VIEW order_ext.stats AS
SELECT 'orders'::text AS section, machine || '/' || status AS name, count(*)::bigint AS value,
       NULL::jsonb AS detail
FROM order_ext.orders GROUP BY machine, status
UNION ALL
SELECT 'reservations', 'held', count(*), jsonb_build_object('units', coalesce(sum(qty), 0),
                                                            'skus', count(DISTINCT sku))
FROM order_ext.reservations
UNION ALL
SELECT 'stock', 'skus_out_of_stock', count(*) FILTER (WHERE available = 0),
       jsonb_build_object('skus', count(*), 'hot', count(*) FILTER (WHERE hot))
FROM order_ext.stock
UNION ALL
SELECT 'timers', 'due', count(*) FILTER (WHERE due_at <= now()),
       jsonb_build_object('scheduled', count(*), 'oldest_due', min(due_at) FILTER (WHERE due_at <= now()))
FROM order_ext.timers
UNION ALL
SELECT 'timers', 'overdue', count(*) FILTER (WHERE due_at <= now() - interval '5 minutes'), NULL
FROM order_ext.timers
UNION ALL
SELECT 'outbox', 'backlog:' || c.consumer,
       (SELECT count(*) FROM order_ext.outbox o
        WHERE o.txid >= c.horizon
          AND NOT EXISTS (SELECT 1 FROM order_ext.outbox_acks a
                          WHERE a.consumer = c.consumer AND a.order_id = o.order_id AND a.id = o.id)),
       jsonb_build_object('horizon', c.horizon::text, 'last_ack_at', c.last_ack_at)
FROM order_ext.consumers c
UNION ALL
SELECT 'outbox', 'rows', count(*), NULL FROM order_ext.outbox
UNION ALL
SELECT 'runs', 'last_' || r.source, r.id,
       jsonb_build_object('status', r.status, 'started_at', r.started_at, 'finished_at', r.finished_at,
                          'results', r.results, 'message', r.message)
FROM (SELECT DISTINCT ON (source) * FROM order_ext.worker_runs ORDER BY source, id DESC) r
UNION ALL
SELECT 'runs', 'failed_last_day', count(*), NULL FROM order_ext.worker_runs
WHERE status = 'failed' AND started_at > now() - interval '1 day';
COMMENT ON VIEW order_ext.stats IS
'What to look at first: orders per machine and status, reservations held, out-of-stock SKUs, timers due and overdue (over 5 minutes late), the outbox backlog per consumer, the last worker and archive runs and failed runs of the last day. Columns: section, name, value, detail (jsonb).';

INSERT INTO order_ext.role_grants VALUES
    ('admin', 'table', 'stats', 'SELECT');
