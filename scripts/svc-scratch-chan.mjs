import http from 'node:http';
import { ServiceChannel } from '../packages/sidecar/dist/service-channel.js';
import { BATCH_CHANNEL_PROTOCOL } from '@txmesh/protocol';
const mode = process.argv[2];
const server = http.createServer((req, res) => res.writeHead(404).end('{}'));
server.on('upgrade', (req, socket) => {
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${BATCH_CHANNEL_PROTOCOL}\r\n\r\n`);
  if (mode === 'end') socket.end(); else if (mode === 'destroy') socket.destroy(); else setTimeout(() => socket.end(), 1);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const ch = new ServiceChannel({ serviceUrl: `http://127.0.0.1:${server.address().port}`, maxAnswerBytes: 1 << 20 });
const outcomes = {};
for (let i = 0; i < 200; i++) {
  const t0 = Date.now();
  let r;
  try { r = (await ch.call('{}', 500)) === undefined ? 'http' : 'answer'; } catch (e) { r = e.failure ?? e.message; }
  const k = `${r}${Date.now() - t0 >= 400 ? ' (waited for deadline)' : ''}`;
  outcomes[k] = (outcomes[k] ?? 0) + 1;
  if (mode === 'timer') await new Promise((r) => setTimeout(r, Math.random() * 3));
}
console.log(mode, outcomes);
ch.destroy(); server.close();
