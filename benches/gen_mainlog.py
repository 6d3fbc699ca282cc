#!/usr/bin/env python3
"""Writes a synthetic Exim-format main log to stdout (or a file), for
`sluice stats` benchmarks and tests.

    gen_mainlog.py [-n MESSAGES] [--classic] [--seed N] [--days D] [-o FILE]
                   [--senders N] [--recipients N] [--hosts N] [--open F]
                   [--sender-hosts] [--hosting]

The log has the shapes a busy relay writes: arrivals from many hosts and
senders, local deliveries (`=> user <user@domain>`), remote deliveries with
`->` for further recipients of one transaction, deferrals (`==`) later
delivered or failed, failures (`**`) followed by a bounce (`<= <>`),
rejections without a message ID, and some messages that never complete
(still on the queue when the log ends). Lines of different messages
interleave as they do in a real log. The output depends only on the
arguments, so two runs write the same bytes.

IDs are Exim 4.97's long form (23 characters, Sluice's default) unless
`--classic` asks for the 16-character form that eximstats 4.96 reads.
"""

import argparse
import calendar
import heapq
import random
import sys
import time

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n, width):
    out = []
    for _ in range(width):
        out.append(B62[n % 62])
        n //= 62
    return "".join(reversed(out))


def message_id(secs, pid, frac, classic):
    if classic:
        return "%s-%s-%s" % (base62(secs, 6), base62(pid, 6), base62(frac, 2))
    return "%s-%s-%s" % (base62(secs, 6), base62(pid, 11), base62(frac, 4))


class Stamps:
    """Formats epoch seconds as log stamps (UTC), one strftime per second."""

    def __init__(self):
        self.last = None
        self.text = ""

    def __call__(self, secs):
        if secs != self.last:
            self.last = secs
            self.text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs))
        return self.text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--messages", type=int, default=10000)
    ap.add_argument("--classic", action="store_true", help="16-character IDs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=float, default=2.0, help="time the log spans")
    ap.add_argument("--start", default="2026-11-23 00:00:00", help="first stamp (UTC)")
    ap.add_argument("-o", "--output", help="file to write (default stdout)")
    ap.add_argument("--senders", type=int, default=20000, help="distinct sending addresses")
    ap.add_argument("--hosts", type=int, default=5000, help="distinct sending hosts")
    ap.add_argument("--recipients", type=int, default=None,
                    help="distinct remote recipients, used in turn, each always at the same domain "
                         "(default: near the sender's number, at a domain drawn per message)")
    ap.add_argument("--open", type=float, default=0.02,
                    help="fraction of messages never completed")
    ap.add_argument("--hosting", action="store_true",
                    help="a hosting box rather than a relay: half the mail comes in from remote "
                         "hosts for local mailboxes (2%% of it forwarded on), half is sent by "
                         "local users and scripts to remote recipients")
    ap.add_argument("--sender-hosts", action="store_true",
                    help="each sender always sends from the same host (its domain's server), "
                         "not from a host drawn for each message")
    args = ap.parse_args()

    rnd = random.Random(args.seed)
    # The hosting profile's own draws, so that the default log stays the same.
    hosting_rnd = random.Random(args.seed + 1)
    out = open(args.output, "w") if args.output else sys.stdout
    start = calendar.timegm(time.strptime(args.start, "%Y-%m-%d %H:%M:%S"))
    n = max(args.messages, 1)
    step = args.days * 86400.0 / n
    stamp = Stamps()

    hosts = max(args.hosts, 1)
    senders = max(args.senders, 1)
    # The other fates share what the never-completed ones leave, in the
    # default proportions (the default --open gives the default log).
    settled = min(max(1.0 - args.open, 0.0), 1.0)
    scale = 0.98 / settled if settled > 0 else 0.0
    next_rcpt = 0

    rcpt_domains = 300

    def remote_rcpt(s, k, d):
        """A remote recipient and its domain: from the pool when there is
        one (a recipient is then always at the same domain, so the pool's
        size is the number of distinct recipients), else near the sender's
        number at the message's domain `d`."""
        nonlocal next_rcpt
        if args.recipients is None:
            return s + k, d
        r = next_rcpt
        next_rcpt = (next_rcpt + 1) % args.recipients
        return r, r % rcpt_domains
    locals_ = 2000

    # Lines waiting for their time: (secs, seq, text).
    pending = []
    seq = 0
    buf = []

    def later(secs, text):
        nonlocal seq
        seq += 1
        heapq.heappush(pending, (secs, seq, text))

    def flush_until(secs):
        while pending and pending[0][0] <= secs:
            s, _, text = heapq.heappop(pending)
            buf.append("%s %s\n" % (stamp(s), text))
        if len(buf) > 4096:
            out.write("".join(buf))
            buf.clear()

    pid = 1000
    for i in range(n):
        now = int(start + i * step)
        flush_until(now)
        if i % 97 == 0:
            pid += 1
        mid = message_id(now, pid, i % 3844 if args.classic else i % 14776336, args.classic)
        h = rnd.randrange(hosts)
        s = rnd.randrange(senders)
        if args.sender_hosts:
            h = s % hosts
        size = rnd.randrange(300, 60000)
        from_host = rnd.random() < 0.85
        if args.hosting:
            from_host = hosting_rnd.random() < 0.5
        if from_host:
            origin = "H=(mx%d.sender%d.example) [10.%d.%d.%d] P=esmtp" % (
                h, h % 400, h % 250, (h // 250) % 250, h % 7 + 1)
        else:
            origin = "U=user%d P=local" % (s % 300)
        sender = "s%d@sender%d.example" % (s, s % 700)
        buf.append("%s %s <= %s %s S=%d id=%d.%d@sender.example\n" % (
            stamp(now), mid, sender, origin, size, i, s))

        if i % 41 == 0:
            buf.append("%s H=(bad%d.example) [192.0.2.%d] F=<x%d@spam.example> rejected RCPT <nobody%d@local.example>: relay not permitted\n" % (
                stamp(now), h % 50, h % 200 + 1, s, i % 10))
        if i % 173 == 0:
            buf.append("%s H=(c%d.example) [198.51.100.%d] F=<y%d@ok.example> temporarily rejected RCPT <full%d@local.example>: Mailbox full, try again later\n" % (
                stamp(now), h % 30, h % 100 + 1, s, i % 7))

        t = now + rnd.randrange(0, 3)
        fate = rnd.random()
        fate = fate * scale if fate < settled else 1.0
        if args.hosting and fate < 1.0:
            if from_host:
                # Inbound: local mailboxes, a few forwarded on.
                fate = 0.6 if hosting_rnd.random() < 0.02 else 0.0
            elif fate < 0.5:
                # Outbound: what would have been local goes out.
                fate = 0.5 + fate * 0.7
        nrcpt = 1 + (i % 4 == 0) + (i % 16 == 0)
        if fate < 0.5:
            # Local deliveries.
            for k in range(nrcpt):
                u = (s + k * 7) % locals_
                later(t, "%s => u%d <u%d@local%d.example> R=virtual_mailbox T=maildir_delivery" % (mid, u, u, u % 5))
            later(t, "%s Completed" % mid)
        elif fate < 0.85:
            # One remote transaction, further recipients with ->.
            d = rnd.randrange(rcpt_domains)
            host = "H=mx.dest%d.example [203.0.113.%d]" % (d, d % 250 + 1)
            for k in range(nrcpt):
                flag = "=>" if k == 0 else "->"
                later(t, "%s %s r%d@dest%d.example R=dnslookup T=remote_smtp %s C=\"250 2.0.0 OK\"" % (
                    (mid, flag) + remote_rcpt(s, k, d) + (host,)))
            later(t, "%s Completed" % mid)
        elif fate < 0.95:
            # Deferred, then delivered minutes to hours later.
            r, d = remote_rcpt(s, 0, rnd.randrange(rcpt_domains))
            later(t, "%s == r%d@dest%d.example R=dnslookup T=remote_smtp defer (111): Connection refused" % (mid, r, d))
            t2 = t + rnd.choice([200, 700, 1500, 4000, 15000, 30000])
            later(t2, "%s => r%d@dest%d.example R=dnslookup T=remote_smtp H=mx.dest%d.example [203.0.113.%d] C=\"250 OK\"" % (
                mid, r, d, d, d % 250 + 1))
            later(t2, "%s Completed" % mid)
        elif fate < 0.98:
            # Failed, with a bounce delivered to the sender's host.
            r, d = remote_rcpt(s, 0, rnd.randrange(rcpt_domains))
            later(t, "%s ** r%d@dest%d.example R=dnslookup T=remote_smtp H=mx.dest%d.example [203.0.113.%d]: SMTP error from remote mail server after RCPT TO:<r%d@dest%d.example>: 550 5.1.1 user unknown" % (
                mid, r, d, d, d % 250 + 1, r, d))
            # The bounce is made by another process (pid): its ID can be no
            # other message's, as in a real log.
            bid = message_id(t, pid + 1000000, i % 3844 if args.classic else i % 14776336, args.classic)
            later(t, "%s <= <> R=%s U=mail P=local S=%d" % (bid, mid, size // 10 + 1500))
            later(t, "%s Completed" % mid)
            later(t + 1, "%s => %s R=dnslookup T=remote_smtp H=mx%d.sender%d.example [10.1.1.%d] C=\"250 OK\"" % (
                bid, sender, h, h % 400, h % 7 + 1))
            later(t + 1, "%s Completed" % bid)
        else:
            # Never completed: deferred until the log ends.
            later(t, "%s == r%d@slow.example R=dnslookup T=remote_smtp defer (-44) H=mx.slow.example [203.0.113.250]: SMTP error from remote mail server after RCPT TO:<r%d@slow.example>: 451 4.7.1 try again later" % (mid, s, s))

    flush_until(float("inf"))
    out.write("".join(buf))
    out.flush()


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(0)
