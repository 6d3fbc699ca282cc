#!/usr/bin/env bash
# Sluice against Exim under the same SMTP load: messages accepted per second,
# messages delivered into Maildir per second, and the time from the final dot
# to the 250 (p50, p99).
#
#   sudo benches/peers/smtp.sh [-n MESSAGES] [-s SIZE] [-c CONNECTIONS]
#                              [-r ROUNDS] [--smtp-source] [--keep] [--work DIR]
#                              [--base SLUICE_BINARY]
#
# Defaults: -n 4000 -s 4096 -c 16 -r 1 (each round runs every client against
# Exim, then Sluice, then --base, an earlier sluice binary, if given; each
# run on a freshly started daemon; the summary gives medians over the
# rounds). Both servers accept at least C + 16 connections. Debian or Ubuntu, as root: it installs
# exim4-daemon-light with apt-get and lists its private configuration in
# /etc/exim4/trusted_configs while it runs (Exim keeps root, and so its
# normal privilege separation, only for a configuration listed there).
# --smtp-source also drives both servers with Postfix's smtp-source (taken
# from the postfix package with apt-get download and dpkg -x, not installed).
#
# Both servers write under one work directory (default: a new directory in
# ${TMPDIR:-/var/tmp}), so they share a filesystem. Exim: its own spool and
# log, immediate delivery of every message (smtp_accept_queue_per_connection
# = 0: its default of 10 would leave the rest of each connection's messages
# for a queue runner), an appendfile transport in maildir_format, and its
# default fsync behaviour (the -D and -H files and the spool directory
# before the 250; the Maildir file before the rename into new/). Sluice:
# its embedded configuration with durability=batch (group commit; 250 only
# once the spool files and their directory entries are durable).
#
# Not run in CI: it installs packages and takes a minute or two.

set -euo pipefail

messages=4000
size=4096
connections=16
rounds=1
smtp_source=0
keep=0
work=""
base=""

usage() {
    sed -n '2,16s/^# \{0,1\}//p' "$0" >&2
    exit 64
}

while [ $# -gt 0 ]; do
    case "$1" in
        -n) messages=$2; shift 2 ;;
        -s) size=$2; shift 2 ;;
        -c) connections=$2; shift 2 ;;
        -r) rounds=$2; shift 2 ;;
        --smtp-source) smtp_source=1; shift ;;
        --keep) keep=1; shift ;;
        --work) work=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "smtp.sh: unknown argument $1" >&2; usage ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "smtp.sh: run as root (apt-get, and Exim's trusted configuration list)" >&2
    exit 77
fi

repo=$(cd "$(dirname "$0")/../.." && pwd)
accept_max=$((connections + 16))
[ "$accept_max" -lt 100 ] && accept_max=100
# How long to wait for all deliveries after the load ends.
delivery_timeout=${DELIVERY_TIMEOUT:-900}
# Files counted in the Maildirs this often.
poll=0.1

say() { printf '== %s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------

if ! command -v exim4 >/dev/null 2>&1; then
    say "installing exim4-daemon-light"
    DEBIAN_FRONTEND=noninteractive apt-get install -y exim4-daemon-light >&2
fi
exim_bin=$(command -v exim4)
exim_version=$("$exim_bin" -bV 2>/dev/null | sed -n '1s/^Exim version \([^ ]*\).*/\1/p')
command -v python3 >/dev/null || { echo "smtp.sh: python3 is needed" >&2; exit 69; }

say "building sluice and sluice-load (release)"
(cd "$repo" && cargo build --release --bin sluice >&2 &&
    cargo build --release -p sluice-tools --bin sluice-load >&2)
sluice_bin=$repo/target/release/sluice
load_bin=$repo/target/release/sluice-load

if [ -z "$work" ]; then
    work=$(mktemp -d "${TMPDIR:-/var/tmp}/sluice-smtp-bench.XXXXXX")
else
    mkdir -p "$work"
fi
# Exim's daemon runs as Debian-exim and must reach its spool under here.
chmod 755 "$work"

smtp_source_bin=""
if [ "$smtp_source" = 1 ]; then
    say "fetching Postfix's smtp-source"
    (cd "$work" && apt-get download postfix >&2 && dpkg -x postfix_*.deb postfix)
    smtp_source_bin=$work/postfix/usr/sbin/smtp-source
    export LD_LIBRARY_PATH=$work/postfix/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

# --- cleanup -----------------------------------------------------------------

pids=()
trusted=/etc/exim4/trusted_configs
exim_conf=$work/exim/exim.conf
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    if [ -f "$trusted" ]; then
        grep -vxF "$exim_conf" "$trusted" >"$trusted.new" || true
        if [ -s "$trusted.new" ]; then mv "$trusted.new" "$trusted"; else rm -f "$trusted" "$trusted.new"; fi
    fi
    if [ "$keep" = 0 ]; then rm -rf "$work"; else say "kept $work"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now() { date +%s.%N; }

# Number of files in new/ and cur/ of a Maildir.
delivered() {
    # Before the first delivery the directories do not exist yet.
    { find "$1/new" "$1/cur" -type f 2>/dev/null || true; } | wc -l
}

# wait_delivered MAILDIR COUNT START: waits for COUNT files; prints the
# seconds from START until they were all there (or fails).
wait_delivered() {
    local dir=$1 want=$2 start=$3 deadline n
    deadline=$(python3 -c "print($(now) + $delivery_timeout)")
    while :; do
        n=$(delivered "$dir")
        if [ "$n" -ge "$want" ]; then
            python3 -c "print($(now) - $start)"
            return 0
        fi
        if python3 -c "import sys; sys.exit(0 if $(now) > $deadline else 1)"; then
            echo "smtp.sh: only $n of $want messages delivered into $dir after ${delivery_timeout}s" >&2
            return 1
        fi
        sleep "$poll"
    done
}

# json FILE EXPR: a value from sluice-load's JSON report.
json() {
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"r": r}))' "$1" "$2"
}

results=$work/results.tsv
: >"$results"

# run_load NAME MAILDIR PORT CLIENT: one load run against a started server.
# Appends: name, client, accepted/s, delivered/s, p50 ms, p99 ms, and the
# 1-minute load average at the start (other work on the machine skews all).
run_load() {
    local name=$1 maildir=$2 port=$3 client=$4 before start end report accepted_rate p50 p99 secs load
    before=$(delivered "$maildir")
    sync
    load=$(cut -d' ' -f1 /proc/loadavg)
    report=$work/$name-$client.json
    start=$(now)
    if [ "$client" = sluice-load ]; then
        "$load_bin" --port "$port" -n "$messages" -s "$size" -c "$connections" \
            --to load@localhost --json >"$report" ||
            { echo "smtp.sh: $name: some messages were not accepted:" >&2; cat "$report" >&2; return 1; }
        end=$(now)
        accepted_rate=$(json "$report" 'round(r["messages_per_second"], 1)')
        p50=$(json "$report" 'round(r["latency_ms"]["p50"], 2)')
        p99=$(json "$report" 'round(r["latency_ms"]["p99"], 2)')
    else
        # smtp-source: -d keeps each session for many messages; -l is the
        # body size (it adds a few header lines); no per-message timing.
        "$smtp_source_bin" -d -m "$messages" -s "$connections" -l "$size" \
            -f sluice-load@localhost -t load@localhost "127.0.0.1:$port" >&2
        end=$(now)
        accepted_rate=$(python3 -c "print(round($messages / ($end - $start), 1))")
        p50=-
        p99=-
    fi
    secs=$(wait_delivered "$maildir" $((before + messages)) "$start")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$client" "$accepted_rate" \
        "$(python3 -c "print(round($messages / $secs, 1))")" "$p50" "$p99" "$load" >>"$results"
    say "$name ($client): accepted $accepted_rate/s, all delivered after $(python3 -c "print(round($secs, 2))") s"
}

clients=(sluice-load)
[ "$smtp_source" = 1 ] && clients+=(smtp-source)

# --- Exim ----------------------------------------------------------------------

exim_port=$(free_port)
mkdir -p "$work/exim/spool" "$work/exim/log" "$work/exim/mail/load"
chown -R Debian-exim:Debian-exim "$work/exim/spool" "$work/exim/log" "$work/exim/mail"
cat >"$exim_conf" <<EOF
# Benchmark configuration: local delivery into Maildir, nothing else.
primary_hostname = bench.localhost
domainlist local_domains = localhost
qualify_domain = localhost
spool_directory = $work/exim/spool
log_file_path = $work/exim/log/%slog
local_interfaces = <; 127.0.0.1
exim_user = Debian-exim
exim_group = Debian-exim
trusted_users = root
keep_environment =
# Plain SMTP only, as the load is sent.
tls_advertise_hosts =
# No reverse DNS or ident lookups of the client.
host_lookup =
rfc1413_hosts =
smtp_accept_max = $accept_max
# Its default listen backlog of 20 drops connections when many arrive at
# once (the client sees them open, the daemon never accepts them).
smtp_connect_backlog = $accept_max
# Deliver every message at once, however many a connection sends.
smtp_accept_queue_per_connection = 0
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  accept domains = +local_domains
  deny   message = relaying is not permitted

begin routers

# Exim 4.94 and later build no delivery path from the envelope (taint
# checks): a local part is accepted when mail/ has a directory of that name,
# and the directory name found is what the transport uses.
mailbox:
  driver = accept
  domains = +local_domains
  local_parts = dsearch;$work/exim/mail
  transport = maildir

begin transports

maildir:
  driver = appendfile
  directory = $work/exim/mail/\$local_part_data
  maildir_format
  create_directory
  user = Debian-exim
  group = Debian-exim
  mode = 0600
  envelope_to_add
  return_path_add
EOF
chmod 644 "$exim_conf"
grep -qxF "$exim_conf" "$trusted" 2>/dev/null || echo "$exim_conf" >>"$trusted"
chmod 644 "$trusted"

# Each run gets a fresh daemon (and, for Sluice, a fresh data directory),
# so that no run inherits another's queue, caches or warmed-up threads.
exim_pid=$work/exim/spool/exim-daemon.pid
start_exim() {
    rm -f "$exim_pid"
    # The daemon writes its pid file after giving up root: into its spool.
    "$exim_bin" -C "$exim_conf" -bd -oX "$exim_port" -oP "$exim_pid"
    for _ in $(seq 50); do [ -s "$exim_pid" ] && break; sleep 0.1; done
    [ -s "$exim_pid" ] || { echo "smtp.sh: Exim did not start:" >&2; cat "$work/exim/log/"* >&2; exit 1; }
    server_pid=$(cat "$exim_pid")
    pids+=("$server_pid")
}

sluice_runs=0
# start_sluice BIN: a fresh data directory each time; sets $sluice_port and
# $sluice_home.
start_sluice() {
    local bin=$1
    sluice_runs=$((sluice_runs + 1))
    sluice_home=$work/sluice-$sluice_runs
    mkdir -p "$sluice_home"
    SLUICE_HOME=$sluice_home "$bin" serve --listen 127.0.0.1:0 --set durability=batch \
        --set "smtp.max_connections=$accept_max" --set "smtp.max_connections_per_host=$accept_max" \
        >"$sluice_home/stdout" 2>"$sluice_home/stderr" &
    server_pid=$!
    pids+=("$server_pid")
    sluice_port=""
    for _ in $(seq 100); do
        sluice_port=$(sed -n 's/.*smtp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$sluice_home/stdout")
        [ -n "$sluice_port" ] && break
        sleep 0.1
    done
    [ -n "$sluice_port" ] || { echo "smtp.sh: sluice did not start:" >&2; cat "$sluice_home/stderr" >&2; exit 1; }
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    # Exim's daemon is not our child: wait for it to go.
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
}

say "Exim $exim_version on 127.0.0.1:$exim_port; Sluice with durability=batch${base:+, and $base as sluice-base}"

# --- the runs ------------------------------------------------------------------

# Rounds alternate the servers, so that a change in the machine's other load
# does not fall on one server only.
for round in $(seq "$rounds"); do
    for client in "${clients[@]}"; do
        say "round $round of $rounds, $client"
        start_exim
        run_load exim "$work/exim/mail/load" "$exim_port" "$client"
        stop_server
        start_sluice "$sluice_bin"
        run_load sluice "$sluice_home/mail/localhost/load" "$sluice_port" "$client"
        stop_server
        if [ -n "$base" ]; then
            start_sluice "$base"
            run_load sluice-base "$sluice_home/mail/localhost/load" "$sluice_port" "$client"
            stop_server
        fi
    done
done

# --- report --------------------------------------------------------------------

cat <<EOF

$messages messages of $size bytes over $connections connections, every one delivered into Maildir; $rounds round(s).
$(nproc) CPUs; work directory on $(df -PT "$work" | awk 'NR==2 {print $1 " (" $2 ")"}').
Exim $exim_version; Sluice $("$sluice_bin" --version 2>/dev/null | awk '{print $2}') with durability=batch.

EOF
python3 - "$results" <<'EOF'
import statistics
import sys

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
head = ("server", "client", "accepted/s", "delivered/s", "p50 ms", "p99 ms", "load")
fmt = "%-11s %-12s %11s %12s %9s %9s %6s"
print(fmt % head)
for r in rows:
    print(fmt % tuple(r))


def median(server, client, i):
    v = [float(r[i]) for r in rows if r[0] == server and r[1] == client and r[i] != "-"]
    return statistics.median(v) if v else None


print()
for client in sorted({r[1] for r in rows}):
    s = [median("sluice", client, i) for i in range(2, 6)]
    e = [median("exim", client, i) for i in range(2, 6)]
    if None in (s[0], e[0]):
        continue
    line = "median, %s: sluice/exim accepted/s %.1fx (%.0f vs %.0f), delivered/s %.1fx (%.0f vs %.0f)" % (
        client, s[0] / e[0], s[0], e[0], s[1] / e[1], s[1], e[1])
    if s[3] is not None and e[3] is not None:
        line += "; p99 to 250 %.1f ms vs %.1f ms" % (s[3], e[3])
    print(line)
    b = [median("sluice-base", client, i) for i in range(2, 6)]
    if b[1] is not None:
        print("median, %s: sluice/sluice-base delivered/s %.2fx (%.0f vs %.0f)" % (client, s[1] / b[1], s[1], b[1]))
EOF
