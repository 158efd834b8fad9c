"""Broadcast check with the `websockets` client from PyPI, against `myriad serve --app
broadcast` semantics: every connection on a path receives every message sent on that path,
its own included, exactly once and, per sender, in order. Usage:
    broadcast_check.py PORT [CLIENTS] [MESSAGES_EACH]
Exit 0 when every client got exactly CLIENTS x MESSAGES_EACH messages, in order per sender."""
import asyncio
import sys

import websockets


async def main(port: int, clients: int, each: int) -> int:
    path = "/room-py"
    sockets = [await websockets.connect(f"ws://127.0.0.1:{port}{path}", compression=None) for _ in range(clients)]
    # Everyone is subscribed once the upgrade is done (the server subscribes in onOpen,
    # before it reads anything else), so sending now reaches everyone.
    for index, ws in enumerate(sockets):
        for message in range(each):
            await ws.send(f"{index}:{message}")
    failures = []
    for index, ws in enumerate(sockets):
        seen = {}
        for _ in range(clients * each):
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=10)
            except asyncio.TimeoutError:
                failures.append(f"client {index}: timed out after {sum(seen.values())} messages")
                break
            sender, number = map(int, text.split(":"))
            if seen.get(sender, 0) != number:
                failures.append(f"client {index}: from {sender} got {number}, expected {seen.get(sender, 0)}")
            seen[sender] = number + 1
        if any(seen.get(sender, 0) != each for sender in range(clients)):
            failures.append(f"client {index}: counts {seen}")
    for ws in sockets:
        await ws.close()
    for failure in failures[:20]:
        print("FAIL", failure)
    print("python websockets", websockets.__version__, "broadcast clients:", clients, "failures:", len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(asyncio.run(main(int(args[0]), int(args[1]) if len(args) > 1 else 20, int(args[2]) if len(args) > 2 else 5)))
