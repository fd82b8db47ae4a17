# Fuzzing the public functions (issue 7): test/fuzz/fuzz.sql drives
# thousands of generated calls, valid sequences and malformed input, and
# checks after each step that every error is a 22xxx/OExxx SQLSTATE and that
# the invariants hold (see its header).  A seed makes a run reproducible:
#
#     FUZZ_SEED=1234 FUZZ_STEPS=5000 prove test/t/030_fuzz.pl
#
# Without FUZZ_SEED each run picks a new seed and prints it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seed = $ENV{FUZZ_SEED} // (time() % 1000000);
my $steps = $ENV{FUZZ_STEPS} // 3000;
my $rounds = $ENV{FUZZ_ROUNDS} // 2;
note("fuzz seed $seed, $rounds x $steps steps (repeat with FUZZ_SEED=$seed)");

my $node = PostgreSQL::Test::Cluster->new('fuzz');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'order_ext'
log_statement = 'none'
log_min_messages = warning
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION order_ext');
my $dir = $ENV{TESTDIR} // '.';
my ($ret, $out, $err) = $node->psql('postgres', undef,
	extra_params => [ '-v', 'ON_ERROR_STOP=1', '-f', "$dir/test/fuzz/fuzz.sql" ]);
is($ret, 0, 'the fuzzer loads') or diag($err);

for my $round (1 .. $rounds)
{
	my $s = $seed + $round - 1;
	($ret, $out, $err) = $node->psql('postgres', "CALL fuzz.run($s, $steps)", timeout => 900);
	is($ret, 0, "seed $s: $steps steps ran to the end") or diag($err);
	is($node->safe_psql('postgres', 'SELECT 1'), '1', "seed $s: the server is up");
	my $failures = $node->safe_psql('postgres',
		"SELECT step || ' ' || action || ': ' || problem || ' -- ' || left(call, 300) FROM fuzz.failures WHERE seed = $s ORDER BY step LIMIT 20");
	is($failures, '', "seed $s: no failures (unexpected SQLSTATEs, broken invariants)");
	note($node->safe_psql('postgres',
		"SELECT string_agg(action || ' ' || outcome || '=' || n, ', ' ORDER BY action, outcome)
		 FROM (SELECT action, outcome, count(*) AS n FROM fuzz.log WHERE seed = $s GROUP BY 1, 2) x"));
}
my $total = $node->safe_psql('postgres', 'SELECT count(*) FROM fuzz.log');
note("fuzz steps run: $total");
ok($total == $steps * $rounds, "all $total steps were logged");
# the fuzz exercised both outcomes: valid calls succeeded and bad ones were refused
is($node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE outcome = 'ok') > 0 AND count(*) FILTER (WHERE outcome <> 'ok') > 0
   AND count(DISTINCT action) >= 5 FROM fuzz.log}), 't', 'the fuzz took both paths, over several actions');

$node->stop;
done_testing();
