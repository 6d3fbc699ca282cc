#!/usr/bin/env bash
# What one message costs the daemon: data barriers, files and directories
# synced, thread creations, system and user CPU, per message delivered into
# a local Maildir over SMTP.
#
#   benches/syscalls.sh [-n MESSAGES] [-c SESSIONS] [-s SIZE] [-r ROUNDS]
#                       [-w WARM] [--base BIN] [--strace] [--work DIR] [--keep]
#
# Defaults: -n 2000 -c 16 -s 4096 -r 1 -w 200 (messages sent before counting). Each run starts a fresh daemon on a
# fresh data directory (durability=batch), sends the load with sluice-load,
# waits until every message is a file in the Maildir, stops the daemon and
# reads:
#   - the committer's own counters (the line it logs when it stops):
#     batches, jobs, files synced (fdatasync), directories synced (fsync);
#   - thread creations: the daemon's thread IDs (/proc/PID/task) sampled
#     every 10 ms over the load; each ID not there before is one creation
#     (a thread living less than 10 ms may be missed: strace's clone3
#     count with --strace is the check);
#   - user and system CPU of the daemon from /proc/PID/stat;
#   - its peak resident memory (VmHWM in /proc/PID/status) when it stops.
# --base BIN runs a second sluice binary (e.g. the last release) in the same
# rounds, alternating (A B A B), for a ratio that the machine's drift does
# not skew. --strace also runs each binary once more under `strace -c -f`
# and prints the system calls per message: supporting evidence only (strace
# slows every call, so no time is taken from that run).
#
# Not run in CI.

set -euo pipefail

messages=2000
sessions=16
size=4096
rounds=1
warm=200
base=""
with_strace=0
work=""
keep=0

usage() {
    sed -n '2,25s/^# \{0,1\}//p' "$0" >&2
    exit 64
}

while [ $# -gt 0 ]; do
    case "$1" in
        -n) messages=$2; shift 2 ;;
        -c) sessions=$2; shift 2 ;;
        -s) size=$2; shift 2 ;;
        -r) rounds=$2; shift 2 ;;
        -w) warm=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        --strace) with_strace=1; shift ;;
        --work) work=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) usage ;;
        *) echo "syscalls.sh: unknown argument $1" >&2; usage ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '== %s\n' "$*" >&2; }

say "building sluice and sluice-load (release)"
(cd "$repo" && cargo build --release --bin sluice >&2 &&
    cargo build --release -p sluice-tools --bin sluice-load >&2)
current=$repo/target/release/sluice
load_bin=$repo/target/release/sluice-load
if [ -n "$base" ] && [ ! -x "$base" ]; then
    echo "syscalls.sh: --base $base is not an executable" >&2
    exit 66
fi
if [ "$with_strace" = 1 ] && ! command -v strace >/dev/null; then
    echo "syscalls.sh: --strace needs strace (apt-get install strace)" >&2
    exit 69
fi

if [ -z "$work" ]; then
    work=$(mktemp -d "${TMPDIR:-/var/tmp}/sluice-syscalls.XXXXXX")
else
    mkdir -p "$work"
fi
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null || true
    if [ "$keep" = 0 ]; then rm -rf "$work"; else say "kept $work"; fi
}
trap cleanup EXIT

ticks=$(getconf CLK_TCK)
# utime and stime of PID, in clock ticks (fields 14 and 15).
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
delivered() { { find "$1/new" "$1/cur" -type f 2>/dev/null || true; } | wc -l; }

# start BIN DIR: starts a daemon; sets $daemon and $port.
start() {
    local bin=$1 dir=$2
    mkdir -p "$dir"
    SLUICE_HOME=$dir "$bin" serve --listen 127.0.0.1:0 --set durability=batch \
        --set "smtp.max_connections=$((sessions + 16))" \
        --set "smtp.max_connections_per_host=$((sessions + 16))" \
        >"$dir/stdout" 2>"$dir/stderr" &
    daemon=$!
    port=""
    for _ in $(seq 100); do
        port=$(sed -n 's/.*smtp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/stdout")
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    echo "syscalls.sh: $bin did not start:" >&2
    cat "$dir/stderr" >&2
    exit 1
}

# stop: SIGTERM, and wait for the daemon to exit (it logs its counters).
stop() {
    kill -TERM "$daemon"
    wait "$daemon" 2>/dev/null || true
    daemon=""
}

wait_all() {
    local maildir=$1 want=$2
    for _ in $(seq 6000); do
        [ "$(delivered "$maildir")" -ge "$want" ] && return 0
        sleep 0.1
    done
    echo "syscalls.sh: only $(delivered "$maildir") of $want delivered in $maildir" >&2
    exit 1
}

results=$work/results.tsv
: >"$results"

# measure NAME BIN: one run; appends a row to $results.
measure() {
    local name=$1 bin=$2 dir cpu0 cpu1 p0 p1 line
    dir=$work/run-$name-$RANDOM
    start "$bin" "$dir"
    # Some messages first, over as many sessions, so that the Maildir, the
    # runtime's threads and the committer's exist before counting.
    "$load_bin" --port "$port" -n "$warm" -s "$size" -c "$sessions" --to load@localhost >/dev/null
    wait_all "$dir/mail/localhost/load" "$warm"
    sync
    read -r -a cpu0 <<<"$(cpu "$daemon")"
    ls "/proc/$daemon/task" >"$dir/tids.before"
    # Thread IDs seen while the load runs.
    (while [ -d "/proc/$daemon/task" ] && [ ! -e "$dir/load.done" ]; do
        ls "/proc/$daemon/task"
        sleep 0.01
    done) >"$dir/tids.during" 2>/dev/null &
    sampler=$!
    "$load_bin" --port "$port" -n "$messages" -s "$size" -c "$sessions" \
        --to load@localhost --json >"$dir/load.json"
    wait_all "$dir/mail/localhost/load" $((messages + warm))
    touch "$dir/load.done"
    wait "$sampler" 2>/dev/null || true
    p0=0
    p1=$(sort -u "$dir/tids.during" | comm -13 <(sort -u "$dir/tids.before") - | wc -l)
    read -r -a cpu1 <<<"$(cpu "$daemon")"
    peak=$(awk '/^VmHWM:/ {print $2}' "/proc/$daemon/status")
    stop
    line=$(grep -a "commit counters" "$dir/log/mainlog" | tail -1 || true)
    python3 - "$name" "$messages" "$warm" "$ticks" "${cpu0[0]}" "${cpu0[1]}" "${cpu1[0]}" "${cpu1[1]}" \
        "$p0" "$p1" "$line" "$dir/load.json" "$peak" >>"$results" <<'EOF'
import json, re, sys
name, n, warm, ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
u0, s0, u1, s1, p0, p1 = map(int, sys.argv[5:11])
line, report = sys.argv[11], json.load(open(sys.argv[12]))
peak_kib = int(sys.argv[13])
c = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))
# The warm-up messages are in the committer's counters too.
total = n + warm
threads = p1 - p0
def per(v):
    return "%.3f" % (v / total) if v is not None else "-"
print("\t".join([
    name,
    per(c.get("batches")), per(c.get("data_syncs")), per(c.get("dir_syncs")),
    "%.3f" % (max(threads, 0) / n),
    "%.3f" % ((u1 - u0) * 1000 / ticks / n), "%.3f" % ((s1 - s0) * 1000 / ticks / n),
    "%.1f" % report["messages_per_second"], "%.2f" % report["latency_ms"]["p99"],
    "%.1f" % (peak_kib / 1024),
]))
EOF
    say "$name: $(tail -1 "$results")"
    rm -rf "$dir"
}

# trace NAME BIN: one run under strace -c -f; prints calls per message.
trace() {
    local name=$1 bin=$2 dir tracer
    dir=$work/trace-$name
    start "$bin" "$dir"
    "$load_bin" --port "$port" -n "$warm" -s "$size" -c "$sessions" --to load@localhost >/dev/null
    wait_all "$dir/mail/localhost/load" "$warm"
    strace -c -f -p "$daemon" -o "$dir/strace.txt" &
    tracer=$!
    sleep 1
    "$load_bin" --port "$port" -n "$messages" -s "$size" -c "$sessions" \
        --to load@localhost >/dev/null
    wait_all "$dir/mail/localhost/load" $((messages + warm))
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    stop
    echo
    echo "strace -c -f of $name ($bin), calls per message:"
    awk -v n="$messages" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
        name = $NF; calls = $4
        printf "  %-16s %8.2f\n", name, calls / n
    }' "$dir/strace.txt" | sort -k2 -n -r | head -25
}

for round in $(seq "$rounds"); do
    say "round $round of $rounds"
    measure current "$current"
    [ -n "$base" ] && measure base "$base"
done

echo
echo "$messages messages of $size bytes over $sessions sessions into one local Maildir; $rounds round(s)."
echo "$(nproc) CPUs; work directory on $(df -PT "$work" | awk 'NR==2 {print $1 " (" $2 ")"}')."
echo "Per message (the $warm warm-up messages are counted in the committer's columns):"
echo
python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
head = ("binary", "barriers", "files synced", "dirs synced", "threads", "user ms", "sys ms", "msg/s", "p99 ms", "peak MiB")
fmt = "%-8s %9s %13s %12s %8s %8s %8s %8s %8s %9s"
print(fmt % head)
for r in rows:
    print(fmt % tuple(r))
names = sorted({r[0] for r in rows})
if len(names) > 1:
    print()
    med = {n: [statistics.median(float(r[i]) for r in rows if r[0] == n and r[i] != "-")
               for i in (5, 6, 7, 8, 9)] for n in names}
    c, b = med["current"], med["base"]
    print("median current/base: user CPU %.2f, system CPU %.2f, msg/s %.2f, p99 %.2f, peak memory %.2f" %
          tuple(c[i] / b[i] for i in range(5)))
EOF

if [ "$with_strace" = 1 ]; then
    trace current "$current"
    [ -n "$base" ] && trace base "$base"
fi
