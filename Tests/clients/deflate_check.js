// permessage-deflate with Node's `ws` (perMessageDeflate: true), NODE_PATH=/usr/share/nodejs.
//   node deflate_check.js PORT [EXPECTED_RESPONSE_SUBSTRING]
const WebSocket = require('ws');
const port = process.argv[2];
const expected = process.argv[3] || 'permessage-deflate';
const failures = [];
const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: true });
const doc = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ id: i, name: `user ${i}`, tags: ['a', 'b'] })));
const checks = ['hi', doc, Buffer.alloc(100000), 'κόσμε'.repeat(1000)];
for (let i = 0; i < 30; i++) checks.push(doc + i);
let next = 0;
const timer = setTimeout(() => { failures.push('timed out'); done(); }, 20000);
function done() {
  clearTimeout(timer);
  for (const f of failures) console.log('FAIL', f);
  console.log(`node ws deflate checks: ${checks.length} failures: ${failures.length}`);
  ws.terminate();
  process.exit(failures.length ? 1 : 0);
}
ws.on('upgrade', (response) => {
  const agreed = response.headers['sec-websocket-extensions'] || '';
  console.log('agreed:', agreed);
  if (!agreed.includes(expected)) failures.push(`extension response ${agreed} lacks ${expected}`);
});
ws.on('open', () => { for (const c of checks) ws.send(c); });
ws.on('message', (data, isBinary) => {
  const sent = checks[next++];
  const same = Buffer.isBuffer(sent) ? (isBinary && Buffer.compare(data, sent) === 0) : (!isBinary && data.toString() === sent);
  if (!same) failures.push(`message ${next - 1} differs`);
  if (next === checks.length) done();
});
ws.on('error', (e) => { failures.push(e.message); done(); });
