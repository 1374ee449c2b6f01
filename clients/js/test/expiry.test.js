// A session that expired while its sockets were away: the token comes back
// as a new session, which the client tells apart from a resume.

import assert from 'node:assert/strict';
import test from 'node:test';

import WebSocket from 'ws';

import { Client, encodeFields } from '../aphelion.js';
import { nextEvent, spyWebSocket, startAphelion } from '../testing/server.js';

let server;

test.before(async () => {
  server = await startAphelion(['--auth', 'dev', '--session-timeout', '0.3'], { gameServers: 1 });
});

test.after(async () => {
  await server?.stop();
});

test('reconnecting after the session timeout: a new session event with the previous token; queued payloads are dropped', async (t) => {
  const spy = spyWebSocket(WebSocket);
  // The first retry comes after the session is gone (0.3 s).
  const client = new Client(server.url, { WebSocket: spy.WebSocket, backoffInitial: 1200, jitter: 0 });
  t.after(() => client.close());
  await client.connect();
  await client.authenticate('hana');
  const previous = client.tokenHex;
  const session = nextEvent(client, 'session');
  spy.cut(spy.instances[0]);
  await nextEvent(client, 'disconnected');
  client.send(encodeFields([[1, encodeFields([[1, 'lost']])]]));
  const fresh = await session;
  assert.equal(fresh.resumed, false);
  assert.equal(Buffer.from(fresh.previous).toString('hex'), previous);
  assert.notEqual(client.tokenHex, previous);
  assert.equal(fresh.dropped, 1);
  assert.equal(client.authenticated, false);
  assert.equal(client.details, null);
  const details = await client.authenticate('hana');
  assert.equal(details.playerId, 'hana');
});
