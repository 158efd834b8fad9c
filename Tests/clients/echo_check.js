// Echo check with Node's `ws` (Debian's node-ws): text, binary, fragmented and 1 MiB
// messages must come back unchanged. Run with NODE_PATH=/usr/share/nodejs. Exit 0 on success.
'use strict';
const WebSocket = require('ws');
const crypto = require('crypto');

const port = Number(process.argv[2]);
const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false, maxPayload: 64 << 20 });
const bigText = 'é'.repeat(512 * 1024);
const bigBinary = crypto.randomBytes(1 << 20);
const checks = [
  ['text', (s) => s.send('hello from node'), 'hello from node'],
  ['binary', (s) => s.send(Buffer.from([0, 1, 2, 255])), Buffer.from([0, 1, 2, 255])],
  ['fragmented text', (s) => { s.send('frag', { fin: false }); s.send('mented', { fin: true }); }, 'fragmented'],
  ['1 MiB text', (s) => s.send(bigText), bigText],
  ['1 MiB binary', (s) => s.send(bigBinary), bigBinary],
];
const failures = [];
let index = 0;
const timer = setTimeout(() => { console.log('FAIL timeout at check', index); process.exit(1); }, 30000);

function next() {
  if (index === checks.length) { ws.close(1000, 'done'); return; }
  checks[index][1](ws);
}
ws.on('open', next);
ws.on('message', (data, isBinary) => {
  const [name, , expected] = checks[index];
  const got = isBinary ? data : data.toString();
  const same = Buffer.isBuffer(expected) ? Buffer.compare(Buffer.from(got), expected) === 0 : got === expected;
  if (!same) failures.push(`${name}: got ${got.length}, expected ${expected.length}`);
  index += 1;
  next();
});
ws.on('close', (code) => {
  clearTimeout(timer);
  if (code !== 1000) failures.push(`close code ${code}, expected 1000`);
  for (const failure of failures) console.log('FAIL', failure);
  console.log('node ws checks:', checks.length + 1, 'failures:', failures.length);
  process.exit(failures.length ? 1 : 0);
});
ws.on('error', (error) => { console.log('FAIL error', error.message); process.exit(1); });
