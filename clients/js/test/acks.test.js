// Acknowledgements as Part 1.3 has them, watched on the wire against a real
// aphelion: counted per connection, carried on the next payload, ack-only
// after the delay, at most the cap per packet.

import assert from 'node:assert/strict';
import test from 'node:test';

import WebSocket from 'ws';

import { connect } from '../aphelion.js';
import { eventually, sharedServer, spyWebSocket } from '../testing/server.js';

let server;

test.before(async () => {
  server = await sharedServer();
});

test.after(async () => {
  await server?.stop();
});

// What went out after the init packets, as [ack, payload length].
function packets(spy, ws = null) {
  return spy.sent
    .filter((entry) => entry.data.length !== 39 && (ws === null || entry.ws === ws))
    .map((entry) => [entry.data[0], entry.data.length - 1]);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('a burst of replies gets one ack-only packet after the delay, not one per reply', async (t) => {
  const spy = spyWebSocket(WebSocket);
  const client = await connect(server.url, { protocol: 'ping', WebSocket: spy.WebSocket, ackDelay: 50 });
  t.after(() => client.close());
  const started = performance.now();
  await Promise.all([client.ping(), client.ping(), client.ping(), client.ping(), client.ping()]);
  const answered = performance.now();
  await eventually(() => packets(spy).length > 5);
  const acks = packets(spy).slice(5);
  assert.deepEqual(packets(spy).slice(0, 5).map(([ack]) => ack), [0, 0, 0, 0, 0]);
  assert.ok(acks.every(([, length]) => length === 0), 'ack-only');
  assert.equal(acks.reduce((sum, [ack]) => sum + ack, 0), 5);
  assert.ok(acks.length <= 2, `one ack-only packet per burst, got ${JSON.stringify(acks)}`);
  const ackAt = spy.sent.at(-1).at;
  assert.ok(ackAt - answered >= 30, 'the ack waited for the delay');
  assert.ok(ackAt - started < 2000);
  assert.equal(client.sockets[0].acks.unacknowledged, 0, 'the replies acked every ping');
});

test('an ack owed when a payload goes out rides on it, and no ack-only packet follows', async (t) => {
  const spy = spyWebSocket(WebSocket);
  const client = await connect(server.url, { protocol: 'ping', WebSocket: spy.WebSocket, ackDelay: 100 });
  t.after(() => client.close());
  await client.ping();
  await client.ping();
  await client.ping();
  await sleep(200);
  assert.deepEqual(packets(spy), [[0, 9], [1, 9], [1, 9], [1, 0]]);
});

test('the cap bounds each packet: the rest rides on the next, sent at the end of the turn', async (t) => {
  const spy = spyWebSocket(WebSocket);
  const client = await connect(server.url, { protocol: 'ping', WebSocket: spy.WebSocket, ackCap: 2, ackDelay: 1000 });
  t.after(() => client.close());
  const started = performance.now();
  await Promise.all(Array.from({ length: 7 }, () => client.ping()));
  await eventually(() => packets(spy).slice(7).reduce((sum, [ack]) => sum + ack, 0) >= 6, 900, 'acks at the cap');
  assert.ok(performance.now() - started < 900, 'before the delay');
  const acks = packets(spy).slice(7);
  assert.ok(acks.every(([ack]) => ack <= 2), JSON.stringify(acks));
  await eventually(() => packets(spy).slice(7).reduce((sum, [ack]) => sum + ack, 0) === 7, 3000, 'the last ack after the delay');
});

test('acks are per connection: each socket acks what it received, and only that', async (t) => {
  const spy = spyWebSocket(WebSocket);
  const client = await connect(server.url, { protocol: 'ping', WebSocket: spy.WebSocket, sockets: 2, ackDelay: 20 });
  t.after(() => client.close());
  for (let i = 0; i < 6; i++) {
    await client.ping();
    await sleep(5);
  }
  await sleep(100);
  for (const ws of spy.instances) {
    const mine = packets(spy, ws);
    const sentPayloads = mine.filter(([, length]) => length > 0).length;
    const acked = mine.reduce((sum, [ack]) => sum + ack, 0);
    assert.equal(acked, sentPayloads, 'one reply per ping on the same socket, each acked there');
    assert.ok(sentPayloads >= 2, 'both sockets carried pings');
  }
});
