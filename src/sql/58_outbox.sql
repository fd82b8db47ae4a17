--------------------------------------------------------------------------
-- Events out: reading the outbox (outbox.c)
--------------------------------------------------------------------------

-- The id of the top-level transaction that wrote the row: consumers'
-- horizons are transaction ids (see outbox.c), so that a transaction that
-- commits after a later one is never skipped.
ALTER TABLE order_ext.outbox ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX outbox_txid_idx ON order_ext.outbox (txid);
COMMENT ON COLUMN order_ext.outbox.txid IS
'The writing (top-level) transaction: read_events / ack_events track consumers by transaction, so out-of-order commits are never skipped.';

CREATE TABLE order_ext.consumers (
    consumer      text        PRIMARY KEY CHECK (consumer <> '' AND length(consumer) <= 200),
    horizon       xid8        NOT NULL DEFAULT '0',
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_ack_at   timestamptz
);
COMMENT ON TABLE order_ext.consumers IS
'Outbox consumers: every event of a transaction older than horizon is acknowledged by the consumer; newer ones are acknowledged one by one in outbox_acks. prune_outbox deletes what every consumer acknowledged.';

-- Acknowledgements above a consumer's horizon (per order, like the outbox).
CREATE TABLE order_ext.outbox_acks (
    consumer text   NOT NULL REFERENCES order_ext.consumers ON DELETE CASCADE,
    order_id bigint NOT NULL,
    id       bigint NOT NULL,
    txid     xid8   NOT NULL,
    PRIMARY KEY (consumer, order_id, id)
);
CREATE INDEX outbox_acks_txid_idx ON order_ext.outbox_acks (consumer, txid);
-- Not dumped by pg_dump (unlike after_sales): horizons are transaction ids
-- of this cluster, meaningless in another; consumers register again there.
COMMENT ON TABLE order_ext.outbox_acks IS
'Events a consumer acknowledged above its horizon; dropped when the horizon passes them.';

CREATE FUNCTION order_ext.register_consumer(consumer text, from_now boolean DEFAULT false)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'register_consumer' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.register_consumer(text, boolean) IS
'Register an outbox consumer (read_events registers one on first use): it gets every event kept, or with from_now only those of transactions still running or to come. true if new.';

CREATE FUNCTION order_ext.unregister_consumer(consumer text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'unregister_consumer' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.unregister_consumer(text) IS
'Forget an outbox consumer, so that prune_outbox no longer keeps events for it. true if it existed.';

CREATE FUNCTION order_ext.read_events(consumer text, max integer DEFAULT 100)
    RETURNS SETOF order_ext.outbox
    AS 'MODULE_PATHNAME', 'read_events' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.read_events(text, integer) IS
'The consumer''s oldest unacknowledged outbox events (at most max, in id order); they come back on every read until acknowledged with ack_events. No event is skipped, also when transactions commit out of id order. Registers the consumer on first use.';

CREATE FUNCTION order_ext.ack_events(consumer text, ids bigint[]) RETURNS integer
    AS 'MODULE_PATHNAME', 'ack_events' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.ack_events(text, bigint[]) IS
'Acknowledge outbox events (by id) for a consumer; returns how many were newly acknowledged. Unknown or already acknowledged ids are ignored.';

CREATE FUNCTION order_ext.prune_outbox(max bigint DEFAULT 100000) RETURNS bigint
    AS 'MODULE_PATHNAME', 'prune_outbox' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.prune_outbox(bigint) IS
'Delete up to max outbox events that every registered consumer has acknowledged; returns how many. Nothing while no consumer is registered. For the worker or pg_cron: SELECT cron.schedule(''order-outbox'', ''*/5 * * * *'', ''SELECT order_ext.prune_outbox()'').';

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'read_events', 'EXECUTE'),
    ('app', 'function', 'ack_events', 'EXECUTE'),
    ('app', 'function', 'register_consumer', 'EXECUTE'),
    ('admin', 'function', 'unregister_consumer', 'EXECUTE'),
    ('admin', 'function', 'prune_outbox', 'EXECUTE'),
    ('admin', 'table', 'consumers', 'SELECT'),
    ('admin', 'table', 'outbox_acks', 'SELECT');
