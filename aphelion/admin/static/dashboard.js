// The aphelion admin dashboard: polls /api/overview every second with the
// bearer token (kept in sessionStorage, never in a cookie), draws packets
// per second on a canvas by hand, and posts drain, restart and kick.
// No library, no build step.

const POLL_MS = 1000;
const HISTORY = 300; // samples kept: five minutes at one a second
const TOKEN_KEY = 'aphelion-admin-token';

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  last: null, // the previous overview, for rates
  history: [], // {time, in, out}: packets per second
  overview: null,
  polls: 0,
  timer: null,
  noticeUntil: 0, // an action's outcome stays shown until then
};
globalThis.aphelionAdmin = state;

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'onclick') node.addEventListener('click', value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function status(text) {
  $('status').textContent = text;
}

async function api(method, path, body) {
  const response = await fetch(`api/${path}`, {
    method,
    headers: {
      authorization: `Bearer ${state.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(json.error || `${response.status}`);
    error.status = response.status;
    throw error;
  }
  return json;
}

function reason() {
  return $('reason').value.trim() || 'asked by an operator';
}

async function act(what, method, path, body) {
  try {
    await api(method, path, body);
    status(`${what}: done`);
  } catch (error) {
    status(`${what}: ${error.message}`);
  }
  state.noticeUntil = Date.now() + 5000;
  poll();
}

// ---------------------------------------------------------------- tables

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => element('tr', {}, ...cells.map((cell) => element('td', {}, cell)))));
}

function renderServers(servers) {
  const rows = servers.map((server) => {
    const players = element('ul', { class: 'players' });
    for (const player of server.seated) {
      players.append(
        element(
          'li',
          { 'data-player': player.playerId },
          `${player.name} (${player.playerId}, session ${player.session})`,
          element(
            'button',
            {
              class: 'kick',
              'data-player': player.playerId,
              onclick: () => act(`kick ${player.playerId}`, 'POST', 'kick', { playerId: player.playerId, reason: reason() }),
            },
            'Kick',
          ),
        ),
      );
    }
    const seats = `${server.seated.length} here / ${server.players} on it / ${server.capacity}`;
    const buttons = element(
      'td',
      {},
      element(
        'button',
        {
          class: 'drain',
          'data-server': server.id,
          onclick: () => act(`drain ${server.id}`, 'POST', `servers/${encodeURIComponent(server.id)}/drain`, { reason: reason() }),
        },
        'Drain',
      ),
      element(
        'button',
        {
          class: 'restart',
          'data-server': server.id,
          onclick: () => act(`restart ${server.id}`, 'POST', `servers/${encodeURIComponent(server.id)}/restart`, { reason: reason() }),
        },
        'Restart',
      ),
    );
    return element(
      'tr',
      { 'data-server': server.id, 'data-state': server.state },
      element('td', {}, `${server.id}${server.name ? ` (${server.name})` : ''}${server.remote ? ' remote' : ''}`),
      element('td', { class: 'state' }, server.state),
      element('td', {}, seats, players),
      element('td', {}, String(server.restarts)),
      buttons,
    );
  });
  $('servers').tBodies[0].replaceChildren(...rows);
}

function renderCounts(id, counts) {
  fillRows($(id).tBodies[0], Object.entries(counts).map(([name, count]) => [name, String(count)]));
}

function renderCloses(overview) {
  renderCounts('closes', overview.closes);
  const now = overview.time;
  $('recent-closes').replaceChildren(
    ...overview.recentCloses.slice(0, 20).map((close) =>
      element('li', {}, `${Math.round(now - close.time)} s ago: ${close.code} ${close.reason}`),
    ),
  );
}

function renderReady(overview) {
  const badge = $('ready');
  badge.textContent = overview.ready ? 'ready' : `not ready: ${overview.readyReason}`;
  badge.className = `badge ${overview.ready ? 'ready' : 'unready'}`;
}

// ----------------------------------------------------------------- chart

function record(overview) {
  const last = state.last;
  state.last = overview;
  if (!last || overview.time <= last.time) return;
  const seconds = overview.time - last.time;
  state.history.push({
    time: overview.time,
    in: Math.max(0, (overview.packets.in - last.packets.in) / seconds),
    out: Math.max(0, (overview.packets.out - last.packets.out) / seconds),
  });
  if (state.history.length > HISTORY) state.history.splice(0, state.history.length - HISTORY);
}

function niceCeiling(value) {
  if (value <= 10) return 10;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function drawChart() {
  const canvas = $('chart');
  const context = canvas.getContext('2d');
  const { width, height } = canvas;
  const left = 56;
  const bottom = height - 18;
  context.clearRect(0, 0, width, height);
  context.font = '11px system-ui, sans-serif';
  const history = state.history;
  const top = niceCeiling(Math.max(0, ...history.map((sample) => Math.max(sample.in, sample.out))));
  context.strokeStyle = '#d8dbe2';
  context.fillStyle = '#555';
  context.lineWidth = 1;
  for (let i = 0; i <= 4; i += 1) {
    const y = Math.round(bottom - ((bottom - 8) * i) / 4) + 0.5;
    context.beginPath();
    context.moveTo(left, y);
    context.lineTo(width, y);
    context.stroke();
    context.fillText(String(Math.round((top * i) / 4)), 4, y + 4);
  }
  context.fillText('5 min ago', left, height - 4);
  context.fillText('now', width - 24, height - 4);
  const x = (index) => left + ((width - left) * (HISTORY - history.length + index)) / (HISTORY - 1);
  const y = (value) => bottom - ((bottom - 8) * value) / top;
  for (const [key, color] of [['in', '#1971c2'], ['out', '#e8590c']]) {
    if (history.length < 2) continue;
    context.strokeStyle = color;
    context.lineWidth = 2;
    context.beginPath();
    history.forEach((sample, index) => {
      if (index === 0) context.moveTo(x(index), y(sample[key]));
      else context.lineTo(x(index), y(sample[key]));
    });
    context.stroke();
  }
  const latest = history[history.length - 1];
  $('pps').textContent = latest ? `${Math.round(latest.in)} in, ${Math.round(latest.out)} out` : '–';
}

// ------------------------------------------------------------------ poll

async function poll() {
  if (!state.token) return;
  try {
    const overview = await api('GET', 'overview');
    state.overview = overview;
    state.polls += 1;
    record(overview);
    renderReady(overview);
    renderServers(overview.servers);
    renderCounts('sessions', overview.sessions);
    renderCounts('connections', overview.connections);
    renderCloses(overview);
    drawChart();
    if (Date.now() > state.noticeUntil) status(`Updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      stop();
      status(`Refused: ${error.message}`);
    } else {
      status(`Cannot reach the API: ${error.message}`);
    }
  }
}

function start() {
  stop();
  poll();
  state.timer = setInterval(poll, POLL_MS);
}

function stop() {
  if (state.timer !== null) clearInterval(state.timer);
  state.timer = null;
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  state.token = $('token').value.trim();
  $('token').value = '';
  sessionStorage.setItem(TOKEN_KEY, state.token);
  status('Logging in…');
  start();
});

$('logout').addEventListener('click', () => {
  stop();
  state.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  status('Logged out.');
});

drawChart();
if (state.token) start();
