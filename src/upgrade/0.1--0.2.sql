-- order_ext upgrade 0.1 -> 0.2: the changes to objects that 0.1 already had.
-- The Makefile appends the parts that are new since 0.1 (src/sql), the
-- role_grants rows of 0.1's objects, and the privileges and partitions
-- parts, into order_ext--0.1--0.2.sql.  (When 0.2 is released, that file
-- is frozen under sql/upgrade/ like order_ext--0.1.sql.)
\echo Use "ALTER EXTENSION order_ext UPDATE TO '0.2'" to load this file. \quit

-- the machine tables' cache triggers fire in replica mode too (see
-- 10_machines.sql)
ALTER TABLE order_ext.machines ENABLE ALWAYS TRIGGER machines_changed;
ALTER TABLE order_ext.transitions ENABLE ALWAYS TRIGGER transitions_changed;
ALTER TABLE order_ext.timeouts ENABLE ALWAYS TRIGGER timeouts_changed;

-- transitions may name the stock effects
ALTER TABLE order_ext.transitions DROP CONSTRAINT transitions_effects_check;
ALTER TABLE order_ext.transitions ADD CONSTRAINT transitions_effects_check
    CHECK (effects <@ ARRAY['stamp:paid_at', 'stamp:shipped_at', 'stamp:received_at',
                            'stamp:completed_at', 'stamp:closed_at', 'merge_attrs',
                            'stock:reserve', 'stock:commit', 'stock:release']);
COMMENT ON COLUMN order_ext.transitions.effects IS
'stamp:<milestone column> sets that column to now(); merge_attrs merges payload.attrs into the order''s attrs; stock:reserve reserves the SKUs the order holds no reservation for yet (on_pay SKUs, at pay); stock:commit ships the reservations (on_hand and reserved both fall); stock:release gives them back and stops counting the order against purchase limits (cancel, expire, close).';

-- the default machines' transitions get their stock effects (rows a user
-- changed are left as they are)
UPDATE order_ext.transitions t SET effects = t.effects || v.effect::text
FROM (VALUES ('pay', 'stock:reserve'), ('ship', 'stock:commit'), ('deliver', 'stock:commit'),
             ('cancel', 'stock:release'), ('expire', 'stock:release'), ('close', 'stock:release')) AS v(event, effect)
WHERE t.machine IN ('physical', 'virtual') AND t.event = v.event
  AND t.effects = CASE WHEN v.event = 'pay' THEN '{stamp:paid_at}'
                       WHEN v.event IN ('ship', 'deliver') THEN '{stamp:shipped_at}'
                       ELSE '{stamp:closed_at}' END::text[];

-- a rejected after-sale that is not appealed within 15 days closes (the
-- appeal window), so its order can be archived; a shop that had already
-- added the README's recipe keeps its own rows
UPDATE order_ext.machines SET terminal_statuses = terminal_statuses || '{closed}'
 WHERE machine = 'after_sale' AND NOT 'closed' = ANY (terminal_statuses);
INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects, requires)
SELECT 'after_sale', 'rejected', 'close', 'closed', '{system}', '{}', NULL
 WHERE NOT EXISTS (SELECT 1 FROM order_ext.transitions
                    WHERE machine = 'after_sale' AND from_status = 'rejected' AND event = 'close');
INSERT INTO order_ext.timeouts (machine, status, after, event)
VALUES ('after_sale', 'rejected', '15 days', 'close') ON CONFLICT DO NOTHING;
INSERT INTO order_ext.status_labels (machine, status, role, label)
VALUES ('after_sale', 'closed', 'buyer', 'Closed (not appealed)'), ('after_sale', 'closed', 'merchant', 'Closed (not appealed)')
ON CONFLICT DO NOTHING;

-- the monthly partitions become members of the extension, registered with
-- pg_extension_config_dump, as 0.2 makes them (see partitions.c)
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN
        SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits i
        WHERE i.inhparent IN ('order_ext.orders'::regclass, 'order_ext.order_items'::regclass,
                              'order_ext.order_payments'::regclass, 'order_ext.order_discounts'::regclass,
                              'order_ext.order_events'::regclass)
        ORDER BY 1
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                       WHERE d.classid = 'pg_class'::regclass AND d.objid = part
                         AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e') THEN
            EXECUTE format('ALTER EXTENSION order_ext ADD TABLE %s', part);
        END IF;
        PERFORM pg_catalog.pg_extension_config_dump(part, '');
    END LOOP;
END $$;

-- machines: terminal statuses are status names (no NULL: validate_machine
-- read a NULL as "no terminal status"); timeouts at most 100 years (a due
-- time past timestamptz's range failed every create_order of the machine);
-- a machine orders still name can be neither renamed nor deleted
ALTER TABLE order_ext.machines ADD CONSTRAINT machines_terminal_statuses_check
    CHECK (cardinality(terminal_statuses) = 0
           OR array_to_string(terminal_statuses, ',', '#')
              ~ '^[a-z][a-z0-9_]{0,62}(,[a-z][a-z0-9_]{0,62})*$');
ALTER TABLE order_ext.timeouts DROP CONSTRAINT timeouts_after_check,
    ADD CONSTRAINT timeouts_after_check CHECK (after >= interval '0' AND after <= interval '100 years');
-- timeouts and status labels name statuses and events as transitions do (a
-- 'Paid' timeout matched no order and said nothing)
ALTER TABLE order_ext.timeouts
    ADD CONSTRAINT timeouts_status_check CHECK (status ~ '^[a-z][a-z0-9_]{0,62}$'),
    ADD CONSTRAINT timeouts_event_check CHECK (event ~ '^[a-z][a-z0-9_]{0,62}$');
ALTER TABLE order_ext.status_labels
    ADD CONSTRAINT status_labels_status_check CHECK (status ~ '^[a-z][a-z0-9_]{0,62}$');
-- (the trigger machine_in_use, and status_label's new body: 51_machine_tools.sql)
