--------------------------------------------------------------------------
-- (upgrade from 0.1, after the dump part) Tombstones for the rows 0.1
-- shipped that users deleted.  98_dump.sql has just remembered the
-- configuration rows as they are now; a shipped row a user deleted at 0.1
-- is not among them, and without a tombstone a dump of this database would
-- bring it back on restore (a fresh install ships it).  What 0.1 shipped
-- is read from its frozen install script: the Makefile copies its INSERTs
-- here, into these temporary tables (n: a transition's id, in the order
-- 0.1 inserted them).
--------------------------------------------------------------------------
CREATE TEMP TABLE shipped_machines (machine text, initial_status text, terminal_statuses text[], description text);
CREATE TEMP TABLE shipped_transitions (n serial, machine text, from_status text, event text, to_status text,
                                       actors text[], effects text[], requires jsonb);
CREATE TEMP TABLE shipped_timeouts (machine text, status text, after interval, event text);
CREATE TEMP TABLE shipped_status_labels (machine text, status text, role text, label text);
