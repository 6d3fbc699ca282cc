"""Submits N messages over S SMTP sessions to one server, each to one
recipient user@dNNN.bench.test with NNN cycling over D domains, each with
an X-Bench-Id header, and records when the server answered 250 to the end
of data: the message's arrival. For benches/peers/outbound_many.sh.

usage: many_submit.py HOST PORT N SESSIONS DOMAINS SIZE OUTFILE
Writes OUTFILE: one "ID TIME" line per message accepted.
"""
import smtplib
import sys
import threading
import time

host, port, n, sessions, domains, size, outfile = sys.argv[1:8]
port, n, sessions, domains, size = int(port), int(n), int(sessions), int(domains), int(size)
lock = threading.Lock()
out = open(outfile, "w")
next_id = [0]
filler = ("x" * 75 + "\r\n") * max(1, size // 77)


def worker():
    s = smtplib.SMTP(host, port)
    s.ehlo("bench.client")
    while True:
        with lock:
            k = next_id[0]
            if k >= n:
                break
            next_id[0] += 1
        rcpt = f"user@d{k % domains}.bench.test"
        msg = (
            f"From: bench@client.test\r\nTo: {rcpt}\r\nSubject: many {k}\r\n"
            f"X-Bench-Id: {k}\r\n\r\n{filler}"
        )
        s.sendmail("bench@client.test", [rcpt], msg)
        t = time.time()
        with lock:
            out.write(f"{k} {t:.6f}\n")
    s.quit()


threads = [threading.Thread(target=worker) for _ in range(sessions)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out.close()
