#!/usr/bin/perl
# test/bench/window_p99.pl — create_order's p99 inside one kind of window of
# the interleaved section (scripts/bench_archive.sh, section 3), and how sure
# the run is of its ratio to the idle windows.
#
#   perl window_p99.pl MARKS KIND [RESAMPLES] < latencies
#   perl window_p99.pl - all < latencies      (every transaction, one window)
#
# latencies: lines "epoch_seconds latency_us", one per transaction (pgbench's
# transaction log, reduced by archive_bench_latencies); MARKS: lines
# "start end kind", one per window, the windows of the run. A transaction
# belongs to the window its end falls in, less the window's first 0.2 s (the
# archiver's process is starting). MARKS "-": one window of KIND holding
# every transaction, nothing left out (section 2's continuous p99).
#
# Prints "p99_ms n low high": the 99th percentile (ms) of the transactions in
# the windows of KIND and their count; then the 5th and 95th percentiles of
# p99(windows of KIND) / p99(idle windows) over RESAMPLES (default 400)
# bootstrap resamples, each drawing as many windows of each kind as the run
# had, with replacement, and pooling their transactions ("- -" for KIND idle,
# with RESAMPLES 0, or when either kind has no transaction). The unit of the
# resampling is the window, not the transaction: the host's weather holds for
# seconds, so transactions in one window are not independent. The seed is
# fixed, so the same logs give the same interval.
use strict;
use warnings;

my ($marks, $kind, $resamples) = @ARGV;
die "usage: $0 MARKS KIND [RESAMPLES] < latencies\n" unless defined $kind;
$resamples //= 400;

# windows of KIND and idle ones, in time order
my @win;
if ($marks eq '-')
{
	push @win, { a => -9**9**9, b => 9**9**9, kind => $kind, lat => [] };
}
else
{
	open(my $m, '<', $marks) or die "$marks: $!\n";
	while (<$m>)
	{
		my ($a, $b, $k) = split;
		next unless defined $k && ($k eq $kind || $k eq 'idle');
		push @win, { a => $a + 0.2, b => $b, kind => $k, lat => [] };
	}
	close($m);
}
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

# p99: the int(n * 0.99)-th smallest (the first, for fewer than 100); 0 for none
sub p99
{
	my @v = sort { $a <=> $b } @_;
	my $i = int(@v * 0.99);
	$i = 1 if $i < 1;
	return @v ? $v[$i - 1] : 0;
}

my @idle = grep { $_->{kind} eq 'idle' && @{ $_->{lat} } } @win;
my @this = grep { $_->{kind} eq $kind && @{ $_->{lat} } } @win;
my @all = map { @{ $_->{lat} } } @this;
printf "%.2f %d ", p99(@all) / 1000, scalar(@all);
if (!@idle || !@this || $kind eq 'idle' || $resamples <= 0)
{
	print "- -\n";
	exit 0;
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
