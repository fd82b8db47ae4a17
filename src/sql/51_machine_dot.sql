--------------------------------------------------------------------------
-- order_ext.machine_dot(name): a machine as Graphviz text.  CREATE OR
-- REPLACE, so that the upgrade from 0.1 (which had an older body) runs this
-- same file.
--------------------------------------------------------------------------

-- Every node id and label is a DOT quoted string ("…", with " and \
-- escaped): statuses may be DOT's keywords (graph, node, edge, strict, …),
-- and terminal statuses and actors have no CHECK on their characters.
CREATE OR REPLACE FUNCTION order_ext.machine_dot(name text) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    SET intervalstyle = 'postgres_verbose' AS $$
DECLARE
    m order_ext.machines;
    dot text;
BEGIN
    SELECT * INTO m FROM order_ext.machines WHERE machine = name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'machine "%" does not exist', name USING ERRCODE = '22023';
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
