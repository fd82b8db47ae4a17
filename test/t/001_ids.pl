# Order ids at the server level (API.md, "Identifiers"):
#   (a) ids from one backend are strictly increasing (1,000,000 of them);
#   (b) concurrent backends never collide (pgbench, 8 clients x 20,000);
#   (c) ids after a restart -- fast, immediate (crash) and a backend crash
#       that makes the postmaster reinitialise shared memory -- are larger
#       than every id issued before;
#   (e) without shared_preload_libraries new_order_id() fails with a clear
#       error naming shared_preload_libraries, while order_id_time(),
#       min_order_id() and create_order() keep working;
#   (f) order_ext.node_id shows in the id bits.
# The clock-steps-back case (d) is 002_ids_clock.pl (it needs libfaketime).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# id layout: | 41 bits ms since 2020-01-01 UTC | 10 bits node | 12 bits seq |
my $NODE_BITS = '((id >> 12) & 1023)';

my $node = PostgreSQL::Test::Cluster->new('ids');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'order_ext'
log_statement = 'none'
max_connections = 30
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION order_ext');

# --------------------------------------------------------------------------
# (a) one backend, 1,000,000 ids: strictly increasing, positive, node bits 0,
# time close to now
# --------------------------------------------------------------------------
my $res = $node->safe_psql('postgres', q{
WITH ids AS MATERIALIZED (
    SELECT n, order_ext.new_order_id() AS id
    FROM generate_series(1, 1000000) AS n),
w AS (
    SELECT id, lag(id) OVER (ORDER BY n) AS prev FROM ids)
SELECT count(*),
       count(*) FILTER (WHERE prev IS NOT NULL AND id <= prev),
       count(DISTINCT id),
       count(*) FILTER (WHERE id <= 0),
       count(*) FILTER (WHERE ((id >> 12) & 1023) <> 0),
       bool_and(order_ext.order_id_time(id)
                BETWEEN statement_timestamp() - interval '1 minute'
                    AND clock_timestamp() + interval '1 minute')
FROM w});
is($res, '1000000|0|1000000|0|0|t',
	'(a) 1,000,000 ids from one backend: strictly increasing, distinct, positive, node 0, about now');

# ids issued a second later are larger, and carry a later time
$res = $node->safe_psql('postgres', q{
CREATE TEMP TABLE t1 AS SELECT order_ext.new_order_id() AS id, clock_timestamp() AS at;
SELECT pg_sleep(1.1);
SELECT (SELECT order_ext.new_order_id()) > id,
       order_ext.order_id_time(order_ext.new_order_id()) >= order_ext.order_id_time(id) + interval '1 second'
FROM t1});
is($res, "\nt|t", '(a) an id issued a second later is larger and ~1 s later in time');

# --------------------------------------------------------------------------
# (b) concurrent backends never collide
# --------------------------------------------------------------------------
$node->safe_psql('postgres', q{
CREATE TABLE ids (seq bigserial, client int NOT NULL, id bigint PRIMARY KEY)});
$node->pgbench(
	'-n -c 8 -j 2 -t 20000',
	0,
	[qr{number of transactions actually processed: 160000/160000}],
	[qr{^$}],
	'(b) pgbench: 8 clients x 20,000 new_order_id() inserts, no error (primary key on id)',
	{
		'001_ids_insert' =>
		  'INSERT INTO ids (client, id) VALUES (:client_id, order_ext.new_order_id());'
	});

$res = $node->safe_psql('postgres', q{
SELECT count(*), count(DISTINCT id), count(DISTINCT client) FROM ids});
is($res, '160000|160000|8', '(b) 160,000 rows, 160,000 distinct ids, from 8 clients');

# within each client (one backend each) the ids increase in issue order
$res = $node->safe_psql('postgres', q{
SELECT count(*) FROM (
    SELECT id, lag(id) OVER (PARTITION BY client ORDER BY seq) AS prev FROM ids) s
WHERE id <= prev});
is($res, '0', '(b) each backend\'s ids are strictly increasing under concurrency');

# --------------------------------------------------------------------------
# (c) restarts: new ids are larger than every id issued before
# --------------------------------------------------------------------------

# Issue ids right up to the stop: rows of 'ids' are committed, and the
# largest id (committed or not) is remembered by the test.
sub issue_before_stop
{
	my ($tag) = @_;
	$node->safe_psql('postgres', qq{
INSERT INTO ids (client, id) SELECT $tag, order_ext.new_order_id() FROM generate_series(1, 5000)});
	# one more that is never stored anywhere but here
	return $node->safe_psql('postgres', 'SELECT order_ext.new_order_id()');
}

# After a restart: 5000 new ids, all larger than $last and than every stored
# id; returns "count|violations_vs_last|violations_vs_table|increasing".
sub check_after_restart
{
	my ($last) = @_;
	return $node->safe_psql('postgres', qq{
WITH n AS MATERIALIZED (
    SELECT g, order_ext.new_order_id() AS id FROM generate_series(1, 5000) g)
SELECT count(*),
       count(*) FILTER (WHERE id <= $last),
       count(*) FILTER (WHERE id <= (SELECT max(id) FROM ids)),
       bool_and(id > coalesce(prev, 0))
FROM (SELECT id, lag(id) OVER (ORDER BY g) AS prev FROM n) s});
}

my $last = issue_before_stop(101);
$node->restart;    # fast
is(check_after_restart($last), '5000|0|0|t',
	'(c) after a fast restart every new id is larger than all earlier ids');

$last = issue_before_stop(102);
$node->stop('immediate');
$node->start;
is(check_after_restart($last), '5000|0|0|t',
	'(c) after an immediate stop (crash) every new id is larger than all earlier ids');

# an id issued by a session that is still connected when the server stops
{
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe('CREATE TEMP TABLE last_id (id bigint)');
	$bg->query_safe(q{INSERT INTO last_id SELECT order_ext.new_order_id()});
	$last = $bg->query_safe('SELECT max(id) FROM last_id');
	$node->stop('immediate');
	$bg->quit;
	$node->start;
	is(check_after_restart($last), '5000|0|0|t',
		'(c) immediate stop right after issuing: later ids are larger');
}

# A backend killed with SIGKILL makes the postmaster reset shared memory
# (restart_after_crash), reloading the generator state without a restart.
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->reload;
{
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$last = issue_before_stop(103);
	my $mid = $bg->query_safe('SELECT order_ext.new_order_id()');
	my $log_offset = -s $node->logfile;
	ok(kill('KILL', $pid), '(c) killed a backend with SIGKILL');
	$bg->quit;
	# the postmaster notices, kills the other processes and starts over
	ok( eval {
			$node->wait_for_log(
				qr/all server processes terminated; reinitializing/,
				$log_offset);
			1;
		},
		'(c) the postmaster went through a crash restart');
	ok( $node->poll_query_until(
			'postgres', "SELECT order_ext.new_order_id() > $mid", 't'),
		'(c) server is back after the crash');
	is(check_after_restart($mid), '5000|0|0|t',
		'(c) after crash recovery (shared memory reset) every new id is larger');
}

# --------------------------------------------------------------------------
# (f) order_ext.node_id shows in the id bits
# --------------------------------------------------------------------------
$last = issue_before_stop(104);
$node->append_conf('postgresql.conf', 'order_ext.node_id = 5');
$node->restart;
is($node->safe_psql('postgres', 'SHOW order_ext.node_id'), '5', '(f) node_id is 5');
$res = $node->safe_psql('postgres', qq{
WITH n AS MATERIALIZED (
    SELECT order_ext.new_order_id() AS id FROM generate_series(1, 10000))
SELECT count(*), count(*) FILTER (WHERE $NODE_BITS = 5),
       count(*) FILTER (WHERE id <= $last)
FROM n});
is($res, '10000|10000|0', '(f) every id carries node 5 in bits 12..21, and is still larger than before');

# The node id is fixed at server start and limited to 0..1023.
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'SET order_ext.node_id = 6');
isnt($ret, 0, '(f) SET order_ext.node_id in a session fails');
like($stderr, qr/cannot be changed without restarting the server/,
	'(f) ... because node_id needs a restart');
($ret, $stdout, $stderr) =
  $node->psql('postgres', 'ALTER SYSTEM SET order_ext.node_id = 1024');
isnt($ret, 0, '(f) node_id 1024 is refused');
like($stderr, qr/1024 is outside the valid range/, '(f) ... as out of range');

# --------------------------------------------------------------------------
# (g) while ids are being issued, the launcher keeps the durable horizon
# ($PGDATA/order_ext_ids.state, ms) ahead of them, so that no backend has
# to write the file (and wait for its fsyncs) on the way: sampled every
# 50 ms for 10 s, an issued id's ms is always more than a second below the
# horizon on disk.  A backend that runs into the horizon itself moves it
# only 4 s past its id, so without the launcher the headroom would fall
# below a second in every 4 s.  (Each restart above resumed the ids at the
# horizon, up to 4 s ahead of the clock; first the clock catches up.)
# --------------------------------------------------------------------------
ok( $node->poll_query_until('postgres', q{
SELECT order_ext.new_order_id() >> 22
       < extract(epoch FROM clock_timestamp() - timestamptz '2020-01-01 00:00:00+00') * 1000}),
	'(g) the clock has caught up with the ids issued after the restarts');
$res = $node->safe_psql('postgres', q{
CREATE TEMP TABLE headroom (ms bigint, id_ms bigint);
DO $$
DECLARE
    id bigint;
BEGIN
    FOR i IN 1..200 LOOP
        id := order_ext.new_order_id();
        INSERT INTO headroom
            SELECT trim(pg_read_file('order_ext_ids.state'))::bigint - (id >> 22), id >> 22;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT count(*), max(id_ms) - min(id_ms) > 9000, min(ms) > 1000, min(ms), max(ms) FROM headroom});
my ($n, $spread, $ahead, $min, $max) = split /\|/, $res;
is($n, 200, '(g) 200 samples of the horizon');
ok($spread eq 't', '(g) ... over more than 9 s of id time');
ok($ahead eq 't', "(g) the horizon stayed over a second ahead of the ids issued (headroom $min to $max ms)");

# --------------------------------------------------------------------------
# (h) a server resumes its ids at the horizon; until it issues one, the
# launcher leaves the horizon alone (moving it would push the ids of a
# server that restarts again and again ever further ahead of the clock)
# --------------------------------------------------------------------------
my $state = $node->data_dir . '/order_ext_ids.state';
$node->stop;
my $before = slurp_file($state);
$node->start;
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'order_ext launcher'}),
	'(h) the launcher is running after the restart');
sleep 2;	# eight of its looks
is(slurp_file($state), $before, '(h) with no id issued since, the horizon file is as it was');
$node->safe_psql('postgres', 'SELECT order_ext.new_order_id()');
ok( $node->poll_query_until('postgres',
		"SELECT trim(pg_read_file('order_ext_ids.state'))::bigint > " . ($before =~ s/\s+//gr)),
	'(h) the first id moves it on');

# ... and not ever further ahead of the clock: five restarts in a row, an
# id issued after each; the ids stay at most 4 s (the horizon's step) ahead
# of the clock, where each start used to resume 4 s further on (20 s ahead
# after five quick restarts)
for my $round (1 .. 5)
{
	$node->restart;
	$node->safe_psql('postgres', 'SELECT order_ext.new_order_id()');
}
my $ahead_ms = $node->safe_psql('postgres', q{
SELECT (order_ext.new_order_id() >> 22)
       - floor(extract(epoch FROM clock_timestamp() - timestamptz '2020-01-01 00:00:00+00') * 1000)::bigint});
cmp_ok($ahead_ms, '<=', 4100, "(h) after five quick restarts the ids are at most 4 s ahead of the clock ($ahead_ms ms)");

# --------------------------------------------------------------------------
# (i) the horizon file cannot be written (here: a directory where its
# temporary file goes).  The launcher logs the error and carries on (the
# same process, its workers untouched); a session whose id runs into the
# horizon gets the error, naming the file; once the file can be written
# again, ids flow again.
# --------------------------------------------------------------------------
my $blocker = $node->data_dir . '/order_ext_ids.state.tmp';
my $launcher = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_ext launcher'});
my $log_offset_i = -s $node->logfile;
mkdir $blocker or die "mkdir $blocker: $!";
($ret, $stdout, $stderr) = $node->psql('postgres', q{
DO $$
BEGIN
    FOR i IN 1..120 LOOP	-- at most 6 s: past the horizon, at most 4 s ahead
        PERFORM order_ext.new_order_id();
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$});
isnt($ret, 0, '(i) with the horizon file unwritable, issuing ids fails once they reach the horizon');
like($stderr, qr/could not create order id state file "order_ext_ids\.state\.tmp"/,
	'(i) ... with an error that names the file');
like(slurp_file($node->logfile, $log_offset_i),
	qr/\[$launcher\] [^\n]*could not create order id state file/,
	'(i) the launcher logged the same error');
is($node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_ext launcher'}),
	$launcher, '(i) ... and is still the same process');
rmdir $blocker or die "rmdir $blocker: $!";
ok($node->safe_psql('postgres', 'SELECT order_ext.new_order_id() > 0') eq 't',
	'(i) with the file writable again, ids are issued again');

$node->stop;

# --------------------------------------------------------------------------
# (e) no shared_preload_libraries: only new_order_id() needs it
# --------------------------------------------------------------------------
my $plain = PostgreSQL::Test::Cluster->new('no_preload');
$plain->init;
$plain->append_conf('postgresql.conf', "log_statement = 'none'");
$plain->start;

# Run SQL; on failure return the error text instead of dying, so that one
# broken call shows up as a failed check and the later checks still run.
sub plain_sql
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $plain->psql('postgres', $sql);
	return $ret == 0 ? $out : "psql exit $ret: $err";
}

is(plain_sql('CREATE EXTENSION order_ext; SELECT 1'), '1',
	'(e) CREATE EXTENSION works without shared_preload_libraries');

($ret, $stdout, $stderr) = $plain->psql('postgres',
	'SELECT order_ext.new_order_id()',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, '(e) new_order_id() fails without shared_preload_libraries');
like($stderr, qr/ERROR:  55000: .*shared_preload_libraries/,
	'(e) ... with SQLSTATE 55000 and a message naming shared_preload_libraries');
like($stderr, qr/HINT:  .*shared_preload_libraries/,
	'(e) ... and a hint naming shared_preload_libraries');
unlike($stderr, qr/FATAL|terminated abnormally|connection to server was lost/,
	'(e) ... as an ordinary ERROR, not a lost connection');

is( plain_sql(q{
SELECT order_ext.order_id_time(order_ext.min_order_id('2024-05-06 07:08:09.123+00'))
         = '2024-05-06 07:08:09.123+00',
       order_ext.min_order_id('2020-01-01 00:00:00+00'),
       order_ext.min_order_id('2020-01-01 00:00:00.001+00'),
       order_ext.order_id_time((1::bigint << 22) * 1000 + 5 * 4096 + 7)
         = '2020-01-01 00:00:01+00'}),
	't|0|4194304|t',
	'(e) order_id_time() and min_order_id() work without preloading');

is( plain_sql(q{
SELECT order_ext.min_order_id(now()) + 3 AS oid \gset
SELECT o.status, o.version, o.item_total, o.payable_total, o.order_id = :oid
FROM order_ext.create_order(:oid, 9,
       '[{"sku":"E-1","qty":2,"unit_price":250}]', shipping_fee => 100) o;
SELECT count(*) FROM order_ext.order_events e
WHERE e.order_id = :oid AND e.version = 1 AND e.event = 'create'}),
	"pending_payment|1|500|600|t\n1",
	'(e) create_order() with an id from min_order_id(now()) + n works without preloading');

# and the same call again is idempotent there too
is( plain_sql(q{
SELECT count(*) FROM order_ext.create_order(
       (SELECT order_id FROM order_ext.orders), 9,
       '[{"sku":"E-1","qty":2,"unit_price":250}]', shipping_fee => 100);
SELECT count(*) FROM order_ext.orders;
SELECT count(*) FROM order_ext.order_events}),
	"1\n1\n1",
	'(e) repeating create_order() changes nothing');

$plain->stop;

done_testing();
