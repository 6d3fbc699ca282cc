"""An SMTP sink on many loopback addresses at once, for
benches/peers/outbound_many.sh: it takes every message, and records for
each the time it answered 250 to the end of data and the message's
X-Bench-Id header, and each connection's address.

usage: many_sink.py PORT OUTDIR ADDRESS...
Writes OUTDIR/got (one "ID TIME HOST" line per message) and OUTDIR/conns
(one "HOST" line per connection), flushed as they come.
"""
import asyncio
import sys
import time

port = int(sys.argv[1])
outdir = sys.argv[2]
hosts = sys.argv[3:]
got = open(f"{outdir}/got", "a", buffering=1)
conns = open(f"{outdir}/conns", "a", buffering=1)


async def session(reader, writer, host):
    conns.write(host + "\n")
    writer.write(b"220 many-sink ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"LHLO"):
                writer.write(b"250-many-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go\r\n")
                await writer.drain()
                bench_id = b"-"
                while True:
                    data = await reader.readline()
                    if not data or data == b".\r\n":
                        break
                    if data.startswith(b"X-Bench-Id: "):
                        bench_id = data[12:].strip()
                writer.write(b"250 2.0.0 ok\r\n")
                await writer.drain()
                got.write(f"{bench_id.decode()} {time.time():.6f} {host}\n")
                continue
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            # (A write goes out at once when the socket takes it; drain
            # only bounds the buffer.)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    servers = []
    for h in hosts:
        servers.append(
            await asyncio.start_server(
                lambda r, w, h=h: session(r, w, h), h, port, backlog=256
            )
        )
    print("listening", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


asyncio.run(main())
