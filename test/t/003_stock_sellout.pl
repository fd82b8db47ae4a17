# Stock never oversells (API.md "Stock"; issue 4):
#   (a) a sell-out in normal mode: stock 1,000, 16 concurrent clients try
#       1,600 one-unit orders: exactly 1,000 succeed, 600 get OE003, nothing
#       else fails, available is 0 and check_stock() is empty;
#   (b) the same in hot mode (16 buckets), where near the end orders take
#       units from several buckets;
#   (c) a multi-unit sell-out in hot mode (orders of 1 to 5 units, stock
#       997): units sold + available = initial stock, never negative;
#   (d) SIGKILL of the server in the middle of a flash sale (a hot SKU and a
#       normal SKU, 16 clients): after the restart check_stock() is empty and
#       for each SKU the units of committed orders + available = the initial
#       stock.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

my $node = PostgreSQL::Test::Cluster->new('stock');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'order_ext'
max_connections = 60
log_statement = 'none'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION order_ext;
CREATE TABLE outcome (sku text, qty int, sqlstate text);
-- one order for qty units of sku by buyer: records ok / OE003; any other
-- error reaches pgbench, which then fails the test
CREATE FUNCTION try_order(sku text, qty int, buyer int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM order_ext.create_order(order_ext.new_order_id(), buyer,
        jsonb_build_array(jsonb_build_object('sku', sku, 'qty', qty, 'unit_price', 100)));
    INSERT INTO outcome VALUES (sku, qty, 'ok');
EXCEPTION WHEN SQLSTATE 'OE003' THEN
    INSERT INTO outcome VALUES (sku, qty, 'OE003');
END $$;
});

# sold(sku): units in committed orders | available | check_stock rows
sub sold
{
	my ($sku) = @_;
	return $node->safe_psql('postgres', qq{
SELECT coalesce((SELECT sum(qty) FROM order_ext.order_items WHERE sku = '$sku'), 0),
       order_ext.available('$sku'),
       (SELECT count(*) FROM order_ext.check_stock()),
       (SELECT count(*) FROM order_ext.stock_buckets WHERE sku = '$sku' AND (reserved > on_hand OR reserved < 0))});
}

sub sellout
{
	my ($name, $sku, $set, $clients, $tx) = @_;
	$node->safe_psql('postgres', "SELECT order_ext.set_stock($set)");
	my $n = $clients * $tx;
	$node->pgbench(
		"-n -c $clients -j 2 -t $tx",
		0,
		[qr{number of transactions actually processed: $n/$n}],
		[qr{^$}],
		"$name: $clients clients x $tx orders, no error but OE003",
		{ "003_$sku" => "SELECT try_order('$sku', 1, :client_id);" });
	is( $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE sqlstate = 'ok'), count(*) FILTER (WHERE sqlstate = 'OE003')
FROM outcome WHERE sku = '$sku'}),
		"1000|" . ($n - 1000),
		"$name: exactly 1,000 orders succeed, the other " . ($n - 1000) . " get OE003");
	is(sold($sku), '1000|0|0|0', "$name: 1,000 units in orders, 0 available, check_stock empty");
}

sellout('(a) normal mode', 'FLASH', q{'FLASH', 1000}, 16, 100);
sellout('(b) hot mode', 'FLASH_HOT', q{'FLASH_HOT', 1000, hot => true, buckets => 16}, 16, 100);

# (c) orders of 1..5 units, hot mode, 997 units
$node->safe_psql('postgres', q{SELECT order_ext.set_stock('MULTI', 997, hot => true, buckets => 8)});
$node->pgbench(
	'-n -c 16 -j 2 -t 40',
	0,
	[qr{number of transactions actually processed: 640/640}],
	[qr{^$}],
	'(c) hot mode, orders of 1..5 units: no error but OE003',
	{ '003_multi' => "\\set q random(1, 5)\nSELECT try_order('MULTI', :q, :client_id);" });
is( $node->safe_psql('postgres', q{
SELECT sum(qty) FILTER (WHERE sqlstate = 'ok'), count(*) FILTER (WHERE sqlstate = 'OE003') > 0
FROM outcome WHERE sku = 'MULTI'}),
	'997|t', '(c) the successful orders add up to exactly the 997 units, the rest got OE003');
is(sold('MULTI'), '997|0|0|0', '(c) 997 units in orders, 0 available, check_stock empty');

# --------------------------------------------------------------------------
# (d) SIGKILL in the middle of a flash sale
# --------------------------------------------------------------------------
$node->safe_psql('postgres', q{
SELECT order_ext.set_stock('CRASH_HOT', 200000, hot => true, buckets => 16);
SELECT order_ext.set_stock('CRASH_NORM', 200000);
});
my $script = PostgreSQL::Test::Utils::tempdir() . "/003_crash.sql";
open(my $fh, '>', $script) or die "cannot write $script: $!";
print $fh "\\set q random(1, 3)\n"
  . "SELECT try_order(CASE WHEN random() < 0.5 THEN 'CRASH_HOT' ELSE 'CRASH_NORM' END, :q, :client_id);\n";
close($fh);
my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '16', '-j', '2', '-T', '60', '-f', $script,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);
# wait until a good number of orders committed, then kill the server
$node->poll_query_until('postgres',
	q{SELECT count(*) >= 2000 FROM outcome WHERE sku LIKE 'CRASH%' AND sqlstate = 'ok'})
  or die 'the flash sale did not get going';
# like a power cut: the postmaster and every backend at once
my $pid = $node->{_pid};
my @procs = ($pid, split(/\s+/, `pgrep -P $pid`));
kill 'KILL', grep { /^\d+$/ } @procs;
$node->{_pid} = undef;
foreach my $i (1 .. 300)
{
	last unless grep { kill(0, $_) } grep { /^\d+$/ } @procs;
	Time::HiRes::usleep(100_000);
}
$bench->finish;		# its clients lost their connections
ok($err =~ /abort|died|terminat|connection|closed|lost/i, '(d) pgbench was cut off by the crash');
$node->start;

for my $sku ('CRASH_HOT', 'CRASH_NORM')
{
	my ($sold, $avail, $bad, $neg) = split /\|/, sold($sku);
	ok($sold > 0, "(d) $sku: orders committed before the crash survive ($sold units)");
	is($sold + $avail, 200000, "(d) $sku: units in committed orders + available = initial stock");
	is("$bad|$neg", '0|0', "(d) $sku: check_stock() empty, every bucket 0 <= reserved <= on_hand");
}
# the sale goes on after the restart
$node->safe_psql('postgres', q{SELECT try_order('CRASH_HOT', 2, 1)});
is(sold('CRASH_HOT') =~ /\|0\|0$/ ? 'ok' : 'bad', 'ok', '(d) orders go on after the restart, still consistent');

$node->stop;
done_testing();
