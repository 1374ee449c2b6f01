// The arena page: the demo arena (aphelion/games/arena.py) in a browser.
//
// aphelion.js speaks the gateway's protocol (handshake, acks, reconnecting,
// authenticate); the arena's own messages (aphelion/proto/arena.proto) are
// encoded with protobufjs (vendor/, its light build). The field is drawn on
// a canvas from the snapshots the game server sends at every tick; the
// arrow keys or WASD steer. A second connection, of the ping protocol,
// measures the round trip to the AuthProxy once a second.

import { AuthResult, Client, CloseCode } from './aphelion.js';

const protobuf = globalThis.protobuf;

// The game's view of arena.proto: only its own fields. The gateway's fields
// (100-199) are aphelion.js's business; protobufjs skips them.
const root = protobuf.Root.fromJSON({
  nested: {
    Input: {
      fields: { seq: { type: 'uint32', id: 1 }, dx: { type: 'sint32', id: 2 }, dy: { type: 'sint32', id: 3 } },
    },
    Entity: {
      fields: { id: { type: 'uint32', id: 1 }, x: { type: 'sint32', id: 2 }, y: { type: 'sint32', id: 3 } },
    },
    Snapshot: {
      fields: { tick: { type: 'uint32', id: 1 }, entities: { rule: 'repeated', type: 'Entity', id: 2 } },
    },
    You: {
      fields: {
        id: { type: 'uint32', id: 1 },
        ack: { type: 'uint32', id: 2 },
        x: { type: 'sint32', id: 3 },
        y: { type: 'sint32', id: 4 },
      },
    },
    C2S: { fields: { input: { type: 'Input', id: 1 } } },
    S2C: { fields: { snapshot: { type: 'Snapshot', id: 1 }, you: { type: 'You', id: 2 } } },
  },
});
const C2S = root.lookupType('C2S');
const S2C = root.lookupType('S2C');

const $ = (id) => document.getElementById(id);
const canvas = $('field');
const context = canvas.getContext('2d');

// What the page knows of the game.
const state = {
  config: { size: 1000, interest: 100, tick_hz: 20 },
  tick: 0,
  entities: [],
  you: null,
  direction: [0, 0],
  seq: 0,
  sent: new Map(), // seq -> performance.now() when sent
  lag: null,
  rtt: null,
};

let client = null;
let pinger = null;

function setStatus(text) {
  $('status').textContent = text;
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

// ------------------------------------------------------------------ input

const KEYS = {
  ArrowLeft: [-1, 0],
  ArrowRight: [1, 0],
  ArrowUp: [0, -1],
  ArrowDown: [0, 1],
  a: [-1, 0],
  d: [1, 0],
  w: [0, -1],
  s: [0, 1],
};
const held = new Set();

function keyOf(event) {
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  return key in KEYS ? key : null;
}

// Send the direction the held keys make, if it changed.
function steer() {
  let dx = 0;
  let dy = 0;
  for (const key of held) {
    dx += KEYS[key][0];
    dy += KEYS[key][1];
  }
  dx = Math.sign(dx);
  dy = Math.sign(dy);
  if (dx === state.direction[0] && dy === state.direction[1]) return;
  state.direction = [dx, dy];
  if (client === null || client.details === null) return;
  const seq = ++state.seq;
  state.sent.set(seq, performance.now());
  try {
    client.send(C2S.encode(C2S.create({ input: { seq, dx, dy } })).finish());
  } catch {
    // Not connected right now: the direction is sent with the next change.
  }
}

window.addEventListener('keydown', (event) => {
  if (event.target instanceof HTMLInputElement) return;
  const key = keyOf(event);
  if (key === null) return;
  event.preventDefault();
  held.add(key);
  steer();
});
window.addEventListener('keyup', (event) => {
  const key = keyOf(event);
  if (key === null) return;
  held.delete(key);
  steer();
});
window.addEventListener('blur', () => {
  held.clear();
  steer();
});

// --------------------------------------------------------------- snapshots

function snapshotReceived(message) {
  const tick = message.snapshot.tick;
  if (tick <= state.tick) return; // an older one, overtaken
  state.tick = tick;
  state.entities = message.snapshot.entities;
  const you = message.you;
  if (you) {
    state.you = you;
    for (const [seq, sent] of state.sent) {
      if (seq > you.ack) break;
      state.lag = performance.now() - sent;
      state.sent.delete(seq);
    }
  }
  requestDraw();
}

let drawing = false;

function requestDraw() {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => {
    drawing = false;
    draw();
  });
}

function draw() {
  const { size, interest } = state.config;
  const scale = canvas.width / size;
  context.fillStyle = '#fdfdfb';
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.strokeStyle = '#ecebe6';
  context.lineWidth = 1;
  for (let at = interest; at < size; at += interest) {
    context.beginPath();
    context.moveTo(at * scale, 0);
    context.lineTo(at * scale, canvas.height);
    context.moveTo(0, at * scale);
    context.lineTo(canvas.width, at * scale);
    context.stroke();
  }
  const you = state.you;
  if (you) {
    // The cells whose players this one sees.
    const cx = Math.floor(you.x / interest) - 1;
    const cy = Math.floor(you.y / interest) - 1;
    context.fillStyle = 'rgba(255, 170, 60, 0.08)';
    context.fillRect(cx * interest * scale, cy * interest * scale, 3 * interest * scale, 3 * interest * scale);
  }
  context.font = '10px system-ui, sans-serif';
  for (const entity of state.entities) {
    if (you && entity.id === you.id) continue;
    context.fillStyle = '#3d6fb4';
    context.beginPath();
    context.arc(entity.x * scale, entity.y * scale, 4, 0, 2 * Math.PI);
    context.fill();
    context.fillText(String(entity.id), entity.x * scale + 6, entity.y * scale + 3);
  }
  if (you) {
    context.fillStyle = '#e8731a';
    context.beginPath();
    context.arc(you.x * scale, you.y * scale, 6, 0, 2 * Math.PI);
    context.fill();
  }
  $('tick').textContent = `tick ${state.tick}`;
  $('you').textContent = you ? `you #${you.id} at ${you.x}, ${you.y}` : 'you –';
  $('lag').textContent = state.lag === null ? 'input → snapshot –' : `input → snapshot ${state.lag.toFixed(0)} ms`;
  $('near').textContent = `${state.entities.length} near`;
}

// ------------------------------------------------------------------ ping

async function startPinging(url) {
  pinger = new Client(url, { protocol: 'ping', reconnect: true });
  try {
    await pinger.connect();
  } catch {
    $('rtt').textContent = 'rtt unavailable';
    return;
  }
  const once = async () => {
    if (pinger === null || pinger.state === 'closed') return;
    try {
      const { rtt, players } = await pinger.ping();
      state.rtt = rtt;
      $('rtt').textContent = `rtt ${rtt.toFixed(1)} ms (${players} players)`;
    } catch {
      $('rtt').textContent = 'rtt –';
    }
    setTimeout(once, 1000);
  };
  once();
}

// ------------------------------------------------------------------ join

async function join(id) {
  const url = await endpointURL();
  client = new Client(url, { sockets: 1 });
  client.on('session', async ({ resumed }) => {
    if (resumed) return;
    try {
      await client.authenticate(id);
    } catch (error) {
      setStatus(`Not admitted: ${error.message}`);
      client.close();
    }
  });
  client.on('authenticateResponse', ({ result }) => {
    if (result === AuthResult.NOT_AUTHENTICATED) client.authenticate(id).catch(() => {});
  });
  client.on('connected', (details) => {
    setStatus(`Playing as ${details.playerId} on ${details.serverId} (${details.players}/${details.capacity}). Steer with the arrow keys or WASD.`);
    state.direction = [0, 0];
    held.clear();
    canvas.focus();
  });
  client.on('gameConfig', ({ contentType, content }) => {
    if (contentType !== 'application/json') return;
    state.config = { ...state.config, ...JSON.parse(new TextDecoder().decode(content)) };
  });
  client.on('disconnected', ({ error }) => setStatus(`Reconnecting (${error.code})…`));
  client.on('message', (payload) => {
    const message = S2C.decode(payload);
    if (message.snapshot) snapshotReceived(message);
  });
  client.on('close', (error) => {
    $('join').disabled = $('id').disabled = false;
    setStatus(`Closed: ${error.code} ${error.reason}`);
    client = null;
    if (pinger !== null) pinger.close(CloseCode.NORMAL, 'bye');
    pinger = null;
  });
  $('join').disabled = $('id').disabled = true;
  setStatus('Connecting…');
  try {
    await client.connect();
  } catch (error) {
    setStatus(`Could not connect: ${error.message}`);
    return;
  }
  startPinging(url);
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  const id = $('id').value.trim();
  if (!id || client !== null) return;
  join(id);
});

$('id').value = new URLSearchParams(location.search).get('id') ?? `player-${Math.floor(Math.random() * 10000)}`;
draw();

// For tests and the curious: the page's client and what it knows.
globalThis.aphelionArena = {
  get client() {
    return client;
  },
  state,
};
