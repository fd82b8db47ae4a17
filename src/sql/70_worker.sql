--------------------------------------------------------------------------
-- The background worker (worker.c): its run log.  Its settings are GUCs
-- (order_ext.worker_databases, naptime, archive_after, archive_batch_size).
--------------------------------------------------------------------------

-- Runs of the background worker (source 'worker') and of archive() calls
-- made by hand or by pg_cron (source 'archive').  Capped: the newest 1000.
CREATE TABLE order_ext.worker_runs (
    id          bigserial   PRIMARY KEY,
    source      text        NOT NULL CHECK (source IN ('worker', 'archive')),
    pid         integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    status      text        NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    results     jsonb       NOT NULL DEFAULT '{}',
    message     text
);
CREATE INDEX worker_runs_running_idx ON order_ext.worker_runs (id) WHERE status = 'running';
COMMENT ON TABLE order_ext.worker_runs IS
'One row per run of the order_ext background worker (source worker) or of order_ext.archive() (source archive): the newest 1000 finished runs kept, and every run still running. results holds what each job did, e.g. {"run_timers": 3, "maintain": 0, "archive": 1200}. A run left running by a crash or a terminated process is marked failed when the next run starts.';

INSERT INTO order_ext.role_grants VALUES
    ('admin', 'table', 'worker_runs', 'SELECT');
