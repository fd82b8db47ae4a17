#!/usr/bin/env bash
# Render the default state machines to docs/<machine>.svg with Graphviz.
# Needs a server with order_ext installed in the database named by $PGDATABASE
# (psql connection settings come from the usual PG* variables) and `dot`
# (Debian: apt-get install graphviz).
#   PGHOST=/tmp/oe_dev PGPORT=55432 PGDATABASE=dev bash scripts/machine_pictures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs
for m in physical virtual after_sale; do
	psql -X -At -c "SELECT order_ext.machine_dot('$m')" | dot -Tsvg > "docs/$m.svg"
	echo "docs/$m.svg"
done
