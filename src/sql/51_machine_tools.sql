--------------------------------------------------------------------------
-- order_ext.status_label(machine, status, role), validate_machine(name) and
-- machine_dot(name): what a role sees for a status, a machine's problems,
-- and the machine as Graphviz text; and the trigger that keeps a machine
-- orders name from being renamed or deleted.  CREATE OR REPLACE, so that
-- the upgrade from 0.1 (which had older bodies, and no trigger) runs this
-- same file.
--------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION order_ext.status_label(machine text, status text, role text) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result text;
BEGIN
    IF machine IS NULL OR status IS NULL OR role IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN machine IS NULL THEN 'machine'
                                                   WHEN status IS NULL THEN 'status' ELSE 'role' END
            USING ERRCODE = '22023';
    END IF;
    IF role NOT IN ('buyer', 'merchant', 'system', 'platform') THEN
        RAISE EXCEPTION 'role must be one of buyer, merchant, system, platform'
            USING ERRCODE = '22023', DETAIL = format('Got %L.', role);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM order_ext.machines m WHERE m.machine = status_label.machine) THEN
        RAISE EXCEPTION 'machine "%" does not exist', CASE WHEN length(machine) > 63 THEN left(machine, 60) || '...' ELSE machine END USING ERRCODE = '22023';
    END IF;
    SELECT l.label INTO result FROM order_ext.status_labels l
     WHERE l.machine = status_label.machine AND l.status = status_label.status
       AND l.role = status_label.role;
    RETURN coalesce(result, status);
END $$;
COMMENT ON FUNCTION order_ext.status_label(text, text, text) IS
'What a role (buyer, merchant, system, platform) sees for a status of a machine; the status itself where no label is defined.';

-- A machine orders (live or archived) or after-sales requests still name
-- may not be renamed or deleted: transitions, timeouts and labels would
-- follow the rename (ON UPDATE CASCADE) and the orders would be left with a
-- machine that does not exist, unable to move or expire.
CREATE OR REPLACE FUNCTION order_ext.machine_in_use() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- (a statement trigger: the same check for every machine at once)
        IF EXISTS (SELECT 1 FROM order_ext.orders) OR EXISTS (SELECT 1 FROM order_ext.orders_history)
           OR EXISTS (SELECT 1 FROM order_ext.after_sales) OR EXISTS (SELECT 1 FROM order_ext.after_sales_history) THEN
            RAISE EXCEPTION 'order_ext.machines cannot be truncated while orders or after-sales requests name its machines'
                USING ERRCODE = 'foreign_key_violation',
                      DETAIL = 'Orders (live or archived) or after-sales requests keep the machine they were created with.',
                      HINT = 'Delete the machines no order names one by one.';
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.machine IS NOT DISTINCT FROM OLD.machine THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM order_ext.orders o WHERE o.machine = OLD.machine)
       OR EXISTS (SELECT 1 FROM order_ext.orders_history h WHERE h.machine = OLD.machine)
       OR (OLD.machine = 'after_sale' AND (EXISTS (SELECT 1 FROM order_ext.after_sales)
                                          OR EXISTS (SELECT 1 FROM order_ext.after_sales_history))) THEN
        RAISE EXCEPTION 'machine "%" is in use and cannot be %', OLD.machine,
              CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'renamed' END
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = 'Orders (live or archived) or after-sales requests name it; they keep the machine they were created with.',
                  HINT = 'Insert a machine under the new name for new orders; change this one''s transitions in place.';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;
COMMENT ON FUNCTION order_ext.machine_in_use() IS
'Trigger: refuses to rename, delete or truncate a machine that orders (live or archived) or after-sales requests still name (23503).';
CREATE TRIGGER machines_in_use BEFORE UPDATE OF machine OR DELETE
    ON order_ext.machines FOR EACH ROW EXECUTE FUNCTION order_ext.machine_in_use();
CREATE TRIGGER machines_truncate_in_use BEFORE TRUNCATE
    ON order_ext.machines FOR EACH STATEMENT EXECUTE FUNCTION order_ext.machine_in_use();


CREATE OR REPLACE FUNCTION order_ext.validate_machine(name text) RETURNS SETOF text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m order_ext.machines;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO m FROM order_ext.machines WHERE machine = name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'machine "%" does not exist', CASE WHEN length(name) > 63 THEN left(name, 60) || '...' ELSE name END USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH RECURSIVE t AS (
        SELECT * FROM order_ext.transitions WHERE machine = name
    ), reach(status) AS (
        SELECT m.initial_status
        UNION
        SELECT t.to_status FROM t JOIN reach r ON t.from_status = r.status
    ), ends(status) AS (
        -- the statuses from which a terminal status can be reached
        SELECT unnest(m.terminal_statuses)
        UNION
        SELECT t.from_status FROM t JOIN ends e ON t.to_status = e.status
    ), hold(status, holding) AS (
        -- (status, whether an order there may hold stock reservations):
        -- at the start it may (on_create SKUs reserve at create_order);
        -- stock:release and stock:commit end them, stock:reserve makes some
        SELECT m.initial_status, true
        UNION
        SELECT t.to_status,
               CASE WHEN t.effects && ARRAY['stock:release', 'stock:commit'] THEN false
                    WHEN 'stock:reserve' = ANY (t.effects) THEN true
                    ELSE h.holding END
          FROM t JOIN hold h ON t.from_status = h.status
    ), statuses AS (
        SELECT m.initial_status AS status
        UNION SELECT from_status FROM t
        UNION SELECT to_status FROM t
        UNION SELECT unnest(m.terminal_statuses)
    ), problems(ord, problem) AS (
        SELECT 1, format('status %s is unreachable from the initial status %s', s.status, m.initial_status)
          FROM statuses s
         WHERE s.status NOT IN (SELECT status FROM reach)
        UNION ALL
        SELECT 2, format('status %s is not terminal but has no way out', s.status)
          FROM statuses s
         WHERE s.status <> ALL (m.terminal_statuses)
           AND NOT EXISTS (SELECT 1 FROM t WHERE t.from_status = s.status AND t.to_status <> s.status)
        UNION ALL
        SELECT 2, format('status %s has a way out but no way to a terminal status', s.status)
          FROM statuses s
         WHERE s.status NOT IN (SELECT status FROM ends)
           AND EXISTS (SELECT 1 FROM t WHERE t.from_status = s.status AND t.to_status <> s.status)
        UNION ALL
        SELECT 3, format('terminal status %s has transitions out (%s)', s.status,
                         string_agg(t.event, ', ' ORDER BY t.event))
          FROM statuses s JOIN t ON t.from_status = s.status
         WHERE s.status = ANY (m.terminal_statuses)
         GROUP BY s.status
        UNION ALL
        SELECT 4, format('transition (%s, %s) is defined %s times', from_status, event, count(*))
          FROM t GROUP BY from_status, event HAVING count(*) > 1
        UNION ALL
        SELECT 5, format('timeout on status %s fires %s, which no transition from %s allows for actor system',
                         o.status, o.event, o.status)
          FROM order_ext.timeouts o
         WHERE o.machine = name
           AND NOT EXISTS (SELECT 1 FROM t WHERE t.from_status = o.status AND t.event = o.event
                                              AND 'system' = ANY (t.actors))
        UNION ALL
        SELECT 6, format('transition (%s, %s) names an unknown actor (%s)', from_status, event,
                         array_to_string(actors, ', '))
          FROM t WHERE NOT actors <@ ARRAY['buyer', 'merchant', 'system', 'platform', 'internal']
        UNION ALL
        -- an order that ends holding reservations keeps their units from
        -- everyone for good (archived or not); split (internal) hands its
        -- reservations to the children itself
        SELECT 7, format('transition (%s, %s) ends orders in %s that may still hold stock reservations'
                         ' (no stock:release or stock:commit on the way)', t.from_status, t.event, t.to_status)
          FROM t
         WHERE name <> 'after_sale'
           AND t.to_status = ANY (m.terminal_statuses)
           AND NOT (t.effects && ARRAY['stock:release', 'stock:commit'])
           AND NOT ('internal' = ANY (t.actors))
           AND EXISTS (SELECT 1 FROM hold h WHERE h.status = t.from_status AND h.holding)
        UNION ALL
        -- an order is born finished: nothing can release what its on_create
        -- SKUs reserve at create_order
        SELECT 7, format('initial status %s is terminal: orders end at creation, holding the stock'
                         ' reservations of their on_create SKUs for good', m.initial_status)
         WHERE name <> 'after_sale' AND m.initial_status = ANY (m.terminal_statuses)
        UNION ALL
        -- a timer fires with payload {"timer": true}: no attrs to merge
        SELECT 8, format('timeout on status %s fires %s, whose merge_attrs effect a timer cannot serve'
                         ' (its payload has no attrs)', o.status, o.event)
          FROM order_ext.timeouts o JOIN t ON t.from_status = o.status AND t.event = o.event
         WHERE o.machine = name AND 'merge_attrs' = ANY (t.effects)
    )
    SELECT p.problem FROM problems p ORDER BY p.ord, p.problem;
END $$;
COMMENT ON FUNCTION order_ext.validate_machine(text) IS
'Problems of a machine, one a row (no rows: valid): unreachable statuses, non-terminal statuses with no way out or no way to a terminal status, terminal statuses with a way out, duplicate (from, event) pairs, timeouts no transition serves, unknown actors, transitions that end orders which may still hold stock reservations, an initial status that is terminal, timeouts whose transition merges attrs.';

-- Every node id and label is a DOT quoted string ("…", with " and \
-- escaped): statuses may be DOT's keywords (graph, node, edge, strict, …),
-- and terminal statuses and actors have no CHECK on their characters.
CREATE OR REPLACE FUNCTION order_ext.machine_dot(name text) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    SET intervalstyle = 'postgres_verbose' SET standard_conforming_strings = on AS $$
DECLARE
    m order_ext.machines;
    dot text;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO m FROM order_ext.machines WHERE machine = name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'machine "%" does not exist', CASE WHEN length(name) > 63 THEN left(name, 60) || '...' ELSE name END USING ERRCODE = '22023';
    END IF;
    WITH e(raw, esc) AS (
        -- every name the drawing uses, escaped for a DOT quoted string
        SELECT DISTINCT x, replace(replace(x, '\', '\\'), '"', '\"')
        FROM (SELECT name UNION ALL SELECT m.initial_status
              UNION ALL SELECT unnest(m.terminal_statuses)
              UNION ALL SELECT unnest(ARRAY[t.from_status, t.to_status, t.event]) FROM order_ext.transitions t WHERE t.machine = name
              UNION ALL SELECT unnest(t.actors) FROM order_ext.transitions t WHERE t.machine = name) n(x)
        WHERE x IS NOT NULL),
    q(raw, esc, quoted) AS (SELECT raw, esc, '"' || esc || '"' FROM e)
    SELECT format(E'digraph %s {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname="Helvetica"];\n  edge [fontname="Helvetica", fontsize=10];\n  __start [shape=point];\n  __start -> %s;\n',
                  (SELECT quoted FROM q WHERE raw = name), (SELECT quoted FROM q WHERE raw = m.initial_status))
        || coalesce((SELECT string_agg(format(E'  %s [shape=box, style="rounded,bold,filled", fillcolor="#eeeeee"];\n', q.quoted), '' ORDER BY s)
                       FROM unnest(m.terminal_statuses) s JOIN q ON q.raw = s), '')
        || coalesce((SELECT string_agg(
                       -- the label: event, (actors), timeouts, one a line (\n inside the quotes)
                       format(E'  %s -> %s [label=%s];\n', qf.quoted, qt.quoted,
                              '"' || qe.esc || '\n(' ||
                              coalesce((SELECT string_agg(qa.esc, ', ' ORDER BY a.n)
                                          FROM unnest(t.actors) WITH ORDINALITY a(actor, n) JOIN q qa ON qa.raw = a.actor), '')
                              || ')' ||
                              coalesce((SELECT E'\\n' || string_agg(ltrim(o.after::text, '@ '), ', ')
                                          FROM order_ext.timeouts o
                                         WHERE o.machine = name AND o.status = t.from_status AND o.event = t.event), '')
                              || '"'),
                       '' ORDER BY t.id)
                       FROM order_ext.transitions t
                       JOIN q qf ON qf.raw = t.from_status JOIN q qt ON qt.raw = t.to_status JOIN q qe ON qe.raw = t.event
                      WHERE t.machine = name), '')
        || E'}\n'
      INTO dot;
    RETURN dot;
END $$;
COMMENT ON FUNCTION order_ext.machine_dot(text) IS
'The machine as Graphviz text (terminal statuses shaded; edges labelled with event, actors and timeout): psql -Atc "SELECT order_ext.machine_dot(''physical'')" | dot -Tsvg > physical.svg';
