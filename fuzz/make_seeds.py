#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from the repository's
own test material: the SMTP transcripts, the log fixtures, the spool fixture,
the parser tests' tables and the embedded default configuration.

Run from the repository root: python3 fuzz/make_seeds.py. It replaces
fuzz/corpus/ entirely; fuzz/regressions/ (inputs that once failed) is never
touched. Each seed is named after what it came from, so a failing replay
names its source.
"""

import glob
import os
import re
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
MAX_SEED = 64 * 1024


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < MAX_SEED, (target, name, len(data))
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def unescape(text):
    """A transcript's `R:` escapes: \\r \\n \\t \\\\ \\xHH."""
    out = bytearray()
    i = 0
    b = text.encode()
    while i < len(b):
        if b[i] == 0x5C and i + 1 < len(b):
            c = chr(b[i + 1])
            if c in "rnt\\":
                out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}[c]
                i += 2
                continue
            if c == "x":
                out.append(int(b[i + 2 : i + 4], 16))
                i += 4
                continue
        out.append(b[i])
        i += 1
    return bytes(out)


# A Rust string literal's contents, escapes included.
RUST_STRING = r'"((?:[^"\\\n]|\\.)*)"'


def rust_string(s):
    """The value of a Rust string literal's contents (the escapes the test
    tables use)."""
    s = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda m: chr(int(m.group(1), 16)), s)
    s = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s)
    names = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: names.get(m.group(1), m.group(0)), s)


def transcripts():
    """smtp_server: what each transcript's client sends; smtp_client: what
    its server says back (the patterns' `*` filled in)."""
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/smtp_transcripts/*.txt"))):
        name = os.path.splitext(os.path.basename(path))[0]
        client, server = b"", b""
        options = {}
        for line in open(path, encoding="utf-8").read().splitlines():
            if line.startswith("O: "):
                key, _, value = line[3:].partition(" ")
                options[key] = value
            elif line.startswith("C:"):
                client += line[3:].encode() + b"\r\n"
            elif line.startswith("R: "):
                client += unescape(line[3:])
            elif line.startswith("S: "):
                server += line[3:].replace("*", "mx.test").encode() + b"\r\n"
        lmtp = options.get("mode") == "lmtp"
        tls = options.get("tls", "yes") == "yes"
        tiny = any(k in options for k in ("message_size_limit", "max_recipients", "max_errors"))
        # smtp::fuzz::exercise's setup octets: flags, read size - 1, policy.
        flags = (1 if lmtp else 0) | (2 if tls else 0) | (4 if tiny else 0)
        write("smtp_server", name, bytes([flags, 63, 0]) + client)
        # One octet a read: every reply waits for its command.
        write("smtp_server", name + "-bytewise", bytes([flags, 0, 5]) + client)
        # smtp::fuzz::exercise_client's setup octets: flags, read size - 1.
        write("smtp_client", name, bytes([1 if lmtp else 0, 0]) + server)


def client_dialogs():
    """smtp_client: replies that take the client through its extensions."""
    ehlo_all = (
        b"250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-SIZE 100000\r\n250-STARTTLS\r\n"
        b"250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 AUTH PLAIN LOGIN\r\n"
    )
    ok = b"250 2.0.0 ok\r\n"
    txn = ok * 4 + b"354 go\r\n" + b"250 2.0.0 queued as X\r\n"
    dialogs = {
        "plain": b"220 mx ESMTP\r\n250-mx\r\n250 PIPELINING\r\n" + txn + txn + b"221 bye\r\n",
        "extensions": b"220 mx ESMTP\r\n" + ehlo_all + b"235 2.7.0 ok\r\n" + txn + txn + b"221 bye\r\n",
        "starttls": b"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n" + ehlo_all + txn + b"221 bye\r\n",
        "refusals": b"220 mx\r\n250 mx\r\n250 ok\r\n550 5.1.1 no\r\n452 4.5.3 too many\r\n250 ok\r\n"
        b"354 go\r\n451 4.3.0 later\r\n421 4.3.2 bye\r\n",
        "greeting-refused": b"554 5.7.1 go away\r\n",
        "auth-login": b"220 mx\r\n" + ehlo_all + b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 ok\r\n" + txn,
        "lmtp": b"220 mx LMTP\r\n250-mx\r\n250 PIPELINING\r\n" + ok * 4 + b"354 go\r\n" + ok + b"550 5.1.1 no\r\n" + ok,
        "multiline-garbage": b"220-mx\r\n220 mx\r\n250-a\r\n250-b\r\n25\r\n250 c\n\xff\r\n",
    }
    for name, replies in dialogs.items():
        flags = 1 if name == "lmtp" else (8 | 2 if "auth" in name or name == "extensions" else 4)
        write("smtp_client", name, bytes([flags, 0]) + replies)


def addresses():
    """address: the paths in the address parser's test table."""
    text = read("smtp/src/address.rs").decode()
    paths = sorted({rust_string(s) for s in re.findall(RUST_STRING, text) if s.startswith("<")})
    for i, p in enumerate(paths):
        write("address", f"table-{i:02}", bytes([i & 1]) + p.encode())
    write("address", "long-local", b"\x01<" + b"a" * 64 + b"@example.com>")
    write("address", "literal-v6", b"\x01<a@[IPv6:2001:db8::1]>")
    write("address", "source-route", b"\x00<@r1.example,@r2.example:a@b.example> SIZE=1")


def params():
    """esmtp_params: the parameter lists in the parser's test tables."""
    text = read("smtp/src/params.rs").decode()
    values = sorted({rust_string(s)[1:] for s in re.findall(RUST_STRING, text) if s.startswith(" ")})
    for i, v in enumerate(values):
        rcpt = any(k in v.upper() for k in ("NOTIFY", "ORCPT"))
        # Bit 0 RCPT, bit 1 after EHLO, bit 2 DSN offered.
        write("esmtp_params", f"table-{i:02}", bytes([(1 if rcpt else 0) | 2 | 4]) + b" " + v.encode())


def mboxes():
    """mbox_reader: one mbox of each variant and the oddities detection
    reports (hand-written: the tests build theirs in code)."""
    d = "Mon Jan  1 00:00:00 2024"
    seeds = {
        "mboxrd": f"From a@x {d}\nSubject: one\n\n>From quoted\n>>From twice\n\nFrom b@x {d}\n\nbody\n",
        "mboxo": f"From a@x {d}\nSubject: one\n\n>From quoted\nFrom not a separator\n\nFrom b@x {d}\n\nx\n",
        "mboxcl": f"From a@x {d}\nContent-Length: 13\n\n>From quoted\n\nFrom b@x {d}\nContent-Length: 3\n\nhi\n",
        "mboxcl2": f"From a@x {d}\nContent-Length: 11\n\nFrom inside\n\nFrom b@x {d}\nContent-Length: 0\n\n",
        "crlf": f"From a@x {d}\r\nSubject: crlf\r\n\r\nbody\r\n\r\nFrom b@x {d}\r\n\r\nx\r\n",
        "cl-mismatch": f"From a@x {d}\nContent-Length: 99\n\nshort\n\nFrom b@x {d}\n\nx\n",
        "cl-partial": f"From a@x {d}\nContent-Length: 3\n\nhi\n\nFrom b@x {d}\n\nno header\n",
        "no-blank": f"From a@x {d}\n\nline\nFrom b@x {d}\n\nx\n",
        "bad-date": f"From a@x {d}\n\nbody\n\nFrom b@x not a date\n\nx\n",
        "zone": "From a@x Mon Jan  1 00:00:00 +0100 2024\n\nx\n\nFrom b@x Mon Jan 1 00:00 2024\n\ny\n",
        "empty": "",
        "not-mbox": "Subject: no From_ line\n\nbody\n",
    }
    for name, text in seeds.items():
        write("mbox_reader", name, text)


def spool_headers():
    """spool_header: the -H files of the spool fixture, the layout the
    header_file tests pin, and an Exim-written form."""
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/spool-bd5f7b2/spool/input/*/*-H"))):
        write("spool_header", "fixture-" + os.path.basename(path), read(path))
    text = read("spool/src/header_file.rs").decode()
    m = re.search(r'let want = "\\\n(.*?)";', text, re.S)
    if m:
        write("spool_header", "exim-layout", m.group(1).replace("\\t", "\t"))
    write(
        "spool_header",
        "exim-written",
        "1tixMn-00000000C5j-1wRa-H\nexim 93 93\n<>\n1739545953 1\n-received_time_usec .000001\n"
        "-ident exim\n-received_protocol local\n-body_linecount 0\n-max_received_linelength 0\n"
        "--deliver_firsttime\n-dsn_ret 2\n-dsn_envid a+2Bb\n-frozen 1739545999\n"
        "YY a@x\nNN b@x\nNN c@x\n3\na@x\nb@x 4,0#1\nc@x rfc822;c@x 9,7  0,-1#3\n\n"
        "018T To: a@x, b@x\n006  X:\n\t1\n",
    )


def logs():
    """log_line: the log fixtures, a few lines a seed."""
    files = [
        "tests/fixtures/exim-4.96/mainlog",
        "tests/fixtures/exim-4.96/mainlog-selectors",
        "tests/fixtures/exim-4.96/rejectlog",
        "tests/fixtures/exim-4.96/rejectlog-selectors",
        "tests/fixtures/exim-4.96/paniclog",
        "tests/fixtures/exim-4.96/outbound/mainlog",
        "tests/fixtures/sluice/mainlog",
        "tests/fixtures/sluice/mainlog-classic",
    ]
    for path in files:
        lines = read(path).splitlines(keepends=True)
        name = path.replace("tests/fixtures/", "").replace("/", "-")
        step = max(4, len(lines) // 6)
        for i in range(0, len(lines), step):
            write("log_line", f"{name}-{i // step}", b"".join(lines[i : i + step]))


def configs():
    """config: the embedded default, the spool fixture's file, and the TOML
    examples in the documentation."""
    write("config", "default.toml", read("src/default.toml"))
    write("config", "spool-fixture.toml", read("tests/fixtures/spool-bd5f7b2/sluice.toml"))
    for doc in ["README.md"] + sorted(glob.glob(os.path.join(ROOT, "docs/*.md"))):
        text = read(doc).decode()
        for i, block in enumerate(re.findall(r"```toml\n(.*?)```", text, re.S)):
            write("config", f"{os.path.basename(doc)}-{i}.toml", block)
    write("config", "overrides.toml", '[smtp]\nmax_recipients = 5\nmessage_size_limit = "10M"\n')


def submission_requests():
    """submission_request: request lines as sendmail writes them (see
    src/submission/wire.rs), and some a caller might try instead."""
    full = (
        '{"extract_recipients":true,"ignore_dots":true,"sender":null,"full_name":null,'
        '"delivery":"background","host_address":null,"protocol":null,"host_name":null,'
        '"ident":null,"notify_success":false,"notify_failure":false,"notify_delay":false,'
        '"notify_never":false,"ret":null,"envid":null,"recipients":[]}'
    )
    write("submission_request", "t-i", b"SUBMIT " + full.encode() + b"\nFrom: a@b\n\nx\n")
    write("submission_request", "dsn", b'SUBMIT {"sender":"<>","delivery":"queue",'
          b'"recipients":["bob@host.test, carol@host.test"],"notify_success":true,'
          b'"notify_delay":true,"ret":"hdrs","envid":"x1"}\n')
    write("submission_request", "origin", b'SUBMIT {"sender":"boss@corp.example",'
          b'"full_name":"The \\"Boss\\"","host_address":"192.0.2.1","protocol":"esmtp",'
          b'"ident":"joe","recipients":["a"]}\n')
    write("submission_request", "bad-notify", b'SUBMIT {"notify_never":true,"notify_success":true}\n')
    write("submission_request", "unknown-field", b'SUBMIT {"config":"/etc/passwd"}\n')
    write("submission_request", "not-submit", b"HELO x\r\n")


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    transcripts()
    client_dialogs()
    addresses()
    params()
    mboxes()
    spool_headers()
    logs()
    configs()
    submission_requests()
    for target in sorted(os.listdir(CORPUS)):
        print(target, len(os.listdir(os.path.join(CORPUS, target))))


if __name__ == "__main__":
    main()
