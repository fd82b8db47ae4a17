--
-- requests: claim_request / complete_request and issue_token / consume_token
-- (API.md "Idempotency for any request"); the concurrent cases are the
-- isolation specs request_*.spec and token_race.spec
--
CREATE EXTENSION order_ext;

CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

--------------------------------------------------------------------------
-- claim, do the work, complete; the same key again returns the response
--------------------------------------------------------------------------

BEGIN;
SELECT order_ext.claim_request('coupon:42:C10', 'buyer=42') IS NULL AS new_key;
-- claiming again in the same transaction: still held by us
SELECT order_ext.claim_request('coupon:42:C10', 'buyer=42') IS NULL AS still_ours;
SELECT order_ext.complete_request('coupon:42:C10', '{"coupon_id": 7}');
-- after completing, even this transaction gets the response
SELECT order_ext.claim_request('coupon:42:C10', 'buyer=42') AS response;
-- completing twice is refused
SELECT pg_temp.err($$SELECT order_ext.complete_request('coupon:42:C10', '{"coupon_id": 8}')$$) AS complete_twice;
COMMIT;
SELECT order_ext.claim_request('coupon:42:C10', 'buyer=42') AS response;
SELECT key, fingerprint, completed, response FROM order_ext.requests ORDER BY key;

-- same key, different fingerprint: OE004 (also a NULL fingerprint differs)
SELECT pg_temp.err($$SELECT order_ext.claim_request('coupon:42:C10', 'buyer=43')$$) AS other_fingerprint;
SELECT pg_temp.err($$SELECT order_ext.claim_request('coupon:42:C10')$$) AS no_fingerprint;
-- without fingerprints a key matches itself
BEGIN;
SELECT order_ext.claim_request('address:9') IS NULL AS new_key;
SELECT order_ext.complete_request('address:9', 'null');
COMMIT;
SELECT order_ext.claim_request('address:9') AS response_json_null,
       order_ext.claim_request('address:9') IS NULL AS is_sql_null;

--------------------------------------------------------------------------
-- the dedup row lives and dies with the transaction
--------------------------------------------------------------------------

BEGIN;
SELECT order_ext.claim_request('refund:1') IS NULL AS new_key;
ROLLBACK;
SELECT count(*) AS rows_after_rollback FROM order_ext.requests WHERE key = 'refund:1';
BEGIN;
SELECT order_ext.claim_request('refund:1') IS NULL AS free_again;
SAVEPOINT s;
SELECT order_ext.complete_request('refund:1', '{"n": 1}');
ROLLBACK TO SAVEPOINT s;
-- the completion rolled back with its savepoint; the claim stays ours
SELECT order_ext.complete_request('refund:1', '{"n": 2}');
COMMIT;
SELECT order_ext.claim_request('refund:1') AS response;

-- an error after the claim takes the claim with it
SELECT pg_temp.err($$SELECT order_ext.claim_request('boom:1'), 1/0$$) AS failed_work;
SELECT count(*) AS rows_after_error FROM order_ext.requests WHERE key = 'boom:1';

-- a transaction that commits without complete_request leaves the key taken
BEGIN;
SELECT order_ext.claim_request('forgot:1', 'f') IS NULL AS new_key;
COMMIT;
SELECT pg_temp.err($$SELECT order_ext.claim_request('forgot:1', 'f')$$) AS never_completed;

--------------------------------------------------------------------------
-- complete_request needs a key this transaction holds
--------------------------------------------------------------------------

SELECT pg_temp.err($$SELECT order_ext.complete_request('nobody:1', '{}')$$) AS not_claimed;
SELECT pg_temp.err($$SELECT order_ext.complete_request('forgot:1', '{}')$$) AS claimed_by_another;
SELECT pg_temp.err($$SELECT order_ext.complete_request('coupon:42:C10', '{}')$$) AS completed_by_another;
BEGIN;
SELECT order_ext.claim_request('nullresp:1') IS NULL AS new_key;
SELECT pg_temp.err($$SELECT order_ext.complete_request('nullresp:1', NULL)$$) AS null_response;
ROLLBACK;

-- malformed keys
SELECT pg_temp.err($$SELECT order_ext.claim_request(NULL)$$) AS null_key;
SELECT pg_temp.err($$SELECT order_ext.claim_request('')$$) AS empty_key;
SELECT pg_temp.err($$SELECT order_ext.claim_request(repeat('k', 501))$$) AS long_key;
SELECT order_ext.claim_request(repeat('k', 500)) IS NULL AS longest_key;
SELECT pg_temp.err($$SELECT order_ext.complete_request(NULL, '{}')$$) AS complete_null_key;

--------------------------------------------------------------------------
-- keys expire after order_ext.request_ttl and are pruned
--------------------------------------------------------------------------

SHOW order_ext.request_ttl;
-- nothing is old enough yet
SELECT order_ext.prune_requests() AS pruned;
SELECT count(*) AS keys FROM order_ext.requests;
-- age one key by two days: it is expired, claimable again, and pruned
UPDATE order_ext.requests SET created_at = created_at - interval '2 days' WHERE key = 'forgot:1';
BEGIN;
SELECT order_ext.claim_request('forgot:1', 'other fingerprint now') IS NULL AS expired_key_is_free;
ROLLBACK;
SELECT count(*) AS still_there FROM order_ext.requests WHERE key = 'forgot:1';
SELECT order_ext.prune_requests() AS pruned;
SELECT left(key, 16) AS key FROM order_ext.requests ORDER BY key;
-- a shorter TTL (superuser only) prunes the rest
SET order_ext.request_ttl = '2s';
SELECT pg_sleep(1.1);
SELECT order_ext.prune_requests() AS pruned;
SELECT count(*) AS keys FROM order_ext.requests;
RESET order_ext.request_ttl;

--------------------------------------------------------------------------
-- tokens: true exactly once while unexpired, false otherwise
--------------------------------------------------------------------------

SELECT order_ext.issue_token() AS t1 \gset
SELECT length(:'t1') AS token_length, :'t1' ~ '^[0-9a-f]{32}$' AS hex;
SELECT count(*) AS stored, bool_and(token_hash = sha256(convert_to(:'t1', 'UTF8'))) AS only_the_hash,
       bool_and(expires_at BETWEEN now() + interval '29 minutes' AND now() + interval '31 minutes') AS thirty_minutes
FROM order_ext.tokens;
SELECT order_ext.consume_token(:'t1') AS first, order_ext.consume_token(:'t1') AS second;
SELECT order_ext.consume_token('no such token') AS unknown, order_ext.consume_token(NULL) AS null_token;
-- a consumption that rolls back leaves the token valid
SELECT order_ext.issue_token('1 hour') AS t2 \gset
BEGIN;
SELECT order_ext.consume_token(:'t2') AS in_rolled_back_txn;
ROLLBACK;
SELECT order_ext.consume_token(:'t2') AS after_rollback;
-- an expired token is false (and gone)
SELECT order_ext.issue_token('1 hour') AS t3 \gset
UPDATE order_ext.tokens SET expires_at = now() - interval '1 second';
SELECT order_ext.consume_token(:'t3') AS expired;
SELECT count(*) AS left_over FROM order_ext.tokens;
-- expired tokens are pruned
SELECT order_ext.issue_token('1 hour') AS t4 \gset
SELECT order_ext.issue_token('1 hour') AS t5 \gset
UPDATE order_ext.tokens SET expires_at = now() - interval '1 second'
WHERE token_hash = sha256(convert_to(:'t4', 'UTF8'));
SELECT order_ext.prune_requests() AS pruned;
SELECT order_ext.consume_token(:'t4') AS pruned_token, order_ext.consume_token(:'t5') AS kept_token;
-- tokens are distinct
SELECT count(DISTINCT order_ext.issue_token()) AS distinct_tokens FROM generate_series(1, 1000);
-- bad ttl
SELECT pg_temp.err($$SELECT order_ext.issue_token(NULL)$$) AS null_ttl;
SELECT pg_temp.err($$SELECT order_ext.issue_token('0')$$) AS zero_ttl;
SELECT pg_temp.err($$SELECT order_ext.issue_token('-1 minute')$$) AS negative_ttl;
SELECT pg_temp.err($$SELECT order_ext.issue_token('1000000 years')$$) AS absurd_ttl,
       pg_temp.err($$SELECT order_ext.issue_token('100 years')$$) ~ '^ok' AS hundred_years;

-- a key's time to live and a token's run from the claim and the issue, not
-- from the start of their transaction: a transaction that ran for longer
-- than the ttl before claiming keeps its key, and its token
SET order_ext.request_ttl = '2s';
BEGIN;
SELECT pg_sleep(2.2);
SELECT order_ext.claim_request('late:1', 'f') IS NULL AS late_claimed;
SELECT order_ext.complete_request('late:1', '{"done": 1}');
SELECT order_ext.issue_token('2 seconds') AS late_token \gset
COMMIT;
SELECT order_ext.claim_request('late:1', 'f') AS late_again;
SELECT order_ext.consume_token(:'late_token') AS late_token_valid;
RESET order_ext.request_ttl;

-- a token with bytes no issued token has is simply not one (false), also in
-- a SQL_ASCII database, where such a text need not convert to UTF8 (it was
-- an error from inside the lookup)
SELECT order_ext.consume_token('jeton-à-usage-unique') AS not_ascii;
SELECT current_database() AS regress_db \gset
CREATE DATABASE oe_regress_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c oe_regress_ascii
CREATE EXTENSION order_ext;
SET client_encoding = 'SQL_ASCII';
SELECT order_ext.consume_token(E'\xe9\xff') AS not_utf8;
SELECT order_ext.consume_token(order_ext.issue_token()) AS issued_token_here;
\c :regress_db
DROP DATABASE oe_regress_ascii;

DROP EXTENSION order_ext CASCADE;
