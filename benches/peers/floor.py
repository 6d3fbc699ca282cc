#!/usr/bin/env python3
"""The floor for an mbox -> Maildir conversion: write as many files of the
same sizes as the messages of a gen_mbox.py corpus (sizes from its manifest),
into one directory, then sync once. No parsing, no renames, no per-file sync:
nothing a converter can do is cheaper and still leaves the data on disk.

    floor.py MANIFEST.tsv OUTDIR [--jobs N]
"""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main():
    man, out = sys.argv[1], sys.argv[2]
    jobs = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--jobs" else 1
    sizes = [int(l.split("\t")[6]) for l in open(man).read().splitlines()[1:]]
    os.makedirs(out)
    blob = os.urandom(max(sizes) if sizes else 0)
    t0 = time.monotonic()

    def write(part):
        for i in part:
            fd = os.open(os.path.join(out, "%08d" % i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, blob[: sizes[i]])
            os.close(fd)

    parts = [range(k, len(sizes), jobs) for k in range(jobs)]
    with ThreadPoolExecutor(jobs) as ex:
        list(ex.map(write, parts))
    os.sync()
    dt = time.monotonic() - t0
    print("floor: %d files, %d bytes, %.2f s, %.0f files/s, %.1f MB/s"
          % (len(sizes), sum(sizes), dt, len(sizes) / dt, sum(sizes) / dt / 1e6))


if __name__ == "__main__":
    main()
