--------------------------------------------------------------------------
-- Idempotency for any request: the dedup table and tokens (requests.c)
--------------------------------------------------------------------------

-- One row per claimed key, inserted in the claiming transaction (it lives
-- and dies with the work); completed when complete_request stores the
-- response.  Kept for order_ext.request_ttl after created_at.
CREATE TABLE order_ext.requests (
    key          text        PRIMARY KEY,
    fingerprint  text,
    completed    boolean     NOT NULL DEFAULT false,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    CHECK (completed = (response IS NOT NULL))
);
CREATE INDEX requests_created_idx ON order_ext.requests (created_at);
COMMENT ON TABLE order_ext.requests IS
'Request keys claimed with order_ext.claim_request() and their stored responses; pruned after order_ext.request_ttl.';

-- Tokens by their SHA-256 only: reading the table gives nothing to consume.
CREATE TABLE order_ext.tokens (
    token_hash bytea       PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX tokens_expires_idx ON order_ext.tokens (expires_at);
COMMENT ON TABLE order_ext.tokens IS
'Tokens issued by order_ext.issue_token() and not consumed yet (SHA-256 of the token).';

CREATE FUNCTION order_ext.claim_request(key text, fingerprint text DEFAULT NULL) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'claim_request' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.claim_request(text, text) IS
'Call first in the transaction that does a request''s work. NULL: the key is new and now held by this transaction (do the work, then order_ext.complete_request). Not NULL: the stored response of the completed request (do nothing). A second transaction with the same key waits for the first; if the first rolls back, the key is free again. Same key with another fingerprint: OE004.';

CREATE FUNCTION order_ext.complete_request(key text, response jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'complete_request' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.complete_request(text, jsonb) IS
'Store the response of a key this transaction claimed with order_ext.claim_request; it is returned to every later claim of the key until order_ext.request_ttl has passed.';

CREATE FUNCTION order_ext.issue_token(ttl interval DEFAULT '30 minutes') RETURNS text
    AS 'MODULE_PATHNAME', 'issue_token' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.issue_token(interval) IS
'A new random token (32 hex digits) valid for ttl; only its SHA-256 is stored. Hand it to the page; order_ext.consume_token() accepts it exactly once.';

CREATE FUNCTION order_ext.consume_token(token text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'consume_token' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.consume_token(text) IS
'True exactly once for an issued, unexpired token, whatever the concurrency (an atomic get-and-delete); false otherwise.';

CREATE FUNCTION order_ext.prune_requests() RETURNS bigint
    AS 'MODULE_PATHNAME', 'prune_requests' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.prune_requests() IS
'Drop request keys older than order_ext.request_ttl and expired tokens; returns how many rows went. Run by the background worker, or: SELECT cron.schedule(''order-prune'', ''*/10 * * * *'', ''SELECT order_ext.prune_requests()'');';

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'claim_request', 'EXECUTE'),
    ('app', 'function', 'complete_request', 'EXECUTE'),
    ('app', 'function', 'issue_token', 'EXECUTE'),
    ('app', 'function', 'consume_token', 'EXECUTE'),
    ('admin', 'function', 'prune_requests', 'EXECUTE'),
    ('admin', 'table', 'requests', 'SELECT');
