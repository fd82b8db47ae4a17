# Order ids when the system clock steps back (API.md, "Identifiers": never
# repeats, also if the system clock steps back or the server restarts).
#
# The server runs under libfaketime (Debian package libfaketime, pulled in
# by 'faketime').  Two cases:
#   1. the clock steps back one hour while the server runs (the offset is
#      read from a file that the test rewrites);
#   2. the server is restarted (fast and immediate) with FAKETIME='-1h'
#      after ids were issued at the real time.
# In both, new ids must be larger than every id issued before, and
# order_id_time() of new ids must not fall below the old maximum.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $libfaketime = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
plan skip_all => "$libfaketime is not installed (Debian package libfaketime)"
  unless -e $libfaketime;

my $node = PostgreSQL::Test::Cluster->new('clock');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'order_ext'
log_statement = 'none'
});

my $rcfile = $node->basedir . '/faketime.rc';

# Start the server with libfaketime preloaded; everything else in %ENV
# (pg_ctl's and the server's) is as usual.  Only wall-clock time is faked.
sub start_faked
{
	my (%fake) = @_;
	local $ENV{LD_PRELOAD} = $libfaketime;
	local $ENV{FAKETIME_DONT_FAKE_MONOTONIC} = '1';
	local @ENV{ keys %fake } = values %fake;
	$node->start;
}

# How far the server's clock is behind the test's, in whole minutes.
sub server_lag_minutes
{
	my $server = $node->safe_psql('postgres',
		'SELECT extract(epoch FROM clock_timestamp())::bigint');
	return int((time() - $server) / 60 + 0.5);
}

# Issue n ids into table ids (tagged) and return the largest id.
sub issue
{
	my ($tag, $n) = @_;
	$node->safe_psql('postgres', qq{
INSERT INTO ids (tag, id) SELECT '$tag', order_ext.new_order_id() FROM generate_series(1, $n)});
	return $node->safe_psql('postgres', "SELECT max(id) FROM ids WHERE tag = '$tag'");
}

# New ids (tag) against every id issued before them: returns
# "count|not_larger_than_old_max|time_below_old_max_time|strictly_increasing"
sub compare
{
	my ($tag) = @_;
	return $node->safe_psql('postgres', qq{
WITH old AS (SELECT max(id) AS id FROM ids WHERE tag <> '$tag' AND seq < (SELECT min(seq) FROM ids WHERE tag = '$tag')),
     new AS (SELECT seq, id, lag(id) OVER (ORDER BY seq) AS prev FROM ids WHERE tag = '$tag')
SELECT count(*),
       count(*) FILTER (WHERE new.id <= old.id),
       count(*) FILTER (WHERE order_ext.order_id_time(new.id) < order_ext.order_id_time(old.id)),
       bool_and(prev IS NULL OR new.id > prev)
FROM new, old});
}

# --------------------------------------------------------------------------
# 1. the clock steps back while the server runs
# --------------------------------------------------------------------------
PostgreSQL::Test::Utils::append_to_file($rcfile, "+0\n");
start_faked(
	FAKETIME_TIMESTAMP_FILE => $rcfile,
	FAKETIME_CACHE_DURATION => '1');
$node->safe_psql('postgres', q{
CREATE EXTENSION order_ext;
CREATE TABLE ids (seq bigserial PRIMARY KEY, tag text NOT NULL, id bigint NOT NULL UNIQUE)});
is(server_lag_minutes(), 0, 'server starts at the real time');

issue('real', 20000);

# step back one hour
open my $fh, '>', $rcfile or die "cannot write $rcfile: $!";
print $fh "-1h\n";
close $fh;
ok( $node->poll_query_until(
		'postgres',
		'SELECT extract(epoch FROM clock_timestamp()) < ' . (time() - 3000),
		't'),
	'server clock stepped back one hour');
is(server_lag_minutes(), 60, 'server clock is 60 minutes behind');

issue('stepped', 20000);
is(compare('stepped'), '20000|0|0|t',
	'clock stepped back while running: new ids are larger and not earlier in time');

# 4096 ids fit in one ms; 20000 more must have borrowed a few ms, not an hour
is( $node->safe_psql('postgres', q{
SELECT order_ext.order_id_time(max(id)) - order_ext.order_id_time(min(id)) < interval '1 minute'
FROM ids WHERE tag = 'stepped'}),
	't',
	'ids issued while the clock is behind advance by borrowed milliseconds');

$node->stop;

# --------------------------------------------------------------------------
# 2. restart at the real time, issue, restart one hour behind (brief's case)
# --------------------------------------------------------------------------
$node->start;
is(server_lag_minutes(), 0, 'server back at the real time');
issue('real2', 20000);
$node->stop('fast');

start_faked(FAKETIME => '-1h');
is(server_lag_minutes(), 60, 'server restarted (fast) with its clock 60 minutes behind');
issue('behind_fast', 20000);
is(compare('behind_fast'), '20000|0|0|t',
	'after a fast restart one hour back: new ids are larger and not earlier in time');
# such an id is an hour ahead of the server's clock, but not of the ids it
# issued: create_order takes it (it refuses only ids ahead of both)
is( $node->safe_psql('postgres', q{
SELECT status FROM order_ext.create_order(order_ext.new_order_id(), 1,
       '[{"sku":"C-1","qty":1,"unit_price":1}]')}),
	'pending_payment',
	'with the clock an hour behind, create_order takes an id new_order_id() issued');

# crash (immediate stop) while behind, come back still behind
my $last = $node->safe_psql('postgres', 'SELECT order_ext.new_order_id()');
$node->stop('immediate');
start_faked(FAKETIME => '-1h');
is(server_lag_minutes(), 60, 'server restarted (after a crash) with its clock 60 minutes behind');
issue('behind_crash', 20000);
is(compare('behind_crash'), '20000|0|0|t',
	'after a crash with the clock one hour back: new ids are larger than the stored ones');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM ids WHERE tag = 'behind_crash' AND id <= $last"),
	'0',
	'... and larger than the last id issued before the crash');

# a crash while behind, then back to the real time: still increasing
$node->stop('immediate');
$node->start;
is(server_lag_minutes(), 0, 'server at the real time again');
issue('real3', 20000);
is(compare('real3'), '20000|0|0|t', 'back at the real time: ids still increase');

# create_order with such an id works (the partition of its month exists)
is( $node->safe_psql('postgres', q{
SELECT status FROM order_ext.create_order(order_ext.new_order_id(), 1,
       '[{"sku":"C-1","qty":1,"unit_price":1}]')}),
	'pending_payment',
	'create_order accepts a new id');

$node->stop;
done_testing();
