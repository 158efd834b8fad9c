"""Echo check with the `websockets` client from PyPI: text, binary, fragmented and 1 MiB
messages must come back unchanged. Exit 0 when every check passes."""
import asyncio
import os
import sys

import websockets


async def main(port: int) -> int:
    failures = []
    big_text = "é" * (512 * 1024)  # 1 MiB of UTF-8
    big_binary = os.urandom(1 << 20)
    async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None, compression=None) as ws:
        checks = [
            ("text", "hello, myriad", "hello, myriad"),
            ("binary", b"\x00\x01\x02\xff", b"\x00\x01\x02\xff"),
            ("fragmented text", ["frag", "mented ", "€uro"], "fragmented €uro"),
            ("fragmented binary", [b"ab", b"", b"cd"], b"abcd"),
            ("1 MiB text", big_text, big_text),
            ("1 MiB binary", big_binary, big_binary),
            ("empty", "", ""),
        ]
        for name, sent, expected in checks:
            await ws.send(sent)
            got = await asyncio.wait_for(ws.recv(), timeout=20)
            if got != expected:
                failures.append(f"{name}: got {len(got)} bytes, expected {len(expected)}")
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, timeout=5)
        await ws.close(code=1000, reason="done")
        if ws.close_code != 1000:
            failures.append(f"close code echoed as {ws.close_code}, expected 1000")
    for failure in failures:
        print("FAIL", failure)
    print("python websockets", websockets.__version__, "checks:", len(checks) + 2, "failures:", len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]))))
