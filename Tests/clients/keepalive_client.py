"""Holds one connection with the `websockets` client, answering the server's pings (the
library does) and sending none of its own. Prints how long it stayed open and why it ended."""
import asyncio
import sys
import time

import websockets


async def main(port: int, hold_seconds: float) -> int:
    started = time.monotonic()
    async with websockets.connect(f"ws://127.0.0.1:{port}/", ping_interval=None, compression=None) as ws:
        try:
            await asyncio.wait_for(ws.recv(), timeout=hold_seconds)
            print("unexpected message")
            return 1
        except asyncio.TimeoutError:
            print(f"held {time.monotonic() - started:.2f} s, open")
            return 0
        except websockets.ConnectionClosed as closed:
            print(f"closed after {time.monotonic() - started:.2f} s: {closed.rcvd}")
            return 2


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]))))
