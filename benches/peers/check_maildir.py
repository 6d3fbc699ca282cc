#!/usr/bin/env python3
"""Share of messages a converter stored byte-exact, against the manifest
gen_mbox.py writes (one line per message: idx, message_id, body_sha1, ...).

    check_maildir.py MANIFEST.tsv MAILDIR

A message counts as exact when a file in MAILDIR/new or MAILDIR/cur has its
Message-ID and a body (everything after the first empty line) whose SHA-1 is
the manifest's: the original body, unquoted. Prints "exact N/M (P%)".
"""
import hashlib
import os
import re
import sys

MSGID = re.compile(rb"^Message-ID:\s*(<[^>]*>)", re.M | re.I)


def main():
    manifest, md = sys.argv[1], sys.argv[2]
    want = {}
    for line in open(manifest).read().splitlines()[1:]:
        f = line.split("\t")
        want[f[1]] = f[2]
    exact = 0
    seen = set()
    for sub in ("new", "cur"):
        d = os.path.join(md, sub)
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            data = open(os.path.join(d, name), "rb").read()
            head, _, body = data.partition(b"\n\n")
            m = MSGID.search(head)
            if not m:
                continue
            mid = m.group(1).decode()
            if mid in seen:
                continue  # a duplicate counts once
            if want.get(mid) == hashlib.sha1(body).hexdigest():
                exact += 1
                seen.add(mid)
    total = len(want)
    print("exact %d/%d (%.2f%%)" % (exact, total, 100.0 * exact / max(1, total)))


if __name__ == "__main__":
    main()
