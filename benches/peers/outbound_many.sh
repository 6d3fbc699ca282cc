#!/usr/bin/env bash
# Many destinations: time from arrival to the receiving host's 250.
#
# usage: benches/peers/outbound_many.sh [-n MESSAGES] [-s SESSIONS]
#            [-d DOMAINS] [-m MX_HOSTS] [-l BYTES] [--work DIR] [--keep] [--json]
#
# SESSIONS (default 16) SMTP sessions submit MESSAGES (default 5000)
# messages of about BYTES (default 4096) to Sluice on 127.0.0.1, each to one
# recipient in one of DOMAINS (default 1000) domains. A manualroute router
# sends domain dK to MX host 127.0.0.(10 + K % MX_HOSTS) (default 50 hosts),
# all served by one asyncio sink (many_sink.py) on the same port.
#
# Arrival: when the submitting client got the 250 after its final dot.
# Delivery: when the sink sent its 250 after the relayed final dot. Reported:
# p50/p90/p99/max of the difference, messages/s from the first submission
# to the last message at the sink, and the connections the sink saw (total,
# and the most to one host). A run counts only if the sink got exactly
# MESSAGES messages. Loopback only.
set -euo pipefail

n=5000 sessions=16 domains=1000 mx=50 size=4096 work="" keep=0 json=0
while [ $# -gt 0 ]; do
    case "$1" in
        -n) n=$2; shift 2 ;;
        -s) sessions=$2; shift 2 ;;
        -d) domains=$2; shift 2 ;;
        -m) mx=$2; shift 2 ;;
        -l) size=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --json) json=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "outbound_many.sh: unknown option $1" >&2; exit 64 ;;
    esac
done
[ "$mx" -ge 1 ] && [ "$mx" -le 200 ] || { echo "outbound_many.sh: -m must be 1..200" >&2; exit 64; }
say() { echo "outbound_many.sh: $*" >&2; }
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${work:-$(mktemp -d /tmp/outbound-many.XXXXXX)}
mkdir -p "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${SLUICE:-}" ]; then
    say "building sluice (release)"
    (cd "$repo" && cargo build --release --bin sluice >&2)
    SLUICE=$repo/target/release/sluice
fi
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }

sink_port=$(free_port 127.0.0.10)
hosts=()
for i in $(seq 0 $((mx - 1))); do hosts+=("127.0.0.$((10 + i))"); done
: > "$work/got"; : > "$work/conns"
python3 "$here/many_sink.py" "$sink_port" "$work" "${hosts[@]}" > "$work/sink.out" 2>&1 &
pids+=($!)

# The routes: one line per domain, each to its host.
{
    echo 'primary_hostname = "relay.bench.test"'
    echo 'local_domains = ["relay.bench.test"]'
    echo 'relay_from_hosts = ["127.0.0.1"]'
    echo 'durability = "batch"'
    echo '[[router]]'
    echo 'name = "routes"'
    echo 'driver = "manualroute"'
    echo 'domains = ["!+local_domains"]'
    echo 'ignore_target_hosts = []'
    echo 'transport = "remote_smtp"'
    echo 'route_list = ['
    for k in $(seq 0 $((domains - 1))); do
        echo "  \"d$k.bench.test 127.0.0.$((10 + k % mx))::$sink_port\","
    done
    echo ']'
    echo '[[transport]]'
    echo 'name = "remote_smtp"'
    echo 'driver = "smtp"'
} > "$work/sluice.toml"
mkdir -p "$work/home"
port=$(free_port 127.0.0.1)
SLUICE_HOME=$work/home "$SLUICE" --config "$work/sluice.toml" serve --listen 127.0.0.1:"$port" > "$work/serve.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do grep -q listening "$work/sink.out" && break; sleep 0.1; done

say "$n messages to $domains domains over $mx MX hosts, $sessions sessions"
t0=$(date +%s.%N)
python3 "$here/many_submit.py" 127.0.0.1 "$port" "$n" "$sessions" "$domains" "$size" "$work/sent"
deadline=$(( $(date +%s) + 600 ))
while [ "$(wc -l < "$work/got")" -lt "$n" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
sleep 3   # idle connections close (Sluice holds one 2 s for more)

python3 - "$work" "$n" "$t0" "$json" <<'PY'
import json, sys
work, n, t0, as_json = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
sent = dict(l.split() for l in open(f"{work}/sent"))
got = [l.split() for l in open(f"{work}/got")]
lat = sorted((float(t) - float(sent[i])) * 1000 for i, t, _ in got if i in sent)
last = max(float(t) for _, t, _ in got) if got else t0
conns = [l.strip() for l in open(f"{work}/conns")]
per = {}
for c in conns:
    per[c] = per.get(c, 0) + 1
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
r = {
    "messages": n, "received": len(got), "counts": len(got) == n and len(lat) == n,
    "rate": round(len(got) / (last - t0), 1) if got else 0,
    "p50_ms": round(pct(0.50), 1), "p90_ms": round(pct(0.90), 1),
    "p99_ms": round(pct(0.99), 1), "max_ms": round(lat[-1], 1) if lat else None,
    "connections": len(conns), "most_to_one_host": max(per.values()) if per else 0,
    "hosts": len(per),
}
if as_json:
    print(json.dumps(r))
else:
    print(f"received {r['received']}/{n}{'' if r['counts'] else '  (does not count)'}")
    print(f"rate {r['rate']} msg/s (first submission to last at the sink)")
    print(f"arrival to the sink's 250: p50 {r['p50_ms']} ms, p90 {r['p90_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms")
    print(f"connections {r['connections']} to {r['hosts']} hosts, at most {r['most_to_one_host']} to one")
PY
