# order_ext — PGXS build.
#
#   make && make install          build and install into the pg_config found on PATH
#   make installcheck             pg_regress + isolation + TAP against a running server
#   scripts/test.sh               the whole suite on a throw-away cluster (what CI runs)
#   make bench                    pgbench comparisons (scripts/bench.sh)

EXTENSION   = order_ext
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)
MODULE_big  = order_ext
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql $(EXTENSION)--0.1--0.2.sql
# earlier versions' install scripts and the upgrade scripts between versions
DATA        = $(wildcard sql/upgrade/$(EXTENSION)--*.sql)
PGFILEDESC  = "order_ext - order engine"

# pg_regress: one file per capability under sql/, expected output under expected/
REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=pgtap

# isolation specs live under test/isolation
ISOLATION      = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation

# TAP tests (PostgreSQL::Test::Cluster) live under test/t
TAP_TESTS   = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

PG_CONFIG  ?= pg_config
# Server headers are system headers for us: we build with -Wall -Wextra -Werror
# and do not want warnings from inside PostgreSQL's own inline functions.
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server) -I$(srcdir)/src
PG_CFLAGS   = -Wall -Wextra -Werror

EXTRA_CLEAN = results output_iso tmp_check regression.diffs regression.out log

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies (Debian's server is built without
# --enable-depend): every object is rebuilt when any of our headers changes,
# so a struct that grew (OrderState) is never half-compiled into the module.
$(OBJS): $(wildcard src/*.h)

# The install script is the parts under src/sql joined in file-name order.
SQL_PARTS = $(sort $(wildcard src/sql/*.sql))
$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

# Upgrade from 0.1: the changes to 0.1's objects (src/upgrade/0.1--0.2.sql),
# the parts that are new since 0.1, the role_grants rows of 0.1's objects,
# then the privileges, dump and partitions parts (idempotent or new), and
# last the grants of 0.2 for the roles 0.1 let in.
UPGRADE_0_1_NEW = src/sql/00_role_grants.sql src/sql/45_stock.sql src/sql/51_machine_tools.sql src/sql/55_money.sql \
                  src/sql/56_after_sales.sql src/sql/57_split.sql src/sql/58_outbox.sql src/sql/60_archive.sql \
                  src/sql/70_worker.sql src/sql/80_requests.sql
UPGRADE_0_1_OLD = src/sql/02_ids.sql src/sql/10_machines.sql src/sql/20_order_tables.sql \
                  src/sql/30_partitions.sql src/sql/40_create_order.sql src/sql/50_state_machine.sql
UPGRADE_0_1_END = src/sql/90_privileges.sql src/sql/95_stats.sql src/sql/98_dump.sql src/sql/99_ready.sql
# Between the dump part and the grants: tombstones for the rows 0.1 shipped
# that users deleted, from 0.1's frozen script's INSERTs into temp tables.
UPGRADE_0_1_SHIPPED = src/upgrade/0.1--0.2-shipped-head.sql sql/upgrade/$(EXTENSION)--0.1.sql \
                      src/upgrade/0.1--0.2-shipped-tail.sql
$(EXTENSION)--0.1--0.2.sql: src/upgrade/0.1--0.2.sql $(UPGRADE_0_1_NEW) $(UPGRADE_0_1_OLD) $(UPGRADE_0_1_END) \
                           $(UPGRADE_0_1_SHIPPED) src/upgrade/0.1--0.2-end.sql
	{ cat src/upgrade/0.1--0.2.sql $(UPGRADE_0_1_NEW); \
	  awk '/^INSERT INTO order_ext.role_grants/,/;$$/' $(UPGRADE_0_1_OLD); \
	  cat $(UPGRADE_0_1_END) src/upgrade/0.1--0.2-shipped-head.sql; \
	  awk '/^INSERT INTO order_ext.(machines|transitions|timeouts|status_labels) /,/;$$/' \
	      sql/upgrade/$(EXTENSION)--0.1.sql | sed 's/^INSERT INTO order_ext\./INSERT INTO pg_temp.shipped_/'; \
	  cat src/upgrade/0.1--0.2-shipped-tail.sql src/upgrade/0.1--0.2-end.sql; } > $@

.PHONY: bench demo test
bench:
	bash scripts/bench.sh
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
