// Broadcast check with Node's `ws` (Debian's node-ws, NODE_PATH=/usr/share/nodejs), against
// `myriad serve --app broadcast` semantics: every connection on a path receives every message
// sent on that path, its own included, exactly once and in order per sender.
//   node broadcast_check.js PORT [CLIENTS] [MESSAGES_EACH]
const WebSocket = require('ws');
const port = process.argv[2];
const clients = Number(process.argv[3] || 20);
const each = Number(process.argv[4] || 5);
const failures = [];
let finished = 0;
const sockets = [];
const timer = setTimeout(() => { failures.push('timed out'); report(); }, 15000);

function report() {
  clearTimeout(timer);
  for (const f of failures.slice(0, 20)) console.log('FAIL', f);
  console.log(`node ws broadcast clients: ${clients} failures: ${failures.length}`);
  for (const ws of sockets) ws.terminate();
  process.exit(failures.length ? 1 : 0);
}

let open = 0;
for (let index = 0; index < clients; index++) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/room-node`, { perMessageDeflate: false });
  sockets.push(ws);
  const seen = new Map();
  let received = 0;
  ws.on('message', (data) => {
    const [sender, number] = data.toString().split(':').map(Number);
    const expected = seen.get(sender) || 0;
    if (number !== expected) failures.push(`client ${index}: from ${sender} got ${number}, expected ${expected}`);
    seen.set(sender, number + 1);
    received++;
    if (received === clients * each) {
      finished++;
      if (finished === clients) report();
    }
  });
  ws.on('error', (e) => failures.push(`client ${index}: ${e.message}`));
  ws.on('open', () => {
    open++;
    if (open === clients) {
      sockets.forEach((s, i) => { for (let m = 0; m < each; m++) s.send(`${i}:${m}`); });
    }
  });
}
