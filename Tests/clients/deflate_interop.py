#!/usr/bin/env python3
"""permessage-deflate interop with CPython's zlib (what Python websockets uses).

    deflate_interop.py deflate WBITS TAKEOVER   compress each message as RFC 7692 7.2.1 says
    deflate_interop.py inflate WBITS TAKEOVER   inflate each payload as RFC 7692 7.2.2 says

Records on stdin and stdout: a 4-byte big-endian length, then the bytes. TAKEOVER is 1 to keep
one zlib object for every message (context takeover), 0 for a fresh one per message. The
objects are set up the way websockets' PerMessageDeflate sets them up.
"""
import struct
import sys
import zlib

TAIL = b"\x00\x00\xff\xff"


def records(stream):
    while True:
        header = stream.read(4)
        if not header:
            return
        (length,) = struct.unpack(">I", header)
        yield stream.read(length)


def main():
    mode, wbits, takeover = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    out = sys.stdout.buffer
    make = (lambda: zlib.compressobj(wbits=-wbits, memLevel=5)) if mode == "deflate" \
        else (lambda: zlib.decompressobj(wbits=-wbits))
    state = make()
    for record in records(sys.stdin.buffer):
        if not takeover:
            state = make()
        if mode == "deflate":
            data = state.compress(record) + state.flush(zlib.Z_SYNC_FLUSH)
            assert data.endswith(TAIL)
            data = data[:-4]
        else:
            data = state.decompress(record + TAIL)
        out.write(struct.pack(">I", len(data)))
        out.write(data)
    out.flush()


if __name__ == "__main__":
    main()
