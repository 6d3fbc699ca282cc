#!/usr/bin/env python3
"""Peer converter for benches/peers/convert.sh: Python's mailbox module
reads an mbox and adds each message to a Maildir (no flush).

    python_mailbox.py MBOX MAILDIR
"""
import mailbox
import sys

src = mailbox.mbox(sys.argv[1], create=False)
dst = mailbox.Maildir(sys.argv[2], create=True)
for m in src:
    dst.add(mailbox.MaildirMessage(m))
