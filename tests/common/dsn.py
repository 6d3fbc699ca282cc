"""Reads a delivery status notification with Python's email package (an
independent reader) and prints what it found as JSON, with the things that
change from run to run tokenised: message IDs (<ID1>, <ID2>... in order of
appearance), dates (<DATE>), Sluice's version.

usage: dsn.py FILE
"""
import email
import email.policy
import json
import re
import sys

ID = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}\b")
DATE = re.compile(r"[A-Z][a-z]{2}, [ 0-9]?\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}( \([A-Z]+\))?")
VERSION = re.compile(r"Sluice \d+\.\d+\.\d+")
AGE = re.compile(r"\b\d+ (seconds|minutes|hours)\b")
ids = {}


def tok(s):
    s = str(s)
    def one(m):
        return ids.setdefault(m.group(0), "<ID%d>" % (len(ids) + 1))
    s = ID.sub(one, s)
    s = DATE.sub("<DATE>", s)
    s = VERSION.sub("Sluice <VERSION>", s)
    s = AGE.sub("<AGE>", s)
    return s


def headers(m):
    return [[k, tok(" ".join(str(v).split()))] for k, v in m.items()]


with open(sys.argv[1], "rb") as f:
    msg = email.message_from_binary_file(f, policy=email.policy.default)

out = {
    "headers": headers(msg),
    "content_type": msg.get_content_type(),
    "report_type": msg.get_param("report-type"),
    "parts": [],
}
for part in msg.iter_parts():
    ct = part.get_content_type()
    p = {"type": ct}
    if ct == "text/plain":
        p["text"] = tok(part.get_content()).splitlines()
    elif ct in ("message/delivery-status", "message/global-delivery-status"):
        p["blocks"] = [headers(b) for b in part.get_payload()]
    elif ct in ("message/rfc822", "message/global"):
        inner = part.get_payload()[0]
        p["headers"] = headers(inner)
        p["body"] = tok(inner.get_payload()).splitlines()
    else:
        p["text"] = tok(part.get_payload()).splitlines()
    out["parts"].append(p)
print(json.dumps(out, indent=1, sort_keys=True))
