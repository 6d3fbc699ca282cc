#!/usr/bin/env bash
# Relay throughput: Sluice against Exim 4.96, side by side.
#
# usage: benches/peers/outbound.sh [-n MESSAGES] [-s SESSIONS] [-l BYTES]
#                                  [-r ROUNDS] [--work DIR] [--keep] [--json]
#
# Postfix's smtp-source submits MESSAGES (default 10000) messages of BYTES
# (default 4096) over SESSIONS (default 16) connections to the MTA under test
# on 127.0.0.1, which relays them through a manualroute router to Postfix's
# smtp-sink on 127.0.0.9. The MTAs alternate (A B C A B C ...) for ROUNDS
# rounds (default 2):
#
#   sluice        durability = "batch", max_connections_per_destination = 10
#   exim-now      Exim 4.96, smtp_accept_queue_per_connection = 0: a delivery
#                 process and a connection per message
#   exim-queue    Exim 4.96, queue_only with a queue runner every 5 s
#                 (-qq5s), connection_max_messages 500: connections reused
#
# Rate: messages from the first byte submitted to the last message at the
# sink. Connections: sessions counted by smtp-sink itself (-c; it counts a
# session when it ends, so the count is read once the MTA's idle connections
# have closed). A round counts only if the sink got exactly MESSAGES
# messages.
#
# Needs root (Exim takes a -C configuration only from root), exim4 (it is
# installed with apt-get when missing) and Postfix's smtp-source and
# smtp-sink, taken from the postfix package with apt-get download and
# dpkg -x into /opt/sluice-peers/postfix (not installed: it conflicts with
# exim4). SLUICE=path uses a sluice binary built elsewhere.
set -euo pipefail

n=10000 sessions=16 size=4096 rounds=2 work="" keep=0 json=0
while [ $# -gt 0 ]; do
    case "$1" in
        -n) n=$2; shift 2 ;;
        -s) sessions=$2; shift 2 ;;
        -l) size=$2; shift 2 ;;
        -r) rounds=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --json) json=1; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "outbound.sh: unknown option $1" >&2; exit 64 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "outbound.sh: run as root (Exim's -C)" >&2; exit 77; }
say() { echo "outbound.sh: $*" >&2; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${work:-$(mktemp -d /tmp/outbound.XXXXXX)}
mkdir -p "$work"
[ "$keep" = 1 ] || trap 'pkill -f "$work/" 2>/dev/null || true; rm -rf "$work"' EXIT

command -v exim4 >/dev/null || { say "installing exim4-daemon-light"; DEBIAN_FRONTEND=noninteractive apt-get install -y exim4-daemon-light >&2; }
peers=/opt/sluice-peers
if [ ! -x $peers/postfix/usr/sbin/smtp-sink ]; then
    say "fetching Postfix's smtp-source and smtp-sink"
    mkdir -p $peers && (cd $peers && apt-get download postfix >&2 && dpkg -x postfix_*.deb postfix)
fi
export LD_LIBRARY_PATH=$peers/postfix/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
source_bin=$peers/postfix/usr/sbin/smtp-source
sink_bin=$peers/postfix/usr/sbin/smtp-sink

if [ -z "${SLUICE:-}" ]; then
    say "building sluice (release)"
    (cd "$repo" && cargo build --release --bin sluice >&2)
    SLUICE=$repo/target/release/sluice
fi

free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }

# The sink: its last "sess=N quit=N mesg=N" counter line.
sink_counts() { tr '\r' '\n' < "$1" | grep '^sess=' | tail -1; }
sink_mesg() { sink_counts "$1" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p'; }
sink_sess() { sink_counts "$1" | sed -n 's/^sess=\([0-9]*\).*/\1/p'; }

start_sink() { # dir port
    "$sink_bin" -u nobody -c 127.0.0.9:"$2" 1024 > "$1/sink.out" 2>&1 &
    echo $! > "$1/sink.pid"
    sleep 0.3
}

start_sluice() { # dir port sinkport
    local d=$1
    mkdir -p "$d/home"
    cat > "$d/sluice.toml" <<EOF
primary_hostname = "relay.bench.test"
local_domains = ["relay.bench.test"]
relay_from_hosts = ["127.0.0.1"]
durability = "batch"

[[router]]
name = "smarthost"
driver = "manualroute"
domains = ["!+local_domains"]
route_list = ["* 127.0.0.9::$3"]
transport = "remote_smtp"

[[transport]]
name = "remote_smtp"
driver = "smtp"
EOF
    SLUICE_HOME=$d/home "$SLUICE" --config "$d/sluice.toml" serve --listen 127.0.0.1:"$2" > "$d/serve.out" 2>&1 &
    echo $! > "$d/mta.pid"
}

start_exim() { # dir port sinkport mode
    local d=$1
    mkdir -p "$d/spool" "$d/log"
    local extra=""
    if [ "$4" = now ]; then extra="smtp_accept_queue_per_connection = 0"; else extra="queue_only = true"; fi
    cat > "$d/exim.conf" <<EOF
primary_hostname = relay.bench.test
domainlist local_domains = relay.bench.test
hostlist relay_hosts = 127.0.0.1
spool_directory = $d/spool
log_file_path = $d/log/%slog
pid_file_path = $d/exim.pid
local_interfaces = 127.0.0.1
host_lookup =
rfc1413_hosts =
never_users =
keep_environment =
tls_advertise_hosts =
smtp_accept_max = 64
$extra
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept hosts = +relay_hosts
  deny
begin routers
smarthost:
  driver = manualroute
  domains = ! +local_domains
  route_list = * 127.0.0.9::$3
  transport = remote_smtp
  self = send
begin transports
remote_smtp:
  driver = smtp
begin retry
* * F,1h,1m
EOF
    chown -R Debian-exim:Debian-exim "$d/spool" "$d/log"
    chown root:root "$d/exim.conf"; chmod 644 "$d/exim.conf"
    if [ "$4" = now ]; then
        exim4 -C "$d/exim.conf" -bdf -oX "$2" -oP "$d/exim.pid" > /dev/null 2>&1 &
    else
        exim4 -C "$d/exim.conf" -bdf -qq5s -oX "$2" -oP "$d/exim.pid" > /dev/null 2>&1 &
    fi
    echo $! > "$d/mta.pid"
}

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

results=()
run_one() { # mta round
    local mta=$1 d=$work/$1-$2
    rm -rf "$d"; mkdir -p "$d"
    local sp mp; sp=$(free_port 127.0.0.9); mp=$(free_port 127.0.0.1)
    start_sink "$d" "$sp"
    case $mta in
        sluice) start_sluice "$d" "$mp" "$sp" ;;
        exim-now) start_exim "$d" "$mp" "$sp" now ;;
        exim-queue) start_exim "$d" "$mp" "$sp" queue ;;
    esac
    wait_port "$mp" || { say "$mta did not start"; return 1; }
    local load; load=$(cut -d' ' -f1 /proc/loadavg)
    local t0 t1; t0=$(date +%s.%N)
    "$source_bin" -s "$sessions" -m "$n" -l "$size" -f bench@client.test -t user@dest.bench.test 127.0.0.1:"$mp" > "$d/source.out" 2>&1
    local deadline=$(( $(date +%s) + 900 ))
    while [ "$(sink_mesg "$d/sink.out")" != "$n" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
    t1=$(date +%s.%N)
    # smtp-sink counts a session when it ends: let idle connections close
    # (Sluice holds one 2 s for more) before reading the count.
    local prev=-1 sess=0
    for _ in $(seq 40); do
        sess=$(sink_sess "$d/sink.out"); sess=${sess:-0}
        [ "$sess" = "$prev" ] && [ "$sess" != 0 ] && break
        prev=$sess; sleep 0.5
    done
    local got; got=$(sink_mesg "$d/sink.out")
    kill "$(cat "$d/mta.pid")" 2>/dev/null || true
    kill "$(cat "$d/sink.pid")" 2>/dev/null || true
    sleep 0.5
    local secs rate ok=yes
    secs=$(python3 -c "print(f'{$t1-$t0:.2f}')")
    rate=$(python3 -c "print(f'{$n/($t1-$t0):.0f}')")
    [ "$got" = "$n" ] || ok=no
    say "round $2 $mta: $got/$n at the sink in ${secs}s = $rate msg/s, $sess connections (load $load)"
    results+=("$mta $2 $rate $sess $got $ok $load")
}

for r in $(seq "$rounds"); do
    for mta in sluice exim-now exim-queue; do
        run_one "$mta" "$r"
    done
done

echo
printf '%-11s %5s %10s %12s %8s %6s\n' MTA round msg/s connections received load
for line in "${results[@]}"; do
    # shellcheck disable=SC2086
    set -- $line
    printf '%-11s %5s %10s %12s %8s %6s%s\n' "$1" "$2" "$3" "$4" "$5" "$7" "$([ "$6" = yes ] || echo '  (does not count)')"
done
python3 - "${results[@]}" <<'EOF'
import sys, statistics
rows = [l.split() for l in sys.argv[1:]]
med = {}
for mta in ("sluice", "exim-now", "exim-queue"):
    rates = [int(r[2]) for r in rows if r[0] == mta and r[5] == "yes"]
    if rates:
        med[mta] = statistics.median(rates)
if "sluice" in med:
    for other in ("exim-now", "exim-queue"):
        if other in med and med[other] > 0:
            print(f"sluice / {other}: {med['sluice'] / med[other]:.1f}x (medians of counted rounds)")
EOF
if [ "$json" = 1 ]; then
    python3 -c 'import json,sys; print(json.dumps([dict(zip(["mta","round","rate","connections","received","counts","load"], l.split())) for l in sys.argv[1:]]))' "${results[@]}"
fi
