#!/usr/bin/env bash
# `sluice deliver` against Dovecot's LDA: one process per message, as an
# MTA's pipe transport or a .forward calls a delivery agent.
#
#   sudo benches/peers/deliver.sh [-n MESSAGES] [-s SIZE] [-r ROUNDS]
#                                 [--work DIR] [--base SLUICE_BINARY]
#
# Defaults: -n 1000 -s 4096 -r 3. Each round delivers the same message N
# times with each agent, in turns (dovecot-lda, sluice, then --base, an
# earlier sluice binary, if given), from one shell running as nobody that
# starts the agent once per message, into a fresh Maildir of its own under
# one work directory (default: a new directory in ${TMPDIR:-/var/tmp}), so
# they share a filesystem. Both run as `nobody` (Dovecot's LDA refuses to
# deliver as root without a userdb), one process per message, with their
# default durability: Dovecot's `mail_fsync = optimized` (the file is
# synced before its rename into new/), Sluice's `durability = batch` (the
# file synced before the rename, then new/ synced: a power cut loses
# neither). Installs dovecot-core with apt-get when /usr/lib/dovecot/
# dovecot-lda is missing.
#
# Prints messages/s per agent and round, the medians, and Sluice's ratio to
# Dovecot's in each round (the machine's drift cancels out within a round).
# Checks that each Maildir ends with N messages in new/.
#
# Not run in CI.

set -euo pipefail

messages=1000
size=4096
rounds=3
work=""
base=""

usage() {
    sed -n '2,22s/^# \{0,1\}//p' "$0" >&2
    exit 64
}

while [ $# -gt 0 ]; do
    case "$1" in
        -n) messages=$2; shift 2 ;;
        -s) size=$2; shift 2 ;;
        -r) rounds=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "deliver.sh: unknown argument $1" >&2; usage ;;
    esac
done

[ "$(id -u)" = 0 ] || { echo "deliver.sh: run as root (it runs the agents as nobody)" >&2; exit 77; }
lda=/usr/lib/dovecot/dovecot-lda
if [ ! -x "$lda" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-core >/dev/null
fi
repo=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$repo" && cargo build --release -q --bin sluice)
sluice=$repo/target/release/sluice
if [ -n "$base" ] && [ ! -x "$base" ]; then
    echo "deliver.sh: --base $base is not an executable" >&2
    exit 66
fi

if [ -z "$work" ]; then
    work=$(mktemp -d "${TMPDIR:-/var/tmp}/sluice-deliver.XXXXXX")
else
    mkdir -p "$work"
fi
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
run_dir=$work/run
mkdir -p "$run_dir/home"
chown -R nobody:nogroup "$run_dir"

# The message: headers and a body of SIZE bytes in 76-character lines.
python3 - "$size" >"$work/message" <<'EOF'
import sys
size = int(sys.argv[1])
head = ("From: Alice <alice@example.org>\nTo: bob@example.org\n"
        "Subject: delivery benchmark\nMessage-ID: <bench@example.org>\n"
        "Date: Fri, 04 Dec 2026 10:00:00 +0000\n\n")
line = ("x" * 75) + "\n"
body = (line * (size // len(line) + 1))[: max(size - len(head), 0)]
sys.stdout.write(head + body)
EOF

cat >"$work/dovecot.conf" <<EOF
mail_location = maildir:$run_dir/Maildir
postmaster_address = postmaster@example.org
log_path = $run_dir/dovecot.log
ssl = no
EOF

as_nobody() {
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
        env -i HOME="$run_dir/home" USER=nobody PATH=/usr/bin:/bin "$@"
}

# times AGENT ARGS...: runs AGENT ARGS < message N times, one process each,
# from one shell running as nobody (as an MTA forks its delivery agent:
# no setpriv or env per message, which would cost more than either agent).
times() {
    as_nobody bash -c 'n=$1; msg=$2; shift 2
        for _ in $(seq "$n"); do "$@" <"$msg" || exit 1; done' _ "$messages" "$work/message" "$@"
}

# deliver NAME MAILDIR: delivers the message N times; prints messages/s.
deliver() {
    local name=$1 md=$2 start end
    start=$(date +%s.%N)
    case "$name" in
        dovecot-lda)
            times "$lda" -c "$work/dovecot.conf" -f alice@example.org \
                -a bob@example.org -o "mail_location=maildir:$md" ;;
        sluice)
            times "$sluice" deliver --maildir "$md" -f alice@example.org -a bob@example.org ;;
        sluice-base)
            times "$base" deliver --maildir "$md" -f alice@example.org -a bob@example.org ;;
    esac
    end=$(date +%s.%N)
    local got
    got=$(find "$md/new" -type f | wc -l)
    if [ "$got" != "$messages" ]; then
        echo "deliver.sh: $name left $got of $messages messages in $md/new" >&2
        exit 1
    fi
    python3 -c "print('%.1f' % ($messages / ($end - $start)))"
}

agents="dovecot-lda sluice"
[ -n "$base" ] && agents="$agents sluice-base"
results=$work/results
: >"$results"
for r in $(seq "$rounds"); do
    for a in $agents; do
        md=$run_dir/$a-$r
        rate=$(deliver "$a" "$md")
        echo "$r $a $rate" >>"$results"
        printf '== round %s %-12s %8s messages/s\n' "$r" "$a" "$rate" >&2
        rm -rf "$md"
    done
done

echo
echo "$messages messages of $(wc -c <"$work/message") bytes, one process each, as nobody; $rounds round(s)"
echo "work directory on $(df --output=source,fstype "$work" | tail -1)"
python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r, a, v in rows:
    by.setdefault(a, {})[int(r)] = float(v)
print("%-12s %12s" % ("agent", "median msg/s"))
for a, runs in by.items():
    print("%-12s %12.1f" % (a, statistics.median(runs.values())))
ratios = [by["sluice"][r] / by["dovecot-lda"][r] for r in by["sluice"]]
print("sluice / dovecot-lda by round: %s; median %.2fx" % (
    ", ".join("%.2fx" % x for x in ratios), statistics.median(ratios)))
EOF
