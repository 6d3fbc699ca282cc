#!/usr/bin/env bash
# A connection flood against the daemon: N connections that send nothing,
# spread over several 127.0.0.x source addresses, while a legitimate client
# from 127.0.0.2 connects every second. Prints the daemon's RSS growth,
# how the flood's connections were answered (220 then 421 on the command
# timeout, or 421 at once over the limits), and the legitimate client's
# time to its 220.
#
#   benches/flood.sh [-n CONNECTIONS] [--hosts H] [--timeout SECS]
#
# Defaults: -n 10000 --hosts 50 --timeout 5 (the daemon's
# smtp.command_timeout for the run). The daemon runs with
# smtp.max_connections = 2000 and max_connections_per_host = 20; this
# script raises its own RLIMIT_NOFILE (run as root for more than the hard
# limit). Not run in CI (tests/slow_clients.rs runs 1,000).

set -euo pipefail

n=10000
hosts=50
timeout=5
while [ $# -gt 0 ]; do
    case "$1" in
        -n) n=$2; shift 2 ;;
        --hosts) hosts=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        -h|--help) sed -n '2,16s/^# \{0,1\}//p' "$0" >&2; exit 64 ;;
        *) echo "flood.sh: unknown argument $1" >&2; exit 64 ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
(cd "$repo" && cargo build --release --bin sluice >&2)
work=$(mktemp -d "${TMPDIR:-/var/tmp}/sluice-flood.XXXXXX")
trap 'kill "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
SLUICE_HOME=$work "$repo/target/release/sluice" serve --listen 127.0.0.1:0 \
    --set "smtp.command_timeout=\"${timeout}s\"" \
    --set smtp.max_connections=2000 --set smtp.max_connections_per_host=20 \
    >"$work/stdout" 2>"$work/stderr" &
daemon=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's/.*smtp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/stdout")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "flood.sh: the daemon did not start" >&2; cat "$work/stderr" >&2; exit 1; }

python3 - "$port" "$n" "$hosts" "$timeout" "$daemon" <<'EOF'
import resource, selectors, socket, sys, time

port, n, hosts, timeout, pid = (int(a) for a in sys.argv[1:6])
hosts = max(1, min(hosts, 250))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = min(hard, n + 1000)
resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

def legit():
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0))
    line = s.makefile("rb").readline()
    s.close()
    return time.monotonic() - t, line[:3]

before = rss_kib()
sel = selectors.DefaultSelector()
socks, answers, peak = [], {}, before
tries = {"n": 0, "ok": 0, "worst": 0.0}

def legit_try():
    d, code = legit()
    tries["n"] += 1
    tries["ok"] += code == b"220"
    tries["worst"] = max(tries["worst"], d)

start = time.monotonic()
next_legit = start
for k in range(n):
    src = f"127.0.0.{3 + k % hosts}"
    s = socket.socket()
    s.setblocking(False)
    s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    sel.register(s, selectors.EVENT_READ, b"")
    socks.append(s)
    if time.monotonic() >= next_legit:
        legit_try()
        next_legit += 1.0
    if k % 500 == 0:
        peak = max(peak, rss_kib())
print(f"{n} connections opened in {time.monotonic() - start:.1f} s")
# Read every connection's first two lines (or its close) until the
# command timeout has passed for all.
deadline = time.monotonic() + timeout + 30
open_ = len(socks)
while open_ and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=1):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
            open_ -= 1
            continue
        for line in data.split(b"\r\n"):
            if line[:3].isdigit():
                answers.setdefault(key.fd, []).append(line[:3].decode())
    peak = max(peak, rss_kib())
    if time.monotonic() >= next_legit:
        legit_try()
        next_legit += 1.0
kinds = {}
for codes in answers.values():
    k = " then ".join(codes[:2])
    kinds[k] = kinds.get(k, 0) + 1
print("answers:", ", ".join(f"{v} x {k}" for k, v in sorted(kinds.items(), key=lambda x: -x[1])))
print(f"still open after the command timeout: {open_}")
print(f"daemon RSS: {before} KiB before, peak {peak} KiB, growth {peak - before} KiB")
print(f"legitimate client from 127.0.0.2: {tries['ok']}/{tries['n']} got 220, slowest {tries['worst'] * 1000:.0f} ms")
EOF
echo "stderr of the daemon (accept errors are logged once a second):"
grep -c "accept failed" "$work/log/paniclog" 2>/dev/null || echo 0
