--
-- outbox: read_events(), ack_events(), consumers, prune_outbox()
-- (API.md "Events out (outbox)")
--
-- Ids are never printed: events are known by their order's tag, event and
-- version.  Out-of-order commits are in test/isolation/specs/outbox_order.spec.
--
CREATE EXTENSION order_ext;

CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{13,}', '<id>', 'g');
END $$;

CREATE TEMP TABLE o (tag text PRIMARY KEY, id bigint NOT NULL UNIQUE);
CREATE FUNCTION pg_temp.mk(tag text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := order_ext.new_order_id();
BEGIN
    PERFORM order_ext.create_order(new_id, 42, '[{"sku":"OB-1","qty":1,"unit_price":100}]');
    INSERT INTO pg_temp.o VALUES (tag, new_id);
    RETURN new_id;
END $$;
CREATE FUNCTION pg_temp.id(tag text) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT id FROM pg_temp.o WHERE o.tag = $1 $$;

-- read(consumer, max): what read_events returns, by tag
CREATE FUNCTION pg_temp.read(consumer text, max int DEFAULT 100) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(string_agg(format('%s:%s.v%s', o.tag, e.event, e.version), ' ' ORDER BY e.id), '(none)')
    FROM order_ext.read_events($1, $2) e LEFT JOIN pg_temp.o o ON o.id = e.order_id
$$;
-- ack(consumer, tag, event): acknowledge that order's events of that name
CREATE FUNCTION pg_temp.ack(consumer text, tag text, event text DEFAULT NULL) RETURNS int LANGUAGE sql VOLATILE AS $$
    SELECT order_ext.ack_events($1, ARRAY(SELECT x.id FROM order_ext.outbox x
                                          WHERE x.order_id = pg_temp.id($2) AND ($3 IS NULL OR x.event = $3)))
$$;

SELECT pg_temp.mk('a') IS NOT NULL AS a, pg_temp.mk('b') IS NOT NULL AS b;
SELECT status FROM order_ext.record_payment(pg_temp.id('a'), 'T-A', 100);
SELECT status FROM order_ext.fire(pg_temp.id('b'), 'cancel', actor => 'buyer');
-- every change has its outbox row, with the writing transaction's id
SELECT o.tag, x.event, x.version, x.txid IS NOT NULL AS has_txid
FROM order_ext.outbox x JOIN pg_temp.o o ON o.id = x.order_id ORDER BY x.id;

-- a new consumer gets everything kept, oldest first, at most max at a time
SELECT pg_temp.read('mailer', 2);
SELECT pg_temp.read('mailer');
SELECT consumer FROM order_ext.consumers;
-- not acknowledged: the same events come back
SELECT pg_temp.read('mailer');
SELECT pg_temp.ack('mailer', 'a') AS acked;
SELECT pg_temp.read('mailer');
-- acknowledging again, or ids that do not exist, changes nothing
SELECT pg_temp.ack('mailer', 'a') AS acked_again,
       order_ext.ack_events('mailer', ARRAY[-1, 0]::bigint[]) AS unknown_ids,
       order_ext.ack_events('mailer', '{}') AS none;
SELECT pg_temp.ack('mailer', 'b', 'create') AS acked;
SELECT pg_temp.read('mailer');
SELECT pg_temp.ack('mailer', 'b', 'cancel') AS acked;
SELECT pg_temp.read('mailer');
-- all acknowledged: the horizon moved past them, no acks are kept
SELECT count(*) AS acks_kept FROM order_ext.outbox_acks WHERE consumer = 'mailer';

-- another consumer is independent of the first
SELECT pg_temp.read('search');
-- new events come to both
SELECT pg_temp.mk('c') IS NOT NULL AS c;
SELECT pg_temp.read('mailer') AS mailer, pg_temp.read('search') AS search;

-- prune: only what every registered consumer acknowledged
SELECT order_ext.prune_outbox() AS pruned;
SELECT pg_temp.ack('search', 'a') + pg_temp.ack('search', 'b') AS acked;
SELECT order_ext.prune_outbox() AS pruned;
SELECT o.tag, x.event FROM order_ext.outbox x JOIN pg_temp.o o ON o.id = x.order_id ORDER BY x.id;
SELECT pg_temp.read('mailer') AS mailer, pg_temp.read('search') AS search;
-- a consumer registered from now on does not get what is kept
SELECT order_ext.register_consumer('audit', from_now => true) AS registered,
       order_ext.register_consumer('audit') AS again;
SELECT pg_temp.read('audit') AS audit;
SELECT pg_temp.mk('d') IS NOT NULL AS d;
SELECT pg_temp.read('audit') AS audit;
-- a consumer that is gone holds nothing back
SELECT pg_temp.ack('mailer', 'c') + pg_temp.ack('mailer', 'd') AS mailer,
       pg_temp.ack('search', 'c') + pg_temp.ack('search', 'd') AS search;
SELECT order_ext.prune_outbox() AS pruned;
SELECT order_ext.unregister_consumer('audit') AS unregistered,
       order_ext.unregister_consumer('audit') AS again;
SELECT order_ext.prune_outbox() AS pruned;
SELECT count(*) AS outbox FROM order_ext.outbox;
-- with no consumer at all, nothing is pruned
SELECT order_ext.unregister_consumer('mailer'), order_ext.unregister_consumer('search');
SELECT pg_temp.mk('e') IS NOT NULL AS e;
SELECT order_ext.prune_outbox() AS pruned, (SELECT count(*) FROM order_ext.outbox) AS outbox;
-- prune in batches
SELECT order_ext.register_consumer('batch') AS registered;
SELECT pg_temp.mk('f' || g) IS NOT NULL FROM generate_series(1, 3) g;
SELECT order_ext.ack_events('batch', ARRAY(SELECT id FROM order_ext.read_events('batch', 1000))) AS acked;
SELECT order_ext.prune_outbox(2) AS first, order_ext.prune_outbox(2) AS second, order_ext.prune_outbox(2) AS third;

-- bad arguments
SELECT pg_temp.err($$SELECT * FROM order_ext.read_events('')$$) AS empty_consumer,
       pg_temp.err($$SELECT * FROM order_ext.read_events(NULL)$$) AS null_consumer,
       pg_temp.err($$SELECT * FROM order_ext.read_events('x', 0)$$) AS zero_max;
SELECT pg_temp.err($$SELECT order_ext.ack_events('x', NULL)$$) AS null_ids,
       pg_temp.err($$SELECT order_ext.prune_outbox(0)$$) AS zero_prune;
-- an ack from a consumer that never read (a misspelt name) is refused: it
-- would register a consumer nobody reads for, keeping every event for good
SELECT pg_temp.err($$SELECT order_ext.ack_events('mailr', '{1}')$$) AS unknown_consumer;
SELECT count(*) AS registered FROM order_ext.consumers WHERE consumer = 'mailr';

DROP EXTENSION order_ext CASCADE;
