// The client's side of the rules, against a fake server (the `ws` package)
// that breaks them: what the library closes with, and the 4005 dance.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import test from 'node:test';

import WebSocket, { WebSocketServer } from 'ws';

import {
  Client,
  CloseCode,
  InitTimeoutError,
  MalformedInitError,
  MalformedPacketError,
  UnsupportedDataError,
  connect,
} from '../aphelion.js';
import { eventually, nextEvent } from '../testing/server.js';

/**
 * A fake server: `behave(ws, init, index)` is called with each connection's
 * init packet. Resolves with `{url, closes, stop}`; `closes` collects the
 * close codes the server received.
 */
async function fakeServer(behave) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const closes = [];
  let index = 0;
  server.on('connection', (ws) => {
    const mine = index++;
    ws.once('message', (init) => behave(ws, new Uint8Array(init), mine));
    ws.on('close', (code) => closes.push(code));
  });
  return {
    url: `ws://127.0.0.1:${server.address().port}/aphelion`,
    closes,
    stop: () => new Promise((resolve) => {
      for (const ws of server.clients) ws.terminate();
      server.close(resolve);
    }),
  };
}

const TOKEN_A = new Uint8Array(32).fill(1);
const TOKEN_B = new Uint8Array(32).fill(2);

test('a S2CInitPacket that is not 32 bytes: the client closes 4003', async (t) => {
  const server = await fakeServer((ws) => ws.send(new Uint8Array(31)));
  t.after(server.stop);
  await assert.rejects(connect(server.url, { WebSocket }), MalformedInitError);
  await eventually(() => server.closes.includes(CloseCode.MALFORMED_INIT));
});

test('no S2CInitPacket within the init timeout: the client closes 4004', async (t) => {
  const server = await fakeServer(() => {});
  t.after(server.stop);
  await assert.rejects(connect(server.url, { WebSocket, initTimeout: 100 }), InitTimeoutError);
  await eventually(() => server.closes.includes(CloseCode.INIT_TIMEOUT));
});

for (const [what, packet] of [
  ['an empty packet', new Uint8Array(0)],
  ['ack 255', Uint8Array.of(255)],
  ['an ack of more than was sent', Uint8Array.of(1, 8)],
]) {
  test(`${what} from the server: the client closes 4006`, async (t) => {
    const server = await fakeServer((ws) => {
      ws.send(TOKEN_A);
      ws.send(packet);
    });
    t.after(server.stop);
    const client = new Client(server.url, { WebSocket });
    const closed = nextEvent(client, 'close');
    await client.connect().catch(() => {});
    const error = await closed;
    assert.ok(error instanceof MalformedPacketError);
    assert.equal(error.byClient, true);
    await eventually(() => server.closes.includes(CloseCode.MALFORMED_PACKET));
  });
}

test('a text frame from the server: the client closes 1003', async (t) => {
  const server = await fakeServer((ws) => {
    ws.send(TOKEN_A);
    ws.send('hello');
  });
  t.after(server.stop);
  const client = new Client(server.url, { WebSocket });
  const closed = nextEvent(client, 'close');
  await client.connect().catch(() => {});
  assert.ok((await closed) instanceof UnsupportedDataError);
  await eventually(() => server.closes.includes(CloseCode.UNSUPPORTED_DATA));
});

test('a socket that presented the token and got another: the old ones close 4005 and join the new session', async (t) => {
  const inits = [];
  const server = await fakeServer((ws, init, index) => {
    inits.push(init);
    // The first socket makes session A; any later one is told B.
    ws.send(index === 0 ? TOKEN_A : TOKEN_B);
  });
  t.after(server.stop);
  const client = new Client(server.url, { WebSocket, sockets: 2 });
  const sessions = [];
  client.on('session', (session) => sessions.push(session));
  t.after(() => client.close());
  await client.connect();
  await eventually(() => client.openSockets.length === 2 && inits.length === 3, 5000, 'the third socket');
  assert.deepEqual(client.token, TOKEN_B);
  assert.ok(server.closes.includes(CloseCode.UNEXPECTED_NEW_SESSION));
  assert.deepEqual(inits[1].subarray(7), TOKEN_A, 'the second presented A');
  assert.deepEqual(inits[2].subarray(7), TOKEN_B, 'the replaced one presented B');
  assert.equal(sessions.length, 2);
  assert.equal(sessions[1].resumed, false);
  assert.deepEqual(sessions[1].previous, TOKEN_A);
});

test('in Node 20 without a WebSocket option the client says what to pass', { skip: typeof globalThis.WebSocket === 'function' && 'this Node has a global WebSocket' }, () => {
  assert.throws(() => new Client('ws://127.0.0.1:1/aphelion'), /WebSocket option/);
});
