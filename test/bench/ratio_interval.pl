#!/usr/bin/perl
# test/bench/ratio_interval.pl — how sure one run's interleaved p99 ratio is
# (scripts/bench_archive.sh, section 3).
#
#   perl ratio_interval.pl MARKS KIND [RESAMPLES] < latencies
#
# latencies: lines "epoch_seconds latency_us" (pgbench's transaction log,
# reduced as archive_bench_window_p99 does); MARKS: lines "start end kind", one
# per window, the windows of the run. Prints "low high": the 5th and 95th
# percentiles of p99(windows of KIND) / p99(idle windows) over RESAMPLES
# (default 400) bootstrap resamples, each drawing as many windows of each kind
# as the run had, with replacement, and pooling their transactions. The unit
# of the resampling is the window, not the transaction: the host's weather
# holds for seconds, so transactions in one window are not independent.
# Prints "- -" when either kind has no transaction. The seed is fixed, so the
# same logs give the same interval.
use strict;
use warnings;

my ($marks, $kind, $resamples) = @ARGV;
die "usage: $0 MARKS KIND [RESAMPLES] < latencies\n" unless defined $kind;
$resamples //= 400;

# windows, in time order; a window's first 0.2 s are left out, as in
# archive_bench_window_p99 (the archiver's process is starting)
my @win;
open(my $m, '<', $marks) or die "$marks: $!\n";
while (<$m>)
{
	my ($a, $b, $k) = split;
	next unless defined $k && ($k eq $kind || $k eq 'idle');
	push @win, { a => $a + 0.2, b => $b, kind => $k, lat => [] };
}
close($m);
@win = sort { $a->{a} <=> $b->{a} } @win;

while (<STDIN>)
{
	my ($t, $lat) = split;
	next unless defined $lat;
	# binary search: the last window starting at or before t
	my ($lo, $hi) = (0, $#win);
	next if $hi < 0 || $t < $win[0]{a};
	while ($lo < $hi)
	{
		my $mid = int(($lo + $hi + 1) / 2);
		if ($win[$mid]{a} <= $t) { $lo = $mid } else { $hi = $mid - 1 }
	}
	push @{ $win[$lo]{lat} }, $lat if $t < $win[$lo]{b};
}

my @idle = grep { $_->{kind} eq 'idle' && @{ $_->{lat} } } @win;
my @this = grep { $_->{kind} eq $kind && @{ $_->{lat} } } @win;
if (!@idle || !@this || $kind eq 'idle')
{
	print "- -\n";
	exit 0;
}

# p99 as archive_bench_pct99 takes it: the int(n * 0.99)-th smallest
sub p99
{
	my @v = sort { $a <=> $b } @_;
	my $i = int(@v * 0.99);
	$i = 1 if $i < 1;
	return $v[$i - 1];
}

sub resample
{
	my ($windows) = @_;
	my @pool;
	push @pool, @{ $windows->[ int(rand(@$windows)) ]{lat} } for 1 .. @$windows;
	return p99(@pool);
}

srand(20261207);
my @ratios;
for (1 .. $resamples)
{
	my $idle = resample(\@idle);
	push @ratios, $idle > 0 ? resample(\@this) / $idle : 0;
}
@ratios = sort { $a <=> $b } @ratios;
printf "%.2f %.2f\n", $ratios[ int(0.05 * $resamples) ], $ratios[ int(0.95 * $resamples) - 1 ];
