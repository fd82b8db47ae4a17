--
-- machines: machines as data (order_ext.machines, transitions, timeouts),
-- validate_machine(), machine_dot(), the tables' CHECKs, and the machine
-- cache seeing INSERT/UPDATE/DELETE at once  (API.md "Moving orders
-- through their state machine")
--
CREATE EXTENSION order_ext;
SET TimeZone = 'UTC';

-- err(sql): 'ok', or 'SQLSTATE: message' (ids masked, hint appended)
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    h text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{13,}', '<id>', 'g')
        || CASE WHEN coalesce(h, '') <> '' THEN ' HINT: ' || h ELSE '' END;
END $$;

-- new_order(machine): a new free one-line order of that machine (payable 0,
-- so 'pay' may be fired directly)
CREATE FUNCTION pg_temp.new_order(machine text, attrs jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint := order_ext.new_order_id();
BEGIN
    PERFORM order_ext.create_order(new_id, 7, '[{"sku":"MM-1","qty":1,"unit_price":0}]',
                                   machine => machine, attrs => attrs);
    RETURN new_id;
END $$;

--------------------------------------------------------------------------
-- The default machines are valid
--------------------------------------------------------------------------

SELECT machine, initial_status, terminal_statuses FROM order_ext.machines ORDER BY machine;
SELECT m.machine, (SELECT count(*) FROM order_ext.validate_machine(m.machine)) AS problems
FROM order_ext.machines m ORDER BY m.machine;
SELECT * FROM order_ext.validate_machine('physical');
SELECT * FROM order_ext.validate_machine('virtual');
SELECT * FROM order_ext.validate_machine('after_sale');
-- unknown machine: 22023
SELECT pg_temp.err($$SELECT * FROM order_ext.validate_machine('no_such_machine')$$) AS unknown,
       pg_temp.err($$SELECT * FROM order_ext.validate_machine(NULL)$$) AS null_name;

--------------------------------------------------------------------------
-- Broken machines: one problem a row
--------------------------------------------------------------------------

INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses) VALUES
    ('unreachable', 'a', '{done}'),
    ('dead_end',    'a', '{done}'),
    ('dup',         'a', '{done}'),
    ('bad_timeout', 'a', '{done}'),
    ('bad_actor',   'a', '{done}'),
    ('term_out',    'a', '{done,stopped}'),
    ('empty',       'a', '{}'),
    ('loop',        'a', '{}'),
    ('trap',        'a', '{done}'),
    ('ok_machine',  'a', '{done}');
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors) VALUES
    -- b is never entered
    ('unreachable', 'a', 'go',      'done', '{system}'),
    ('unreachable', 'b', 'go',      'done', '{system}'),
    -- b is entered but never left (its self-loop is no way out)
    ('dead_end',    'a', 'go',      'b',    '{system}'),
    ('dead_end',    'a', 'finish',  'done', '{system}'),
    ('dead_end',    'b', 'touch',   'b',    '{buyer}'),
    -- (a, go) twice
    ('dup',         'a', 'go',      'b',    '{system}'),
    ('dup',         'a', 'go',      'done', '{system}'),
    ('dup',         'b', 'finish',  'done', '{system}'),
    -- the timeouts below: 'go' is for the buyer only, 'nope' does not exist
    ('bad_timeout', 'a', 'go',      'done', '{buyer}'),
    -- 'robot' is no actor
    ('bad_actor',   'a', 'go',      'done', '{buyer,robot}'),
    -- the terminal status stopped has a way out
    ('term_out',    'a', 'stop',    'stopped', '{system}'),
    ('term_out',    'stopped', 'restart', 'a', '{system}'),
    ('term_out',    'a', 'finish',  'done', '{system}'),
    -- no terminal status: a and b go round for ever
    ('loop',        'a', 'x',       'b',    '{system}'),
    ('loop',        'b', 'y',       'a',    '{system}'),
    -- once in b or c, done is out of reach
    ('trap',        'a', 'finish',  'done', '{system}'),
    ('trap',        'a', 'x',       'b',    '{system}'),
    ('trap',        'b', 'y',       'c',    '{system}'),
    ('trap',        'c', 'z',       'b',    '{system}'),
    -- valid
    ('ok_machine',  'a', 'go',      'done', '{buyer,merchant,system,platform}');
INSERT INTO order_ext.timeouts (machine, status, after, event) VALUES
    ('bad_timeout', 'a', '1 hour', 'go'),
    ('bad_timeout', 'a', '2 hours', 'nope');
-- (stock: ok_machine's one way to the end ships what the order reserved;
-- the others end orders that may hold reservations, problem 7)
UPDATE order_ext.transitions SET effects = '{stock:commit}' WHERE machine = 'ok_machine';

SELECT m AS machine, p AS problem
FROM unnest('{unreachable,dead_end,dup,bad_timeout,bad_actor,term_out,empty,loop,trap,ok_machine}'::text[]) WITH ORDINALITY u(m, n)
LEFT JOIN LATERAL order_ext.validate_machine(m) p ON true
ORDER BY n, p;

-- stock: a transition that ends orders which may still hold reservations
-- (their units would stay reserved for good, archived or not); held again
-- after a release by stock:reserve; none once released or committed
INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses) VALUES ('leaky', 'a', '{done,gone}');
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects) VALUES
    ('leaky', 'a', 'go',      'done', '{system}', '{stock:commit}'),
    ('leaky', 'a', 'hold',    'h',    '{system}', '{stock:release}'),
    ('leaky', 'h', 'drop',    'gone', '{system}', '{}'),
    ('leaky', 'h', 'resume',  'r',    '{system}', '{stock:reserve}'),
    ('leaky', 'r', 'abandon', 'gone', '{system}', '{}'),
    ('leaky', 'r', 'go',      'done', '{system}', '{stock:commit}');
SELECT * FROM order_ext.validate_machine('leaky');
-- an initial status that is terminal (orders born finished keep what
-- their on_create SKUs reserve), and a timeout whose transition merges
-- attrs (a timer's payload has none: it is dropped every time)
INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses) VALUES
    ('instant', 'done', '{done}'), ('nudge', 'a', '{done}');
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects) VALUES
    ('nudge', 'a', 'remind', 'a', '{system}', '{merge_attrs}'),
    ('nudge', 'a', 'go', 'done', '{system}', '{stock:commit}');
INSERT INTO order_ext.timeouts (machine, status, after, event) VALUES ('nudge', 'a', '1 day', 'remind');
SELECT * FROM order_ext.validate_machine('instant');
SELECT * FROM order_ext.validate_machine('nudge');

-- fire() on a duplicated (from, event) pair: OE001 naming validate_machine
SELECT pg_temp.new_order('dup') AS dup_id \gset
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'go')$$, :dup_id)) AS fire_dup;
SELECT status, version, (SELECT count(*) FROM order_ext.order_events WHERE order_id = :dup_id) AS events
FROM order_ext.orders WHERE order_id = :dup_id;
-- once fixed, the machine is valid and the pair fires
DELETE FROM order_ext.transitions WHERE machine = 'dup' AND from_status = 'a' AND to_status = 'done';
UPDATE order_ext.transitions SET effects = '{stock:commit}' WHERE machine = 'dup' AND event = 'finish';
SELECT count(*) AS problems FROM order_ext.validate_machine('dup');
SELECT status, version FROM order_ext.fire(:dup_id, 'go', 1);

-- the broken timeout is data too: orders of bad_timeout get timers that
-- can never fire
SELECT pg_temp.new_order('bad_timeout') AS bt_id \gset
SELECT event, due_at - now() > interval '0' AS later FROM order_ext.timers WHERE order_id = :bt_id ORDER BY event;

--------------------------------------------------------------------------
-- machine_dot
--------------------------------------------------------------------------

\pset format unaligned
\pset tuples_only on
SELECT order_ext.machine_dot('physical');
SELECT order_ext.machine_dot('ok_machine');
\pset format aligned
\pset tuples_only off

-- every transition is an edge labelled with its event, every status a
-- node; the initial status is marked
SELECT m.machine,
       count(*) AS transitions,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM regexp_split_to_table(order_ext.machine_dot(m.machine), E'\n') l
           WHERE l LIKE '%"' || t.from_status || '" -> "' || t.to_status || '" %'
             AND strpos(l, 'label="' || t.event || '\n') > 0)) AS drawn,
       order_ext.machine_dot(m.machine) LIKE '%-> "' || m.initial_status || E'";\n%' AS initial_marked,
       order_ext.machine_dot(m.machine) LIKE 'digraph %' AS is_digraph
FROM order_ext.machines m JOIN order_ext.transitions t USING (machine)
WHERE m.machine IN ('physical', 'virtual', 'after_sale')
GROUP BY m.machine, m.initial_status ORDER BY m.machine;
-- deterministic
SELECT order_ext.machine_dot('physical') = order_ext.machine_dot('physical') AS same_twice;
-- and the same under standard_conforming_strings = off (its body's
-- backslash literals were then unterminated strings)
CREATE TEMP TABLE dot_scs AS SELECT order_ext.machine_dot('physical') AS dot;
SET standard_conforming_strings = off;
SELECT order_ext.machine_dot('physical') = (SELECT dot FROM dot_scs) AS same_without_conforming_strings;
RESET standard_conforming_strings;
-- unknown machine: 22023
SELECT pg_temp.err($$SELECT order_ext.machine_dot('no_such_machine')$$) AS unknown;
-- names that are DOT keywords (graph, node, edge, strict, subgraph), and an
-- actor with a quote and a backslash (actors have no CHECK on characters;
-- terminal statuses have, below): every id and label is a quoted string
INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses)
VALUES ('graph', 'node', '{edge}');
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors) VALUES
    ('graph', 'node', 'strict', 'edge', '{system,"say \"hi\\\""}'),
    ('graph', 'edge', 'subgraph', 'node', '{system}');
\pset format unaligned
\pset tuples_only on
SELECT order_ext.machine_dot('graph');
\pset format aligned
\pset tuples_only off
DELETE FROM order_ext.transitions WHERE machine = 'graph';
DELETE FROM order_ext.machines WHERE machine = 'graph';

--------------------------------------------------------------------------
-- CHECKs of the machine tables
--------------------------------------------------------------------------

-- effects: a fixed vocabulary
SELECT e AS effects,
       pg_temp.err(format($$INSERT INTO order_ext.transitions (machine, from_status, event, to_status, effects)
                            VALUES ('ok_machine', 'a', 'x', 'done', %L)$$, e)) AS result
FROM unnest(ARRAY['{launch_rockets}', '{stamp:foo_at}', '{stamp:paid_at,merge}', '{STAMP:PAID_AT}',
                  '{stamp:paid_at,stamp:closed_at,merge_attrs}']) e;
DELETE FROM order_ext.transitions WHERE machine = 'ok_machine' AND event = 'x';
-- actors: at least one; requires: an object
SELECT pg_temp.err($$INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors)
                     VALUES ('ok_machine', 'a', 'x', 'done', '{}')$$) AS no_actors,
       pg_temp.err($$INSERT INTO order_ext.transitions (machine, from_status, event, to_status, requires)
                     VALUES ('ok_machine', 'a', 'x', 'done', '[1]')$$) AS requires_array,
       pg_temp.err($$INSERT INTO order_ext.transitions (machine, from_status, event, to_status)
                     VALUES ('no_such_machine', 'a', 'x', 'done')$$) AS unknown_machine;
-- names: lower case, digits, underscores, at most 63 characters
SELECT n AS name, length(n) AS len,
       pg_temp.err(format($$INSERT INTO order_ext.machines (machine, initial_status) VALUES (%L, 'a')$$, n)) AS as_machine,
       pg_temp.err(format($$INSERT INTO order_ext.machines (machine, initial_status) VALUES ('name_test_%s', %L)$$, i, n)) AS as_status
FROM unnest(ARRAY['Preorder', 'PREORDER', 'pre-order', 'pre order', '1preorder', '_preorder', '',
                  repeat('m', 64), repeat('m', 63), 'pre_order_2']) WITH ORDINALITY u(n, i);
SELECT length(machine) AS len FROM order_ext.machines WHERE machine LIKE 'mmm%' OR machine = 'pre_order_2' ORDER BY 1;
SELECT pg_temp.err($$INSERT INTO order_ext.transitions (machine, from_status, event, to_status)
                     VALUES ('ok_machine', 'A', 'x', 'done')$$) AS capital_from,
       pg_temp.err($$INSERT INTO order_ext.transitions (machine, from_status, event, to_status)
                     VALUES ('ok_machine', 'a', 'Go', 'done')$$) AS capital_event,
       pg_temp.err($$INSERT INTO order_ext.transitions (machine, from_status, event, to_status)
                     VALUES ('ok_machine', 'a', 'x', 'Done')$$) AS capital_to;
-- timeouts: never negative
SELECT pg_temp.err($$INSERT INTO order_ext.timeouts (machine, status, after, event)
                     VALUES ('ok_machine', 'a', '-1 minute', 'go')$$) AS negative_after;
-- timeouts and status labels name statuses and events as transitions do
SELECT pg_temp.err($$INSERT INTO order_ext.timeouts (machine, status, after, event)
                     VALUES ('ok_machine', 'A', '1 minute', 'go')$$) AS timeout_capital_status,
       pg_temp.err($$INSERT INTO order_ext.timeouts (machine, status, after, event)
                     VALUES ('ok_machine', 'a', '1 minute', 'Go ')$$) AS timeout_bad_event,
       pg_temp.err($$INSERT INTO order_ext.status_labels (machine, status, role, label)
                     VALUES ('ok_machine', 'Paid', 'buyer', 'Paid')$$) AS label_capital_status;

--------------------------------------------------------------------------
-- Machine changes are seen at once, and a rolled-back change is forgotten
--------------------------------------------------------------------------

-- an actor added, then removed
SELECT pg_temp.new_order('ok_machine') AS ok_id \gset
UPDATE order_ext.transitions SET actors = '{system}' WHERE machine = 'ok_machine' AND event = 'go';
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'go', actor => 'buyer')$$, :ok_id)) AS buyer_removed;
UPDATE order_ext.transitions SET actors = '{buyer}' WHERE machine = 'ok_machine' AND event = 'go';
-- a transition deleted
DELETE FROM order_ext.transitions WHERE machine = 'ok_machine' AND event = 'go';
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'go', actor => 'buyer')$$, :ok_id)) AS deleted;
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors)
VALUES ('ok_machine', 'a', 'go', 'done', '{buyer}');
SELECT status, version FROM order_ext.fire(:ok_id, 'go', 1, 'buyer');

-- a machine made in a transaction that rolls back
BEGIN;
INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses) VALUES ('fleeting', 'x', '{y}');
INSERT INTO order_ext.transitions (machine, from_status, event, to_status) VALUES ('fleeting', 'x', 'go', 'y');
SELECT pg_temp.new_order('fleeting') AS fl_id \gset
SELECT machine, status, version FROM order_ext.orders WHERE order_id = :fl_id;
ROLLBACK;
SELECT pg_temp.err($$SELECT pg_temp.new_order('fleeting')$$) AS after_rollback;
SELECT count(*) AS fleeting_orders FROM order_ext.orders WHERE order_id = :fl_id;
-- a transition deleted in a transaction that rolls back is back
BEGIN;
DELETE FROM order_ext.transitions WHERE machine = 'physical' AND event = 'pay';
SELECT pg_temp.new_order('physical') AS rb_id \gset
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, 'pay')$$, :rb_id)) AS pay_deleted;
ROLLBACK;
SELECT pg_temp.new_order('physical') AS rb_id \gset
SELECT status, version FROM order_ext.fire(:rb_id, 'pay');
-- the timeouts cache too: a timeout changed and rolled back
BEGIN;
UPDATE order_ext.timeouts SET after = '1 second' WHERE machine = 'physical' AND status = 'pending_payment';
SELECT pg_temp.new_order('physical') AS t_id \gset
SELECT due_at - now() = interval '1 second' AS due_in_1_second FROM order_ext.timers WHERE order_id = :t_id;
ROLLBACK;
BEGIN;
SELECT pg_temp.new_order('physical') AS t_id \gset
SELECT due_at - now() = interval '30 minutes' AS due_in_30_minutes FROM order_ext.timers WHERE order_id = :t_id;
COMMIT;

-- deleting a machine no order names deletes its transitions, timeouts and
-- labels
INSERT INTO order_ext.machines VALUES ('unused', 'a', '{done}', NULL);
INSERT INTO order_ext.transitions (machine, from_status, event, to_status) VALUES ('unused', 'a', 'go', 'done');
INSERT INTO order_ext.timeouts VALUES ('unused', 'a', '1 hour', 'go');
INSERT INTO order_ext.status_labels VALUES ('unused', 'a', 'buyer', 'A');
DELETE FROM order_ext.machines WHERE machine = 'unused';
SELECT (SELECT count(*) FROM order_ext.transitions WHERE machine = 'unused') AS transitions,
       (SELECT count(*) FROM order_ext.timeouts WHERE machine = 'unused') AS timeouts,
       (SELECT count(*) FROM order_ext.status_labels WHERE machine = 'unused') AS labels;
SELECT pg_temp.err($$SELECT pg_temp.new_order('unused')$$) AS create_after_delete;

-- a machine that orders name can be neither renamed nor deleted (they would
-- be left naming a machine that does not exist, unable to move or expire);
-- its other columns and its transitions may change
SELECT pg_temp.err($$UPDATE order_ext.machines SET machine = 'physical2' WHERE machine = 'physical'$$) AS rename_used;
SELECT pg_temp.err($$DELETE FROM order_ext.machines WHERE machine = 'physical'$$) AS delete_used;
-- nor truncated away (TRUNCATE fires no row trigger: a statement trigger
-- refuses it while any order or request names a machine)
SELECT pg_temp.err($$TRUNCATE order_ext.machines CASCADE$$) AS truncate_used;
SELECT pg_temp.err($$UPDATE order_ext.machines SET description = 'B2C goods' WHERE machine = 'physical'$$) AS describe_used;
SELECT count(*) AS physical_transitions_kept FROM order_ext.transitions WHERE machine = 'physical';
-- one no order names yet: renamed, then deleted
INSERT INTO order_ext.machines VALUES ('spare', 'a', '{b}', NULL);
INSERT INTO order_ext.transitions (machine, from_status, event, to_status) VALUES ('spare', 'a', 'go', 'b');
SELECT pg_temp.err($$UPDATE order_ext.machines SET machine = 'spare2' WHERE machine = 'spare'$$) AS rename_unused;
SELECT count(*) AS followed FROM order_ext.transitions WHERE machine = 'spare2';
SELECT pg_temp.err($$DELETE FROM order_ext.machines WHERE machine = 'spare2'$$) AS delete_unused;
-- an archived order's machine stays too
INSERT INTO order_ext.machines VALUES ('old_flow', 'a', '{b}', NULL);
INSERT INTO order_ext.transitions (machine, from_status, event, to_status) VALUES ('old_flow', 'a', 'go', 'b');
SELECT order_ext.create_partitions('2024-03-01', '2024-03-01') AS months;
SELECT order_id AS old_id FROM order_ext.create_order(order_ext.min_order_id('2024-03-05'), 1,
    '[{"sku":"OLD","qty":1,"unit_price":0}]', machine => 'old_flow') \gset
SELECT status FROM order_ext.fire(:old_id, 'go');
SELECT order_ext.archive('30 days') AS archived;
SELECT pg_temp.err($$DELETE FROM order_ext.machines WHERE machine = 'old_flow'$$) AS delete_archived_only;

-- terminal statuses are status names: no NULL (validate_machine would read
-- it as no terminal status at all), none malformed
SELECT pg_temp.err($$INSERT INTO order_ext.machines VALUES ('t_null', 'a', '{b,NULL}', NULL)$$) AS terminal_null;
SELECT pg_temp.err($$INSERT INTO order_ext.machines VALUES ('t_bad', 'a', '{"Weird Status"}', NULL)$$) AS terminal_malformed;
SELECT pg_temp.err($$INSERT INTO order_ext.machines VALUES ('t_empty', 'a', '{""}', NULL)$$) AS terminal_empty;
SELECT pg_temp.err($$INSERT INTO order_ext.machines VALUES ('t_ok', 'a', '{b,c_2}', NULL)$$) AS terminal_ok;
SELECT pg_temp.err($$INSERT INTO order_ext.machines VALUES ('t_none', 'a', '{}', NULL)$$) AS terminal_none;
-- a timeout is at most 100 years (a later due time is past timestamptz's range)
SELECT pg_temp.err($$INSERT INTO order_ext.timeouts VALUES ('t_ok', 'a', '2000000 years', 'go')$$) AS timeout_huge;
SELECT pg_temp.err($$INSERT INTO order_ext.timeouts VALUES ('t_ok', 'a', '100 years', 'go')$$) AS timeout_100_years;

-- a name longer than any name can be (63 bytes) gets the error of an unknown
-- name, cut to 60 bytes and "..." in the message (not a megabyte of it in
-- the message and the log)
SELECT pg_temp.new_order('physical') AS long_id \gset
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, repeat('e', 1000000))$$, :long_id)) AS long_event,
       pg_temp.err(format($$SELECT order_ext.fire(%s, 'cancel', actor => repeat('a', 64))$$, :long_id)) AS long_actor;
SELECT pg_temp.err($$SELECT order_ext.create_order(order_ext.new_order_id(), 1, '[{"sku":"L","qty":1,"unit_price":1}]',
                                                   machine => repeat('m', 1000000))$$) AS long_machine;
SELECT pg_temp.err($$SELECT order_ext.set_stock('L', 1, repeat('p', 1000000))$$) AS long_policy,
       pg_temp.err($$SELECT order_ext.validate_machine(repeat('v', 1000000))$$) AS long_validate;
SELECT pg_temp.err(format($$SELECT order_ext.fire(%s, repeat('é', 40))$$, :long_id)) AS long_multibyte_event;
SELECT status FROM order_ext.orders WHERE order_id = :long_id;

-- NULL arguments: 22023, naming the argument
SELECT pg_temp.err($$SELECT order_ext.status_label(NULL, 'paid', 'buyer')$$) AS label_null_machine,
       pg_temp.err($$SELECT order_ext.status_label('physical', NULL, 'buyer')$$) AS label_null_status,
       pg_temp.err($$SELECT order_ext.status_label('physical', 'paid', NULL)$$) AS label_null_role;
SELECT pg_temp.err($$SELECT order_ext.validate_machine(NULL)$$) AS validate_null,
       pg_temp.err($$SELECT order_ext.machine_dot(NULL)$$) AS dot_null;

-- every timeout of a status is scheduled, however many (there were at most 16)
INSERT INTO order_ext.machines VALUES ('many', 's0', '{done}', NULL);
INSERT INTO order_ext.transitions (machine, from_status, event, to_status)
SELECT 'many', 's0', 'e' || g, 'done' FROM generate_series(1, 20) g;
INSERT INTO order_ext.timeouts SELECT 'many', 's0', g * interval '1 minute', 'e' || g FROM generate_series(1, 20) g;
SELECT pg_temp.new_order('many') AS many_id \gset
SELECT count(*) AS timers, count(DISTINCT event) AS events, max(due_at) - min(due_at) AS first_to_last
FROM order_ext.timers WHERE order_id = :many_id;

-- session_replication_role = replica (a superuser's): the order tables'
-- triggers do not fire then, so order_ext refuses to run (55000) rather
-- than write orders without versions and events; a machine changed there
-- still reaches every backend's cache (its cache triggers fire always)
INSERT INTO order_ext.machines VALUES ('repl', 'open', '{gone}', NULL);
INSERT INTO order_ext.transitions (machine, from_status, event, to_status)
VALUES ('repl', 'open', 'drop', 'gone'), ('repl', 'open', 'touch', 'open');
SELECT pg_temp.new_order('repl') AS repl_id \gset
SELECT status, version FROM order_ext.fire(:repl_id, 'touch');
-- (a partial payment made before: its repeated callback goes by plans
-- already cached, which are refused too)
SELECT order_ext.new_order_id() AS part_id \gset
SELECT status FROM order_ext.create_order(:part_id, 7, '[{"sku":"MM-2","qty":1,"unit_price":100}]');
SELECT status, paid_total FROM order_ext.record_payment(:part_id, 'part-1', 40);
SELECT status, paid_total FROM order_ext.record_payment(:part_id, 'part-1', 40) AS again;
SET session_replication_role = replica;
SELECT pg_temp.err(format('SELECT order_ext.record_payment(%s, %L, 40)', :part_id, 'part-1')) AS repeat_in_replica_mode;
SELECT pg_temp.err(format('SELECT order_ext.fire(%s, %L)', :repl_id, 'touch')) AS fire_in_replica_mode;
SELECT pg_temp.err($$SELECT pg_temp.new_order('repl')$$) AS create_in_replica_mode;
DELETE FROM order_ext.transitions WHERE machine = 'repl' AND event = 'touch';
RESET session_replication_role;
SELECT pg_temp.err(format('SELECT order_ext.fire(%s, %L)', :repl_id, 'touch')) AS touch_deleted_in_replica_mode;
SELECT status, version FROM order_ext.fire(:repl_id, 'drop');

DROP EXTENSION order_ext CASCADE;
