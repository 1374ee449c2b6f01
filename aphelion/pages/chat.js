// The chat page: the demo chat game (aphelion/games/chat.py) in a browser.
//
// aphelion.js speaks the gateway's protocol: the handshake, acks, two
// sockets, reconnecting with the session token, authenticate. The chat's
// own messages (aphelion/proto/chat.proto) are encoded with protobufjs
// (vendor/, its light build), as a game would with its own protobuf
// library. The session token and the ID are kept in sessionStorage, so a
// reload of the page resumes the session and keeps its seat.

import { AuthResult, Client, CloseCode } from './aphelion.js';

const protobuf = globalThis.protobuf;

// The game's view of chat.proto: only its own fields. The gateway's fields
// (100-199) are aphelion.js's business; protobufjs skips them.
const root = protobuf.Root.fromJSON({
  nested: {
    Say: { fields: { text: { type: 'string', id: 1 } } },
    Said: { fields: { player_id: { type: 'string', id: 1 }, text: { type: 'string', id: 2 } } },
    C2S: { fields: { say: { type: 'Say', id: 1 } } },
    S2C: { fields: { said: { type: 'Said', id: 1 } } },
  },
});
const C2S = root.lookupType('C2S');
const S2C = root.lookupType('S2C');

const $ = (id) => document.getElementById(id);
const log = $('log');
const status = $('status');

function show(text, kind = 'notice', who = null) {
  const line = document.createElement('li');
  line.className = kind;
  if (who !== null) {
    const name = document.createElement('span');
    name.className = 'who';
    name.textContent = `<${who}> `;
    line.append(name);
  }
  line.append(text);
  log.append(line);
  log.scrollTop = log.scrollHeight;
}

function setStatus(text) {
  status.textContent = text;
}

function talking(on) {
  $('text').disabled = !on;
  $('say').disabled = !on;
  $('join').disabled = on;
  $('id').disabled = on;
}

async function endpointURL() {
  const wanted = new URLSearchParams(location.search).get('endpoint');
  let path = wanted;
  if (path === null) {
    try {
      path = (await (await fetch('endpoint.json', { cache: 'no-cache' })).json()).path;
    } catch {
      path = '/aphelion';
    }
  }
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

let client = null;

async function join(id, token = null) {
  const url = await endpointURL();
  client = new Client(url, { sockets: 2, token });
  const hint = () => (client.tokenHex ?? '').slice(0, 4);

  client.on('session', async ({ resumed }) => {
    sessionStorage.setItem('aphelion.token', client.tokenHex);
    if (resumed) {
      // The session came back with its seat (also after a page reload).
      setStatus(`Joined as ${id} (session ${hint()}).`);
      show(`resumed session ${hint()}`);
      talking(true);
      return;
    }
    show(`new session ${hint()}`);
    try {
      await client.authenticate(id);
    } catch (error) {
      show(`not admitted: ${error.message}`);
      setStatus('Not admitted.');
      client.close();
    }
  });
  client.on('authenticateResponse', ({ result }) => {
    // A resumed session that had not finished logging in.
    if (result === AuthResult.NOT_AUTHENTICATED) client.authenticate(id).catch(() => {});
  });
  client.on('connected', (details) => {
    setStatus(`Joined as ${details.playerId} (session ${hint()}).`);
    show(`joined ${details.name} on ${details.serverId} as ${details.playerId} (${details.players}/${details.capacity})`);
    talking(true);
  });
  client.on('gameConfig', ({ contentType, content }) => {
    if (contentType !== 'application/json') return;
    const config = JSON.parse(new TextDecoder().decode(content));
    show(`${config.arena ?? ''}: ${config.motd ?? ''}`);
  });
  client.on('disconnect', ({ reason }) => show(`moved: ${reason}`));
  client.on('disconnected', ({ error }) => {
    setStatus(`Reconnecting (${error.code})…`);
    show(`connection lost (${error.code}); reconnecting`);
  });
  client.on('message', (payload) => {
    const message = S2C.decode(payload);
    if (message.said) show(message.said.text, 'said', message.said.player_id);
  });
  client.on('close', (error) => {
    talking(false);
    setStatus(`Closed: ${error.code} ${error.reason}`);
    show(`closed: ${error.code} ${error.reason}`);
    if (error.code !== CloseCode.NORMAL) sessionStorage.removeItem('aphelion.token');
  });

  setStatus('Connecting…');
  try {
    await client.connect();
  } catch (error) {
    setStatus(`Could not connect: ${error.message}`);
    talking(false);
  }
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  const id = $('id').value.trim();
  if (!id || client !== null) return;
  sessionStorage.setItem('aphelion.id', id);
  join(id);
});

$('talk').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('text').value.trim();
  if (!text || client === null) return;
  client.send(C2S.encode(C2S.create({ say: { text } })).finish());
  $('text').value = '';
});

// After a reload: the same ID and session.
const savedId = sessionStorage.getItem('aphelion.id');
const savedToken = sessionStorage.getItem('aphelion.token');
if (savedId !== null) {
  $('id').value = savedId;
  talking(true);
  $('text').disabled = $('say').disabled = true;
  join(savedId, savedToken);
}

// For tests and the curious: the client of this page.
globalThis.aphelionChat = { get client() { return client; } };
