"""Scrapes `myriad serve`'s /metrics, parses it with prometheus_client's own parser (the
reference Python implementation of the text format), checks that every metric the README's
metrics table lists is there with its type, puts a small load on the server, and checks that
the figures moved the right way.

    metrics_check.py WS_PORT METRICS_PORT README.md

The server must run with a short keep-alive (MYRIAD_PING_INTERVAL=300ms,
MYRIAD_PONG_TIMEOUT=300ms) so that a ping round trip and a pong timeout happen within the run.
Prints what it checked; exits 1 with every failure listed.
"""
import asyncio
import re
import socket
import sys
import time
import urllib.error
import urllib.request

import websockets
from prometheus_client.parser import text_string_to_metric_families

ws_port, metrics_port, readme_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
URL = f"http://127.0.0.1:{metrics_port}/metrics"
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def readme_metrics():
    """{name: type} from the README's metrics table (between its markers)."""
    text = open(readme_path).read()
    begin, end = "<!-- metrics table: begin -->", "<!-- metrics table: end -->"
    if begin not in text or end not in text:
        sys.exit("README.md has no metrics table markers")
    table = text.split(begin, 1)[1].split(end, 1)[0]
    return dict(re.findall(r"^\| `((?:myriad|process)_[a-z_]+)` \| (counter|gauge|histogram) \|", table, re.M))


def scrape():
    """{(sample name, frozenset(labels)): value} and {family name: type}, parsed by prometheus_client."""
    with urllib.request.urlopen(URL, timeout=5) as response:
        content_type = response.headers.get("Content-Type", "")
        text = response.read().decode()
    check(content_type.startswith("text/plain; version=0.0.4"), f"Content-Type is the text format 0.0.4 ({content_type})")
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def total(samples, name):
    """Sum over every series of a sample name (e.g. per worker)."""
    return sum(v for (n, _), v in samples.items() if n == name)


def family_name(name, kind):
    # prometheus_client names a counter family without its _total suffix.
    return name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name


async def echo_and_ping():
    """Echoes 5 messages, stays silent until the server pings (websockets answers with a
    pong), then closes normally."""
    async with websockets.connect(f"ws://127.0.0.1:{ws_port}/", ping_interval=None) as ws:
        for index in range(5):
            await ws.send(f"message {index}")
            reply = await asyncio.wait_for(ws.recv(), 5)
            assert reply == f"message {index}", reply
        await asyncio.sleep(1.2)  # several ping intervals of silence
        await ws.send("after the pings")
        await asyncio.wait_for(ws.recv(), 5)


def silent_client():
    """Upgrades, then never reads or answers: the server's ping goes unanswered."""
    sock = socket.create_connection(("127.0.0.1", ws_port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def health_check():
    sock = socket.create_connection(("127.0.0.1", ws_port))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    while sock.recv(4096):
        pass
    sock.close()


listed = readme_metrics()
check(len(listed) >= 40, f"the README lists {len(listed)} metrics")
before, types = scrape()
for name, kind in sorted(listed.items()):
    family = family_name(name, kind)
    check(types.get(family) == kind, f"{name} is exposed as a {kind} (found {types.get(family)})")
for family, kind in sorted(types.items()):
    exposed = family + "_total" if kind == "counter" else family
    check(exposed in listed, f"{exposed} is in the README's table")

# The load: an echo client with a ping round trip, a client that never answers a ping, a
# health check.
silent = silent_client()
asyncio.run(echo_and_ping())
health_check()
deadline = time.time() + 10
while True:
    # Counters reach /metrics when a worker's loop publishes them: wait until the load's last
    # effects (the pong timeout, the closes) are there.
    after, _ = scrape()
    closed = sum((value(after, "myriad_closes_total", cause=c) or 0) - (value(before, "myriad_closes_total", cause=c) or 0)
                 for c in ("normal", "pong_timeout", "http"))
    if closed >= 3 and total(after, "myriad_connections_open") == total(before, "myriad_connections_open"):
        break
    if time.time() >= deadline:
        print("the load's effects did not all arrive within 10 s")
        break
    time.sleep(0.2)
silent.close()


def delta(name, **labels):
    return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)


check(delta("myriad_accepts_total") == 3, f"accepts_total +3 (moved {delta('myriad_accepts_total')})")
check(delta("myriad_handshakes_total") == 2, f"handshakes_total +2 (moved {delta('myriad_handshakes_total')})")
check(delta("myriad_messages_received_total") == 6, f"messages_received_total +6 (moved {delta('myriad_messages_received_total')})")
check(delta("myriad_messages_sent_total") == 6, f"messages_sent_total +6 (moved {delta('myriad_messages_sent_total')})")
check(delta("myriad_received_bytes_total") > 6 * 9, f"received_bytes_total grew ({delta('myriad_received_bytes_total')})")
check(delta("myriad_sent_bytes_total") > 6 * 9, f"sent_bytes_total grew ({delta('myriad_sent_bytes_total')})")
check(delta("myriad_pings_sent_total") >= 2, f"pings_sent_total grew by >= 2 ({delta('myriad_pings_sent_total')})")
check(delta("myriad_pongs_received_total") >= 1, f"pongs_received_total grew ({delta('myriad_pongs_received_total')})")
check(delta("myriad_sends_total") >= 1, f"sends_total grew ({delta('myriad_sends_total')})")
check(delta("myriad_waits_total") >= 1, f"waits_total grew ({delta('myriad_waits_total')})")
for cause in ("normal", "pong_timeout", "http"):
    check(delta("myriad_closes_total", cause=cause) == 1, f'closes_total{{cause="{cause}"}} +1 (moved {delta("myriad_closes_total", cause=cause)})')
check(total(after, "myriad_connections_open") == total(before, "myriad_connections_open"),
      "connections_open is back where it was")
check(len([k for k in after if k[0] == "myriad_connections_open"]) >= 1, "connections_open has a series per worker")

for histogram, grew in (("myriad_handshake_duration_seconds", 2), ("myriad_ping_round_trip_seconds", 1)):
    count = delta(histogram + "_count")
    check(count >= grew if "ping" in histogram else count == grew, f"{histogram}_count +{grew} (moved {count})")
    check(delta(histogram + "_sum") > 0, f"{histogram}_sum grew ({delta(histogram + '_sum'):.6f} s)")
    buckets = sorted(((float(dict(labels)["le"]), v) for (n, labels), v in after.items() if n == histogram + "_bucket"))
    check(len(buckets) == 17 and buckets[-1][0] == float("inf"), f"{histogram} has 17 buckets ending in +Inf")
    check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), f"{histogram} buckets are cumulative")
    check(buckets and buckets[-1][1] == value(after, histogram + "_count"), f"{histogram} +Inf bucket equals its count")

# Counters never go back.
for (name, labels), old in before.items():
    kind = types.get(family_name(name, "counter")) if name.endswith("_total") else None
    if kind == "counter":
        check(after.get((name, labels), old) >= old, f"{name}{dict(labels)} did not decrease")
check(value(after, "process_resident_memory_bytes") > 1 << 20, "process_resident_memory_bytes is plausible")
check(value(after, "process_cpu_seconds_total") > 0, "process_cpu_seconds_total > 0")
check(len([k for k in after if k[0] == "myriad_info"]) == 1, "myriad_info has one series")

# Anything but GET /metrics is refused.
for path, method, status in (("/", "GET", 404), ("/metrics", "POST", 405)):
    request = urllib.request.Request(f"http://127.0.0.1:{metrics_port}{path}", method=method, data=b"" if method == "POST" else None)
    try:
        urllib.request.urlopen(request, timeout=5)
        got = 200
    except urllib.error.HTTPError as error:
        got = error.code
    check(got == status, f"{method} {path} -> {status} (got {got})")

print(f"failures: {len(failures)}")
sys.exit(1 if failures else 0)
