INSERT INTO order_ext.config_removed (tbl, key)
SELECT 'machines', jsonb_build_object('machine', s.machine) FROM pg_temp.shipped_machines s
 WHERE NOT EXISTS (SELECT 1 FROM order_ext.machines m WHERE m.machine = s.machine)
UNION ALL
SELECT 'transitions', jsonb_build_object('id', s.n) FROM pg_temp.shipped_transitions s
 WHERE NOT EXISTS (SELECT 1 FROM order_ext.transitions t WHERE t.id = s.n)
UNION ALL
SELECT 'timeouts', jsonb_build_object('machine', s.machine, 'status', s.status, 'event', s.event)
  FROM pg_temp.shipped_timeouts s
 WHERE NOT EXISTS (SELECT 1 FROM order_ext.timeouts t
                   WHERE (t.machine, t.status, t.event) = (s.machine, s.status, s.event))
UNION ALL
SELECT 'status_labels', jsonb_build_object('machine', s.machine, 'status', s.status, 'role', s.role)
  FROM pg_temp.shipped_status_labels s
 WHERE NOT EXISTS (SELECT 1 FROM order_ext.status_labels l
                   WHERE (l.machine, l.status, l.role) = (s.machine, s.status, s.role))
ON CONFLICT DO NOTHING;
DROP TABLE pg_temp.shipped_machines, pg_temp.shipped_transitions, pg_temp.shipped_timeouts,
           pg_temp.shipped_status_labels;

