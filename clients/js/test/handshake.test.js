// The init handshake, the ping protocol and the close codes a client can
// provoke, against a real aphelion.

import assert from 'node:assert/strict';
import test from 'node:test';

import WebSocket from 'ws';

import {
  Client,
  CloseCode,
  InitTimeoutError,
  InvalidProtocolError,
  MalformedInitError,
  MalformedPacketError,
  MessageTooBigError,
  NoCapacityError,
  TooManyUnacknowledgedError,
  UnsupportedDataError,
  VersionTooNewError,
  VersionTooOldError,
  connect,
} from '../aphelion.js';
import { nextEvent, sharedServer, spyWebSocket, startAphelion } from '../testing/server.js';

let server;
let strict;

test.before(async () => {
  [server, strict] = await Promise.all([
    sharedServer(),
    // Ping revisions 2-3, a short init timeout, a small unacked limit, one
    // connection per session.
    startAphelion([
      '--ping-revisions', '2:3',
      '--init-timeout', '0.3',
      '--unacked-limit', '3',
      '--connections-per-session', '1',
    ]),
  ]);
});

test.after(async () => {
  await Promise.all([server?.stop(), strict?.stop()]);
});

function closeAfter(t, client) {
  t.after(() => client.close());
  return client;
}

test('a new session gets a fresh 32-byte token; presenting it resumes the session', async (t) => {
  const first = closeAfter(t, new Client(server.url, { protocol: 'ping', WebSocket }));
  const session = nextEvent(first, 'session');
  await first.connect();
  const made = await session;
  assert.equal(made.resumed, false);
  assert.equal(first.token.length, 32);
  const again = closeAfter(t, new Client(server.url, { protocol: 'ping', WebSocket, token: first.tokenHex }));
  const joined = nextEvent(again, 'session');
  await again.connect();
  assert.equal((await joined).resumed, true);
  assert.deepEqual(again.token, first.token);
});

test('an unknown token is not an error: a new session', async (t) => {
  const client = closeAfter(t, new Client(server.url, { protocol: 'ping', WebSocket, token: 'ab'.repeat(32) }));
  const session = nextEvent(client, 'session');
  await client.connect();
  const made = await session;
  assert.equal(made.resumed, false);
  assert.notEqual(client.tokenHex, 'ab'.repeat(32));
});

test('ping measures the round trip and reads the counts and the server clock', async (t) => {
  const client = closeAfter(t, await connect(server.url, { protocol: 'ping', WebSocket }));
  const results = await Promise.all([client.ping(), client.ping(), client.ping()]);
  for (const result of results) {
    assert.ok(result.rtt >= 0 && result.rtt < 5000, `rtt ${result.rtt}`);
    assert.equal(typeof result.players, 'number');
    assert.equal(typeof result.playing, 'number');
    assert.ok(Math.abs(result.serverTime - Date.now()) < 60000);
    assert.equal(typeof result.serverTimeNs, 'bigint');
  }
});

test('a protocol the server does not serve: 4000 as InvalidProtocolError', async () => {
  await assert.rejects(connect(server.url, { protocol: 9, WebSocket }), InvalidProtocolError);
});

test('a revision above the current one: 4002; below the minimum: 4001', async () => {
  await assert.rejects(connect(server.url, { protocol: 'ping', version: 99, WebSocket }), VersionTooNewError);
  await assert.rejects(connect(strict.url, { protocol: 'ping', version: 1, WebSocket }), VersionTooOldError);
  const ok = await connect(strict.url, { protocol: 'ping', version: 2, WebSocket });
  ok.close();
});

test('a malformed init packet: 4003 as MalformedInitError', async () => {
  const spy = spyWebSocket(WebSocket, (bytes) => bytes.subarray(0, 38));
  await assert.rejects(connect(server.url, { protocol: 'ping', WebSocket: spy.WebSocket }), MalformedInitError);
});

test('no init packet in time: 4004 as InitTimeoutError', async () => {
  const spy = spyWebSocket(WebSocket, () => null);
  const started = Date.now();
  await assert.rejects(connect(strict.url, { protocol: 'ping', WebSocket: spy.WebSocket }), InitTimeoutError);
  assert.ok(Date.now() - started < 5000);
});

test('an empty message after the handshake: 4006 as MalformedPacketError', async () => {
  const spy = spyWebSocket(WebSocket, (bytes) => (bytes.length === 2 ? new Uint8Array(0) : bytes));
  const client = await connect(server.url, { protocol: 'ping', WebSocket: spy.WebSocket });
  const closed = nextEvent(client, 'close');
  client.send(Uint8Array.of(7));
  const error = await closed;
  assert.ok(error instanceof MalformedPacketError, String(error));
  assert.equal(error.byClient, false);
});

test('a text message: 1003 as UnsupportedDataError', async () => {
  const spy = spyWebSocket(WebSocket, (bytes) => (bytes.length === 2 ? 'text' : bytes));
  const client = await connect(server.url, { protocol: 'ping', WebSocket: spy.WebSocket });
  const closed = nextEvent(client, 'close');
  client.send(Uint8Array.of(7));
  assert.ok((await closed) instanceof UnsupportedDataError);
});

test('a message over the limit: 1009 as MessageTooBigError', async () => {
  const client = await connect(server.url, { protocol: 'ping', WebSocket });
  const closed = nextEvent(client, 'close');
  client.send(new Uint8Array(70000).fill(0x0a));
  assert.ok((await closed) instanceof MessageTooBigError);
});

test('a client that never acks: 4007 as TooManyUnacknowledgedError, then it reconnects', async (t) => {
  // Every packet after the init goes out with ack 0.
  const spy = spyWebSocket(WebSocket, (bytes) => {
    if (bytes.length === 39) return bytes;
    const copy = bytes.slice();
    copy[0] = 0;
    return copy;
  });
  const client = closeAfter(
    t,
    await connect(strict.url, { protocol: 'ping', version: 2, WebSocket: spy.WebSocket, backoffInitial: 50 }),
  );
  const socketClosed = nextEvent(client, 'socketclose');
  // An unauthenticated session does not linger: it comes back as a new one.
  const back = nextEvent(client, 'session');
  const pings = [];
  for (let i = 0; i < 6; i++) {
    pings.push(client.ping().catch((error) => error));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const { error } = await socketClosed;
  assert.ok(error instanceof TooManyUnacknowledgedError, String(error));
  assert.ok(error.retryable);
  await back;
  assert.equal(client.state, 'open');
  await Promise.all(pings);
});

test('no capacity: 1013 as NoCapacityError', async (t) => {
  const first = closeAfter(t, await connect(strict.url, { protocol: 'ping', version: 2, WebSocket }));
  await assert.rejects(
    connect(strict.url, { protocol: 'ping', version: 2, WebSocket, token: first.token }),
    (error) => error instanceof NoCapacityError && error.code === CloseCode.TRY_AGAIN_LATER,
  );
});
