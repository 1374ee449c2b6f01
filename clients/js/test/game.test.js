// The game protocol and sessions of several sockets against a real aphelion
// running the chat game: authenticate, talk, ride out cut sockets with the
// token, and the closes that end a session (4008, 4009, 1001).

import assert from 'node:assert/strict';
import test from 'node:test';

import WebSocket from 'ws';

import {
  AuthenticationError,
  AuthResult,
  Client,
  ServerShuttingDownError,
  SessionEndedError,
  TooManyAuthAttemptsError,
  decodeFields,
  encodeFields,
} from '../aphelion.js';
import { eventually, nextEvent, spyWebSocket, startAphelion } from '../testing/server.js';

let server;

test.before(async () => {
  server = await startAphelion(['--auth', 'dev', '--seating', 'fill'], { gameServers: 1 });
});

test.after(async () => {
  await server?.stop();
});

const decoder = new TextDecoder();
const say = (text) => encodeFields([[1, encodeFields([[1, text]])]]);

// The chat's `said` messages a client gets, as "player: text".
function listen(client) {
  const heard = [];
  client.on('message', (payload) => {
    for (const field of decodeFields(payload)) {
      if (field.number !== 1) continue;
      const said = Object.fromEntries(decodeFields(field.value).map((f) => [f.number, decoder.decode(f.value)]));
      heard.push(`${said[1]}: ${said[2]}`);
    }
  });
  return heard;
}

async function player(t, id, options = {}) {
  const client = new Client(server.url, { WebSocket, ...options });
  t.after(() => client.close());
  await client.connect();
  const details = await client.authenticate(id);
  return { client, details };
}

test('authenticate seats the player: connected and game_config arrive, the room hears it', async (t) => {
  const alice = new Client(server.url, { WebSocket });
  t.after(() => alice.close());
  const config = nextEvent(alice, 'gameConfig');
  await alice.connect();
  const details = await alice.authenticate('alice');
  assert.equal(details.playerId, 'alice');
  assert.equal(details.name, 'chat');
  assert.equal(details.serverId, 'gs1');
  assert.equal(alice.authenticated, true);
  const { contentType, content } = await config;
  assert.equal(contentType, 'application/json');
  assert.ok('motd' in JSON.parse(decoder.decode(content)));
  const { client: bob } = await player(t, 'bob');
  const heardByAlice = listen(alice);
  const heardByBob = listen(bob);
  bob.send(say('hello alice'));
  await eventually(() => heardByAlice.includes('bob: hello alice') && heardByBob.includes('bob: hello alice'));
});

test('a game payload before authenticate is answered NOT_AUTHENTICATED', async (t) => {
  const client = new Client(server.url, { WebSocket });
  t.after(() => client.close());
  await client.connect();
  const response = nextEvent(client, 'authenticateResponse');
  client.send(say('too early'));
  const { result, resultName } = await response;
  assert.equal(result, AuthResult.NOT_AUTHENTICATED);
  assert.equal(resultName, 'NOT_AUTHENTICATED');
});

test('a bad ID is an AuthenticationError; the third failure closes 4008', async (t) => {
  const client = new Client(server.url, { WebSocket });
  t.after(() => client.close());
  await client.connect();
  const closed = nextEvent(client, 'close');
  for (const expected of [AuthResult.INVALID_ID, AuthResult.INVALID_ID, AuthResult.TOO_MANY_ATTEMPTS]) {
    await assert.rejects(client.authenticate('bad\nid'), (error) => {
      return error instanceof AuthenticationError && error.result === expected;
    });
  }
  assert.ok((await closed) instanceof TooManyAuthAttemptsError);
  assert.equal(client.state, 'closed', 'no reconnect after 4008');
});

test('the same ID logging in elsewhere ends the first session: 4009, and no reconnect', async (t) => {
  const { client: first } = await player(t, 'carol');
  const closed = nextEvent(first, 'close');
  const disconnect = nextEvent(first, 'disconnect');
  await player(t, 'carol');
  const error = await closed;
  assert.ok(error instanceof SessionEndedError, String(error));
  assert.ok((await disconnect).reason.length > 0);
  assert.equal(first.state, 'closed');
});

test('several sockets share one session; each payload goes on the least-unacknowledged, ties to the least recently used', async (t) => {
  const spy = spyWebSocket(WebSocket);
  const { client } = await player(t, 'dave', { WebSocket: spy.WebSocket, sockets: 3 });
  assert.equal(client.openSockets.length, 3);
  const tokens = new Set(client.sockets.map((socket) => socket.token.join()));
  assert.equal(tokens.size, 1, 'one session');
  const heard = listen(client);
  const used = [];
  // One payload per turn: in flight, the other sockets have fewer unacked.
  for (let i = 0; i < 3; i++) {
    used.push(client.send(say(`n${i}`)).index);
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.deepEqual([...used].sort(), [0, 1, 2]);
  await eventually(() => heard.length === 3 && client.sockets.every((socket) => socket.unacknowledged === 0));
  // All acked: a tie, so the least recently used comes first, in turn.
  const next = [];
  for (let i = 0; i < 3; i++) {
    next.push(client.send(say(`m${i}`)).index);
    await eventually(() => client.sockets.every((socket) => socket.unacknowledged === 0));
  }
  assert.deepEqual(next, used);
  // Several payloads in one turn stay on one socket, in order.
  const burst = [client.send(say('x1')), client.send(say('x2')), client.send(say('x3'))];
  assert.equal(new Set(burst).size, 1);
  await eventually(() => heard.includes('dave: x3'));
  assert.ok(heard.indexOf('dave: x1') < heard.indexOf('dave: x2'));
});

test('sockets cut by the network come back with the token: resumed, same seat, and what was said meanwhile arrives', async (t) => {
  const spy = spyWebSocket(WebSocket);
  const { client: erin } = await player(t, 'erin', { WebSocket: spy.WebSocket, sockets: 2, backoffInitial: 300 });
  const { client: frank } = await player(t, 'frank');
  const heard = listen(erin);
  const token = erin.tokenHex;
  const disconnected = nextEvent(erin, 'disconnected');
  const resumed = nextEvent(erin, 'session');
  for (const ws of spy.instances) spy.cut(ws);
  assert.equal((await disconnected).error.code, 1006);
  frank.send(say('while you were away'));
  // Queued in the client until a socket is back.
  assert.equal(erin.send(say('back soon')), null);
  const session = await resumed;
  assert.equal(session.resumed, true);
  assert.equal(erin.tokenHex, token);
  assert.equal(erin.authenticated, true);
  assert.equal(erin.details.playerId, 'erin');
  await eventually(() => heard.includes('frank: while you were away') && heard.includes('erin: back soon'));
  await eventually(() => erin.openSockets.length === 2, 5000, 'both sockets');
});

test('the server shutting down: 1001 as ServerShuttingDownError, and the client tries to reconnect', async (t) => {
  const { client } = await player(t, 'gina', { backoffInitial: 5000 });
  const socketClosed = nextEvent(client, 'socketclose');
  const reconnecting = nextEvent(client, 'reconnecting');
  await server.stop();
  const { error } = await socketClosed;
  assert.ok(error instanceof ServerShuttingDownError, String(error));
  assert.ok((await reconnecting).delay > 0);
  client.close();
});
