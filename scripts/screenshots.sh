#!/usr/bin/env bash
# Renders the HTML report of `sluice stats` and the admin listener's status
# page with a headless Chromium, for the pictures in docs/img/.
#
#   scripts/screenshots.sh [-b SLUICE_BINARY] [-o DIR]
#
# Needs Debian's chromium (apt-get install chromium) and python3. Mail is
# sent to a daemon on 127.0.0.1 only; Chromium runs with networking off
# and opens files from disk.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/sluice
out=docs/img
while getopts b:o: opt; do
  case $opt in
    b) bin=$OPTARG ;;
    o) out=$OPTARG ;;
    *) sed -n 2,9p "$0"; exit 64 ;;
  esac
done
[ -x "$bin" ] || { echo "no $bin: cargo build --release first (or -b)" >&2; exit 66; }
command -v chromium >/dev/null || { echo "chromium is not installed" >&2; exit 69; }
bin=$(realpath "$bin")
mkdir -p "$out"
out=$(realpath "$out")
work=$(mktemp -d)
trap 'kill "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT

shoot() { # FILE.html OUT.png HEIGHT
  chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --hide-scrollbars --window-size=1100,"$3" --screenshot="$2" "file://$1" 2>/dev/null
  echo "wrote $2"
}

# 1. The report of two days of a synthetic relay's log.
python3 benches/gen_mainlog.py -n 20000 --seed 5 > "$work/mainlog"
"$bin" stats --tz UTC --html "$work/report.html" "$work/mainlog"
shoot "$work/report.html" "$out/stats-report.png" 2600

# 2. The status page of a daemon that has received some mail today: local
# recipients are delivered, remote ones wait (its DNS server is a closed
# port on loopback, so nothing leaves the machine).
export SLUICE_HOME=$work/home
umask 077
head -c 24 /dev/urandom | base64 > "$work/token"
umask 022
"$bin" --set 'admin.listen="127.0.0.1:0"' --set "admin.token_file=\"$work/token\"" \
  --set 'relay_from_hosts=["127.0.0.1/32"]' \
  --set 'dns.servers=["127.0.0.1:9"]' --set dns.timeout=1s --set dns.attempts=1 \
  serve --listen 127.0.0.1:0 > "$work/listening" &
daemon=$!
for _ in $(seq 100); do grep -q listening "$work/listening" 2>/dev/null && break; sleep 0.1; done
smtp=$(grep -o 'smtp=[0-9.:]*' "$work/listening" | cut -d= -f2)
admin=$(grep -o 'admin=[0-9.:]*' "$work/listening" | cut -d= -f2)
python3 - "${smtp##*:}" <<'EOF'
import smtplib, sys
port = int(sys.argv[1])
domains = ["example.net", "example.org", "mail.example.com", "customer.example"]
for i in range(60):
    with smtplib.SMTP("127.0.0.1", port) as s:
        rcpt = ["user%d@localhost" % (i % 7)]
        if i % 3 == 0:
            rcpt.append("someone%d@%s" % (i, domains[i % len(domains)]))
        try:
            s.sendmail("sender%d@example.org" % (i % 9), rcpt, "Subject: %d\r\n\r\nhello\r\n" % i)
        except smtplib.SMTPRecipientsRefused:
            pass
EOF
# Some mail waiting (queued by sendmail, routed at the next queue run),
# one message frozen by an operator.
for d in example.net example.net example.org mail.example.com; do
  printf 'Subject: later\n\nwaits\n' | "$bin" -odq -f webmaster@localhost "info@$d"
done
id=$("$bin" -bpr | awk 'NR==1 {print $3}')
"$bin" -Mf "$id" > /dev/null
sleep 3
curl -s -H "Authorization: Bearer $(cat "$work/token")" "http://$admin/" > "$work/status.html"
shoot "$work/status.html" "$out/status-page.png" 2200
