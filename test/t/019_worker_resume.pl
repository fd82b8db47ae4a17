# The worker's archive job goes on where its last run stopped (README
# "Archiving history orders", the worker): a run archives for at most
# order_ext.naptime and leaves the rest to the next run.  A month that
# starts with more orders still under way than one run can read used to
# keep every run from the finished orders further on: each run began at
# the month's first order again, read the unfinished ones until its time
# was up, and moved nothing.  Now the next run of the worker's process goes
# on from where the last one stopped, and starts the month over once its
# batches reach the end.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib 't', 'test/t';
use ArchiveTest;

# slow batches: 10 orders each, 100 ms apart, runs of 1 s
my $node = archive_node('resume', 'order_ext',
	"order_ext.worker_databases = 'rdb'", "order_ext.naptime = 1",
	"order_ext.archive_batch_size = 10", "order_ext.archive_pause = 100",
	"order_ext.archive_after = '30 days'");
$node->safe_psql('postgres', 'CREATE DATABASE rdb');
$node->safe_psql('rdb', 'CREATE EXTENSION order_ext');
# 400 orders still under way (paid, not shipped), then 20 finished, in January 2024
make_month($node, 'rdb', '2024-01-01', 420, 400);
is($node->safe_psql('rdb', q{SELECT count(*) FILTER (WHERE status = 'paid'), count(*) FROM order_ext.orders}),
	'400|420', 'a month of 400 orders under way, then 20 finished');

ok(wait_for($node, 'rdb', q{SELECT count(*) = 20 FROM order_ext.orders_history}, 90),
	'the worker archives the 20 finished orders behind the unfinished ones');
my $runs = $node->safe_psql('rdb', q{SELECT count(*) FROM order_ext.worker_runs WHERE source = 'worker'});
cmp_ok($runs, '>', 1, "over several runs ($runs)");
ok($node->log_contains(qr/order_ext archive: stopping after 1000 ms of this run/),
	'each of which stopped on its time budget, leaving the rest to the next');
is($node->safe_psql('rdb', q{SELECT count(*) FROM order_ext.orders WHERE status = 'paid'}), '400',
	'the orders under way stay live');

$node->stop;
done_testing();
