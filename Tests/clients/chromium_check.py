"""permessage-deflate from a real browser: Debian's headless Chromium opens a WebSocket to the
server, which it offers compression on by default (permessage-deflate; client_max_window_bits),
and reports what it saw to this script.

    chromium_check.py PORT [EXPECTED_EXTENSION_SUBSTRING]

This script serves the page itself on another free port of 127.0.0.1 (so the page is an http://
origin, as in production), starts Chromium on it (headless, its own throw-away profile, no
sandbox when run as root), and waits up to 60 s for the page to POST its report: the
extension the server agreed (`WebSocket.extensions`), and whether a small text, a 64 KiB JSON
text and a 100 KB binary message came back unchanged. Chromium is ended by the PID this script
started. Exit 0 when the agreed extension contains EXPECTED (default "permessage-deflate") and
every echo matched."""
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

PAGE = """<!doctype html><meta charset="utf-8"><title>myriad deflate check</title><script>
const report = (result) => fetch("/report", {method: "POST", body: JSON.stringify(result)});
const port = new URLSearchParams(location.search).get("ws");
const json = JSON.stringify(Array.from({length: 1200}, (_, i) => ({id: i, name: "user " + i, tags: ["a", "b"]})));
const binary = new Uint8Array(100000); for (let i = 0; i < binary.length; i++) binary[i] = (i * 7) % 13;
const sent = ["hi", json, binary];
const results = [];
const ws = new WebSocket("ws://127.0.0.1:" + port + "/");
ws.binaryType = "arraybuffer";
ws.onopen = () => { for (const message of sent) ws.send(message); };
ws.onmessage = (event) => {
  const index = results.length;
  const expected = sent[index];
  let same;
  if (typeof expected === "string") { same = event.data === expected; }
  else { const got = new Uint8Array(event.data); same = got.length === expected.length && got.every((b, i) => b === expected[i]); }
  results.push({index: index, same: same, length: typeof event.data === "string" ? event.data.length : event.data.byteLength});
  if (results.length === sent.length) {
    const extensions = ws.extensions;
    ws.close(1000);
    report({extensions: extensions, results: results, userAgent: navigator.userAgent});
  }
};
ws.onerror = () => report({error: "websocket error", results: results});
ws.onclose = (event) => { if (results.length < sent.length) report({error: "closed " + event.code, results: results}); };
</script>"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("chromium is not installed (make test installs Debian's chromium: scripts/ensure-deps.sh)")


def main(ws_port: int, expected: str) -> int:
    reports = []
    arrived = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            reports.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()
            arrived.set()

        def log_message(self, *args):
            pass

    page_port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix="myriad-chromium-")
    arguments = [chromium(), "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--no-default-browser-check", f"--user-data-dir={profile}",
                 f"http://127.0.0.1:{page_port}/check?ws={ws_port}"]
    if os.geteuid() == 0:
        arguments.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    browser = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        arrived.wait(timeout=60)
    finally:
        # Only what this script started: Chromium's process group (it forks helpers).
        try:
            os.killpg(browser.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            _, errors = browser.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)
            _, errors = browser.communicate()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    if not reports:
        print("FAIL no report from the page within 60 s; chromium said:")
        print(errors.decode(errors="replace")[-2000:])
        return 1
    report = reports[0]
    print("chromium:", report.get("userAgent", "?"))
    print("agreed:", report.get("extensions"))
    failures = []
    if "error" in report:
        failures.append(report["error"])
    if expected not in (report.get("extensions") or ""):
        failures.append(f"extension {report.get('extensions')!r} lacks {expected!r}")
    results = report.get("results", [])
    if len(results) != 3 or not all(result["same"] for result in results):
        failures.append(f"echoes: {results}")
    for failure in failures:
        print("FAIL", failure)
    print("chromium deflate checks failures:", len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "permessage-deflate"))
