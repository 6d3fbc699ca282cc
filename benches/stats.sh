#!/bin/sh
# sluice stats against eximstats on one generated main log.
#
#   benches/stats.sh [-n MESSAGES] [-r ROUNDS] [-b SLUICE_BINARY] [-k]
#
# Generates a log with classic 16-character IDs (eximstats reads no other
# form) with benches/gen_mainlog.py, then runs eximstats (its default
# sections, text to /dev/null) and `sluice stats` (the same report) on it
# in turns, A B A B, and prints each run's lines per second and the ratio
# of the medians. Build the binary first:
#
#   cargo build --release --bin sluice
#
# -k keeps the log (its path is printed). Nothing else is written outside
# a temporary directory.
set -eu

messages=300000
rounds=3
bin=
keep=
while getopts n:r:b:k opt; do
    case $opt in
        n) messages=$OPTARG ;;
        r) rounds=$OPTARG ;;
        b) bin=$OPTARG ;;
        k) keep=1 ;;
        *) sed -n '2,15p' "$0"; exit 64 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
[ -n "$bin" ] || bin="$here/../target/release/sluice"
eximstats=${EXIMSTATS:-/usr/sbin/eximstats}
[ -x "$bin" ] || { echo "no $bin: cargo build --release --bin sluice" >&2; exit 69; }
[ -x "$eximstats" ] || { echo "no $eximstats (Debian's exim4-base)" >&2; exit 69; }

work=$(mktemp -d)
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
log="$work/mainlog"
python3 "$here/gen_mainlog.py" -n "$messages" --classic -o "$log"
lines=$(wc -l < "$log")
bytes=$(wc -c < "$log")
echo "log: $lines lines, $bytes bytes, $messages messages ($log)"
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

# Seconds (with fractions) that a command takes; its output is discarded.
seconds() {
    start=$(date +%s.%N)
    "$@" > /dev/null
    end=$(date +%s.%N)
    awk "BEGIN { print $end - $start }"
}

div() { awk "BEGIN { print $1 / $2 }"; }

# Both read the log as UTC (the generator writes UTC stamps).
export TZ=UTC
export SLUICE_HOME="$work/home"
: > "$work/exim.times"
: > "$work/sluice.times"
i=1
while [ "$i" -le "$rounds" ]; do
    a=$(seconds "$eximstats" "$log")
    b=$(seconds "$bin" stats --tz UTC "$log")
    echo "$a" >> "$work/exim.times"
    echo "$b" >> "$work/sluice.times"
    printf 'round %d: eximstats %.2f s (%.0f lines/s), sluice stats %.2f s (%.0f lines/s)\n' \
        "$i" "$a" "$(div "$lines" "$a")" "$b" "$(div "$lines" "$b")"
    i=$((i + 1))
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ea=$(median "$work/exim.times")
sb=$(median "$work/sluice.times")
printf 'median: eximstats %.0f lines/s, sluice stats %.0f lines/s, ratio %.1fx\n' \
    "$(div "$lines" "$ea")" "$(div "$lines" "$sb")" "$(div "$ea" "$sb")"
