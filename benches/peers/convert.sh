#!/usr/bin/env bash
# convert2maildir against its peers on one corpus.
#
#   benches/peers/convert.sh [N] [WORKDIR]      (default: 100000 messages, /var/tmp/sluice-convert-bench)
#   ONLY="floor sluice sluice-noverify" benches/peers/convert.sh 20000
#
# Generates the corpus with gen_mbox.py (-n N --seed 1, mboxrd, ~11 KB a
# message), installs the peers from Debian (mb2md; dovecot-core for
# `doveadm import`), and runs each converter into a fresh directory on the
# same filesystem:
#
#   floor            write N files of the corpus's message sizes, then one sync
#                    (no parsing, no renames, no per-file flush: the lower bound)
#   sluice           convert2maildir, batch durability, --verify (the default)
#   sluice-noverify  convert2maildir --no-verify
#   sluice-syncfs    convert2maildir --sync syncfs
#   mb2md            Debian's mb2md (Perl)
#   doveadm          doveadm import from mbox into Maildir (Dovecot)
#   python           Python's mailbox module (mbox → Maildir)
#
# Peers that do not flush get a `sync` at the end, inside their timing, so
# every figure is "converted and on disk". The corpus is read once before
# each run, so every converter reads from the page cache. Outputs are only
# deleted at the end: ext4 is slow to create files right after many were
# deleted, which would penalise whichever run comes next.
#
# Prints, per converter: seconds, messages/s, MB/s, CPU seconds, peak RSS,
# the share of messages stored byte-exact (check_maildir.py against the
# corpus manifest), and Sluice's speed relative to each.
set -euo pipefail

N=${1:-100000}
WORK=${2:-/var/tmp/sluice-convert-bench}
ONLY=${ONLY:-"floor sluice sluice-noverify sluice-syncfs mb2md doveadm python"}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
GEN=${GEN_MBOX:-}
for g in "$ROOT/../shared/bench/gen_mbox.py" /work/shared/bench/gen_mbox.py; do
  [ -z "$GEN" ] && [ -f "$g" ] && GEN=$g
done
[ -n "$GEN" ] || { echo "gen_mbox.py not found: set GEN_MBOX" >&2; exit 64; }

mkdir -p "$WORK"
chmod 755 "$WORK"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v mb2md >/dev/null || need+=(mb2md)
command -v doveadm >/dev/null || need+=(dovecot-core)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# CONVERT2MAILDIR=path uses a binary built elsewhere.
BIN=${CONVERT2MAILDIR:-}
if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build --release -q -p sluice-tools)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/convert2maildir"
fi

CORPUS="$WORK/c$N.mbox"
MANIFEST="$WORK/c$N.manifest.tsv"
if [ ! -s "$CORPUS" ] || [ ! -s "$MANIFEST" ]; then
  python3 "$GEN" -n "$N" --seed 1 -o "$CORPUS" --manifest "$MANIFEST"
fi
chmod 644 "$CORPUS"
SIZE=$(stat -c %s "$CORPUS")
OUT="$WORK/out.$$"
mkdir -p "$OUT"
chmod 777 "$OUT"   # doveadm writes as an unprivileged user

# Dovecot for doveadm import: a static user writing into $OUT/doveadm.
DOVE_UID=$(id -u nobody 2>/dev/null || id -u)
DOVE_GID=$(id -g nobody 2>/dev/null || id -g)
cat > "$OUT/dovecot.conf" <<EOF
base_dir = $OUT/dovecot-run
state_dir = $OUT/dovecot-state
log_path = $OUT/dovecot.log
mail_location = maildir:$OUT/doveadm
passdb {
  driver = static
  args = password=x
}
userdb {
  driver = static
  args = uid=$DOVE_UID gid=$DOVE_GID home=$OUT/dovecot-home
}
first_valid_uid = 1
protocols = imap
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
EOF

declare -A SECS CPU RSS EXACT
run() {
  local name=$1 dir=$2
  shift 2
  case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
  cat "$CORPUS" > /dev/null
  sync
  echo "== $name: $*" >&2
  /usr/bin/time -f "%e %U %S %M" -o "$OUT/time.$name" sh -c '"$@" && sync' sh "$@" > "$OUT/log.$name" 2>&1 || {
    echo "$name failed:" >&2; tail -5 "$OUT/log.$name" >&2; return 0; }
  read -r e u s m < <(tail -1 "$OUT/time.$name")
  SECS[$name]=$e
  CPU[$name]=$(echo "$u + $s" | bc)
  RSS[$name]=$m
  if [ "$name" = floor ]; then
    EXACT[$name]="-"
  else
    EXACT[$name]=$(python3 "$HERE/check_maildir.py" "$MANIFEST" "$dir" | awk '{print $3}' | tr -d '()')
  fi
}

run floor "$OUT/floor" python3 "$HERE/floor.py" "$MANIFEST" "$OUT/floor" --jobs "$(nproc)"
run sluice "$OUT/sluice" "$BIN" -q "$CORPUS" "$OUT/sluice"
run sluice-noverify "$OUT/sluice-noverify" "$BIN" -q --no-verify "$CORPUS" "$OUT/sluice-noverify"
run sluice-syncfs "$OUT/sluice-syncfs" "$BIN" -q --sync syncfs "$CORPUS" "$OUT/sluice-syncfs"
run mb2md "$OUT/mb2md" mb2md -s "$CORPUS" -d "$OUT/mb2md"
case " $ONLY " in *" doveadm "*)
  # doveadm asks Dovecot's auth service for the user, so the master runs;
  # it reads a copy (Dovecot may write its UID headers into an mbox).
  mkdir -p "$OUT/dovecot-src"
  cp "$CORPUS" "$OUT/dovecot-src/inbox"
  chown -R "$DOVE_UID:$DOVE_GID" "$OUT/dovecot-src" 2>/dev/null || chmod -R a+rwX "$OUT/dovecot-src"
  dovecot -c "$OUT/dovecot.conf"
  run doveadm "$OUT/doveadm" doveadm -c "$OUT/dovecot.conf" import -u bench \
    "mbox:$OUT/dovecot-src:INBOX=$OUT/dovecot-src/inbox" "" all
  doveadm -c "$OUT/dovecot.conf" stop || true
  ;;
esac
run python "$OUT/python" python3 "$HERE/python_mailbox.py" "$CORPUS" "$OUT/python"

printf '\n%d messages, %.1f MB (gen_mbox.py -n %d --seed 1), %s cores, %s\n' \
  "$N" "$(echo "$SIZE / 1000000" | bc -l)" "$N" "$(nproc)" "$(uname -r)"
printf '%-16s %9s %10s %8s %9s %10s %9s\n' converter seconds "msgs/s" "MB/s" "CPU s" "RSS MB" exact
for name in floor sluice sluice-noverify sluice-syncfs mb2md doveadm python; do
  [ -n "${SECS[$name]:-}" ] || continue
  printf '%-16s %9.2f %10.0f %8.1f %9.2f %10.1f %9s\n' "$name" "${SECS[$name]}" \
    "$(echo "$N / ${SECS[$name]}" | bc -l)" "$(echo "$SIZE / 1000000 / ${SECS[$name]}" | bc -l)" \
    "${CPU[$name]}" "$(echo "${RSS[$name]} / 1024" | bc -l)" "${EXACT[$name]}"
done
if [ -n "${SECS[sluice]:-}" ]; then
  echo
  for name in floor mb2md doveadm python; do
    [ -n "${SECS[$name]:-}" ] || continue
    printf 'sluice (verify on) vs %-8s time ratio %.2f  (messages/s: %.2fx)\n' "$name" \
      "$(echo "${SECS[sluice]} / ${SECS[$name]}" | bc -l)" "$(echo "${SECS[$name]} / ${SECS[sluice]}" | bc -l)"
  done
fi
[ "${KEEP:-0}" = 1 ] || rm -rf "$OUT"
