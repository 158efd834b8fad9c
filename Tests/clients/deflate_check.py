"""permessage-deflate with the `websockets` client from PyPI (it offers compression by default:
permessage-deflate; client_max_window_bits). Checks the server agreed, then that text and
binary messages, small and large, fragmented and not, come back unchanged.
    deflate_check.py PORT [EXPECTED_RESPONSE_SUBSTRING]
Prints the negotiated extension; exit 0 when every check passes."""
import asyncio
import json
import os
import sys

import websockets


async def main(port: int, expected: str) -> int:
    failures = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
        agreed = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        print("agreed:", agreed)
        if expected not in agreed:
            failures.append(f"extension response {agreed!r} lacks {expected!r}")
        document = json.dumps([{"id": i, "name": f"user {i}", "tags": ["a", "b", "c"]} for i in range(200)])
        checks = [
            ("small text", "hi"),
            ("json text", document),
            ("binary", os.urandom(3000)),
            ("compressible binary", bytes(100_000)),
            ("fragmented text", ["frag", "mented " * 100, "€uro" * 50]),
            ("unicode", "κόσμε" * 1000),
        ]
        for name, sent in checks:
            await ws.send(sent)
            expected_value = "".join(sent) if isinstance(sent, list) else sent
            got = await asyncio.wait_for(ws.recv(), timeout=20)
            if got != expected_value:
                failures.append(f"{name}: got {len(got)} bytes, expected {len(expected_value)}")
        # Several messages in a row: with context takeover each refers back to the last.
        for index in range(50):
            await ws.send(document + str(index))
        for index in range(50):
            got = await asyncio.wait_for(ws.recv(), timeout=20)
            if got != document + str(index):
                failures.append(f"message {index} of the series differs")
                break
        await ws.close(code=1000)
    for failure in failures:
        print("FAIL", failure)
    print("python websockets", websockets.__version__, "deflate checks failures:", len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "permessage-deflate")))
