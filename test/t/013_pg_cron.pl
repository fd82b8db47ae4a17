# pg_cron instead of the worker (API.md "Archiving history orders", README
# "Scheduling with pg_cron"): a job scheduled with cron.schedule runs
# order_ext.archive() and moves a finished month.  Debian's pg_cron 1.4
# schedules by the minute, so this waits up to two minutes.  The month moves
# whole, and the log says for how long its tables were locked.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib 't', 'test/t';
use ArchiveTest;

my $node = archive_node('cron', 'pg_cron,order_ext',
	"cron.database_name = 'postgres'", "cron.use_background_workers = on");
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
$node->safe_psql('postgres', 'CREATE EXTENSION order_ext');
make_month($node, 'postgres', '2024-01-01', 2000, 0);
make_month($node, 'postgres', '2024-02-01', 2000, 10);

# the README recipe, every minute instead of daily at 03:00
my $job = $node->safe_psql('postgres',
	q{SELECT cron.schedule('order-archive', '* * * * *', $$SELECT order_ext.archive('30 days', 500)$$)});
ok($job > 0, 'job scheduled');
ok(wait_for($node, 'postgres', q{SELECT count(*) = 3990 FROM order_ext.orders_history}, 150),
	'the pg_cron job archived every finished order');
is(placement($node, 'postgres'), join('|', 4000, 0, 0, 12000, 4000, 4000, 8000),
	'every order in one place with all its rows');
is($node->safe_psql('postgres', 'SELECT count(*) FROM order_ext.orders'), 10, 'the unfinished ones stay live');
ok(wait_for($node, 'postgres',
	q{SELECT bool_or(status = 'succeeded') FROM cron.job_run_details}, 30),
	'pg_cron recorded the run as succeeded');
like($node->safe_psql('postgres',
	q{SELECT string_agg(DISTINCT source || ':' || status, ',') FROM order_ext.worker_runs WHERE results ? 'archive'}),
	qr/^archive:succeeded$/, 'and so did order_ext.worker_runs');
my ($locked, $checking) = slurp_file($node->logfile) =~
  /moved month orders_p2024_01 as a whole \(2000 orders; its tables were locked for (\d+) ms, (\d+) of them checking that every order was finished\)/;
ok(defined $locked && $checking <= $locked, 'the log says how long the whole month was locked, and checked');
$node->safe_psql('postgres', q{SELECT cron.unschedule('order-archive')});
$node->stop;
done_testing();
