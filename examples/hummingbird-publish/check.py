"""Drives the Hummingbird example: real WebSocket clients (Python websockets) on two topics,
a real HTTP client (urllib) publishing through Hummingbird, then SIGTERM to the process:
every client gets its topic's messages, none of the other topic's, and a 1001 at the end.
    check.py BINARY"""
import asyncio
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import websockets


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main(binary):
    http_port, ws_port = free_port(), free_port()
    server = subprocess.Popen([binary, str(http_port), str(ws_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", ws_port), timeout=0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        news = [await websockets.connect(f"ws://127.0.0.1:{ws_port}/news") for _ in range(5)]
        sport = [await websockets.connect(f"ws://127.0.0.1:{ws_port}/sport") for _ in range(3)]
        for index in range(10):
            request = urllib.request.Request(f"http://127.0.0.1:{http_port}/publish/news", data=f"headline {index}".encode(), method="POST")
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 202, response.status
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/publish/sport", data=b"goal", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202
        failures = []
        for ws in news:
            got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(10)]
            if got != [f"headline {index}" for index in range(10)]:
                failures.append(f"news client got {got}")
        for ws in sport:
            got = await asyncio.wait_for(ws.recv(), 5)
            if got != "goal":
                failures.append(f"sport client got {got}")
        server.send_signal(signal.SIGTERM)
        for ws in news + sport:
            try:
                await asyncio.wait_for(ws.recv(), 5)
                failures.append("a message after the shutdown started")
            except websockets.ConnectionClosed as closed:
                if closed.rcvd is None or closed.rcvd.code != 1001:
                    failures.append(f"closed with {closed.rcvd}")
        status = server.wait(timeout=20)
        if status != 0:
            failures.append(f"exit status {status}")
        for failure in failures:
            print("FAIL", failure)
        print("hummingbird example: publishes through HTTP to 8 WebSocket clients, graceful shutdown;", len(failures), "failures")
        return 1 if failures else 0
    finally:
        if server.poll() is None:
            server.kill()
        output = server.stdout.read().decode(errors="replace")
        if os.environ.get("VERBOSE"):
            print(output)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
