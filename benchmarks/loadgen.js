#!/usr/bin/env node
// Load generator for the aphelion benchmark suite (see README.md).
//
// Speaks the aphelion WebSocket transport (PROTOCOL.md, Part 1) with the `ws`
// package, the client the PERFORMANCE.md anchors were measured with:
//
//   rtt        --url U --conns 100 --seconds 10 [--warmup 1]
//              N connections, each a closed loop of PingRequests; prints
//              round trips/s and p50/p99 latency (ms).
//   handshakes --url U --seconds 10 --concurrency 20
//              open + init + 32-byte reply + close(1000), repeated; prints
//              handshakes/s.
//   idle       --url U --conns 5000 --hold-file F [--max-hold 600]
//              N connections with init; once every one has its 32-byte reply,
//              writes "ready" to F and holds until SIGTERM, SIGINT, stdin
//              closing or --max-hold seconds.
//   relay      --url U --conns 100 --seconds 10 [--id-prefix p] [--no-auth]
//              N game-protocol (2) connections, each authenticated with its
//              own dev ID (<prefix><index>) and seated (connected +
//              game_config), then a closed loop of --payload-byte echoes
//              through the AuthProxy and the echo game; prints round trips/s,
//              p50/p99 latency (ms) and the seating time. With --no-auth
//              (for the bare echo) there is no authentication: the same loop
//              right after the init.
//   seats      --url U --seconds 10 --concurrency 20 [--id-prefix s] [--no-auth]
//              open + init + authenticate (a fresh dev ID each time) +
//              connected + close(1000), repeated; prints seats/s and p50/p99
//              time to seated (ms). With --no-auth (bare echo) the
//              authenticate packet is sent and its echo stands for connected.
//
// relay and seats take --payload (bytes of each relayed payload, 11-138,
// default 24) and --auth-timeout (seconds to be seated, default 30); every
// mode but idle takes --mark-window, which writes "window start" and
// "window end" on stderr around the measured window (relay.py reads the
// servers' CPU then).
//
// Every mode prints one JSON line on stdout and exits 0 on success, 1 on
// failure. Every mode is bounded in time.
'use strict';

const fs = require('fs');
const WebSocket = require('ws');

const INIT_LENGTH = 39;
const TOKEN_LENGTH = 32;
const PING_PROTOCOL = 1;
const GAME_PROTOCOL = 2;
const ACK_CAP = 254;
const STRING_OPTIONS = new Set(['url', 'holdFile', 'idPrefix']);
const FLAG_OPTIONS = new Set(['noAuth', 'markWindow']);

function parseArgs(argv) {
  const mode = argv[0];
  const opts = {
    url: 'ws://127.0.0.1:8080/aphelion',
    conns: 100,
    seconds: 10,
    warmup: 1,
    concurrency: 20,
    openConcurrency: 50,
    openTimeout: 120,
    holdFile: null,
    maxHold: 600,
    // 1 (ping) for rtt, handshakes and idle; 2 (game) for relay and seats.
    protocol: ['relay', 'seats'].includes(mode) ? GAME_PROTOCOL : PING_PROTOCOL,
    idPrefix: mode === 'seats' ? 's' : 'p',
    noAuth: false,
    markWindow: false,
    payload: 24,
    authTimeout: 30,
  };
  for (let i = 1; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (FLAG_OPTIONS.has(key)) {
      // A flag; it may be followed by 1/0 or true/false.
      const next = argv[i + 1];
      if (next !== undefined && /^(1|0|true|false)$/.test(next)) {
        opts[key] = next === '1' || next === 'true';
      } else {
        opts[key] = true;
        i -= 1;
      }
      continue;
    }
    const value = argv[i + 1];
    if (!(key in opts) || value === undefined) {
      throw new Error(`unknown or incomplete option ${argv[i]}`);
    }
    opts[key] = STRING_OPTIONS.has(key) ? value : Number(value);
    if (!STRING_OPTIONS.has(key) && !Number.isFinite(opts[key])) {
      throw new Error(`${argv[i]} needs a number`);
    }
  }
  if (opts.payload < RELAY_MIN_PAYLOAD || opts.payload > RELAY_MAX_PAYLOAD) {
    throw new Error(`--payload must be ${RELAY_MIN_PAYLOAD}-${RELAY_MAX_PAYLOAD} bytes`);
  }
  return { mode, opts };
}

// The 39-byte C2SInitPacket: protocol (i16), version 0 (i32), no token.
function initPacket(protocol) {
  const buf = Buffer.alloc(INIT_LENGTH);
  buf.writeInt16BE(protocol, 0);
  buf.writeInt32BE(0, 2);
  buf.writeInt8(0, 6);
  return buf;
}

function connect(url) {
  return new WebSocket(url, {
    perMessageDeflate: false,
    handshakeTimeout: 30000,
  });
}

// Open one connection and complete the aphelion init handshake. Resolves with
// the WebSocket once the 32-byte token has arrived.
function openSession(url, protocol) {
  return new Promise((resolve, reject) => {
    const ws = connect(url);
    ws.binaryType = 'nodebuffer';
    let done = false;
    const fail = (err) => {
      if (!done) {
        done = true;
        ws.removeAllListeners('message');
        reject(err);
      }
    };
    ws.on('error', fail);
    ws.on('close', (code, reason) => fail(new Error(`closed ${code} ${reason}`)));
    ws.on('open', () => ws.send(initPacket(protocol)));
    ws.once('message', (data) => {
      if (done) return;
      done = true;
      ws.removeAllListeners('close');
      ws.removeAllListeners('error');
      // An 'error' with no listener would throw: keep a quiet one until the
      // mode adds its own.
      ws.on('error', () => {});
      if (data.length !== TOKEN_LENGTH) {
        ws.terminate();
        reject(new Error(`S2CInitPacket of ${data.length} bytes`));
        return;
      }
      resolve(ws);
    });
  });
}

// Open `count` sessions with at most `parallel` handshakes in flight.
async function openMany(url, protocol, count, parallel, deadline) {
  const sockets = [];
  const errors = [];
  let next = 0;
  async function worker() {
    while (next < count && Date.now() < deadline) {
      next += 1;
      try {
        sockets.push(await openSession(url, protocol));
      } catch (err) {
        errors.push(String(err.message || err));
        if (errors.length > Math.max(10, count / 100)) return;
      }
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(parallel, count); i += 1) workers.push(worker());
  await Promise.all(workers);
  return { sockets, errors };
}

// ---------------------------------------------------------------- game protocol

// The relay payload: `0x09` + 8-byte sequence number (field 1, fixed64, as in
// a PingRequest) + `0x12 <n>` + n filler bytes (field 2, bytes): valid
// protobuf in field numbers that belong to the game, though the proxy relays
// it without decoding. The echo comes back verbatim, so every byte is checked.
const RELAY_MIN_PAYLOAD = 11;
const RELAY_MAX_PAYLOAD = 11 + 127;

function relayPacket(payloadLength) {
  const packet = Buffer.alloc(1 + payloadLength, 0x61);
  packet[1] = 0x09;
  packet[10] = 0x12;
  packet[11] = payloadLength - 11;
  return packet;
}

function varint(n) {
  const bytes = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

// A ProtobufPacket whose payload is C2S{authenticate = 100: Authenticate{id = 1}}:
// tag 100 << 3 | 2 = 0xa2 0x06, then the length of Authenticate, then its
// field 1 (tag 0x0a, length, the ID's UTF-8 bytes).
function authPacket(id, ack) {
  const idBytes = Buffer.from(id, 'utf8');
  const inner = Buffer.concat([Buffer.from([0x0a]), varint(idBytes.length), idBytes]);
  return Buffer.concat([
    Buffer.from([ack, 0xa2, 0x06]), varint(inner.length), inner,
  ]);
}

// Read a varint at buf[pos]; returns [value, next position] or null.
function readVarint(buf, pos) {
  let value = 0;
  let shift = 0;
  while (pos < buf.length && shift < 35) {
    const b = buf[pos++];
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, pos];
    shift += 7;
  }
  return null;
}

// The top-level fields of a protobuf message starting at buf[start]: a Map
// from field number to the bytes (length-delimited) or the number (varint) of
// its last occurrence; null if it does not parse.
function fields(buf, start) {
  const out = new Map();
  let pos = start;
  while (pos < buf.length) {
    const tag = readVarint(buf, pos);
    if (tag === null) return null;
    pos = tag[1];
    const number = Math.floor(tag[0] / 8);
    const wire = tag[0] % 8;
    if (wire === 0) {
      const v = readVarint(buf, pos);
      if (v === null) return null;
      out.set(number, v[0]);
      pos = v[1];
    } else if (wire === 2) {
      const len = readVarint(buf, pos);
      if (len === null || len[1] + len[0] > buf.length) return null;
      out.set(number, buf.subarray(len[1], len[1] + len[0]));
      pos = len[1] + len[0];
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else {
      return null;
    }
  }
  return pos === buf.length ? out : null;
}

const S2C_AUTHENTICATE_RESPONSE = 101;
const S2C_CONNECTED = 110;
const S2C_GAME_CONFIG = 111;
const S2C_DISCONNECT = 112;

// Follow the S2C messages of one connection while it authenticates. Feed it
// each message; `state` becomes 'seated' once `connected` has come (and
// `game_config` too when `needConfig`), 'failed' (with `error`) on a refusal.
class Seating {
  constructor(needConfig) {
    this.needConfig = needConfig;
    this.state = 'waiting';
    this.error = null;
    this.owed = 0;          // non-empty packets received (to acknowledge)
    this.acksOnly = 0;      // ack-only (1-byte) packets received
    this.connected = false;
    this.config = false;
  }

  feed(data) {
    if (data.length <= 1) {
      if (data.length === 1) this.acksOnly += 1;
      return this.state;
    }
    this.owed += 1;
    const f = fields(data, 1);
    if (f === null) return this.fail('S2C does not parse');
    const response = f.get(S2C_AUTHENTICATE_RESPONSE);
    if (response !== undefined) {
      const inner = typeof response === 'number' ? null : fields(response, 0);
      const result = inner === null ? undefined : inner.get(1);
      if (result !== 0) {
        const text = inner && inner.get(2) ? inner.get(2).toString() : '';
        return this.fail(`authenticate_response ${result} ${text}`.trim());
      }
    }
    if (f.has(S2C_DISCONNECT)) return this.fail('disconnect before seated');
    if (f.has(S2C_CONNECTED)) this.connected = true;
    if (f.has(S2C_GAME_CONFIG)) this.config = true;
    if (this.connected && (this.config || !this.needConfig)) this.state = 'seated';
    return this.state;
  }

  fail(why) {
    this.state = 'failed';
    this.error = why;
    return this.state;
  }
}

// Authenticate an open game session as `id` and wait until it is seated
// (connected + game_config). Resolves with the Seating (its `owed` is what the
// next packet acknowledges); rejects on refusal, close or timeout.
function authenticate(ws, id, timeoutMs) {
  return new Promise((resolve, reject) => {
    const seating = new Seating(true);
    let timer = null;
    const finish = (err) => {
      clearTimeout(timer);
      ws.removeListener('message', onMessage);
      ws.removeListener('close', onClose);
      if (err) reject(err); else resolve(seating);
    };
    const onMessage = (data) => {
      const state = seating.feed(data);
      if (state === 'seated') finish(null);
      else if (state === 'failed') finish(new Error(seating.error));
    };
    const onClose = (code, reason) => finish(new Error(`closed ${code} ${reason}`));
    timer = setTimeout(() => finish(new Error('not seated in time')), timeoutMs);
    ws.on('message', onMessage);
    ws.on('close', onClose);
    ws.send(authPacket(id, 0));
  });
}

// Open `count` game sessions and seat each as `<prefix><index>`, at most
// `parallel` in flight. Returns the sockets in index order of success with
// their Seating.
async function seatMany(opts, count, deadline) {
  const seated = [];
  const errors = [];
  let next = 0;
  async function worker() {
    while (next < count && Date.now() < deadline) {
      const index = next;
      next += 1;
      let ws = null;
      try {
        ws = await openSession(opts.url, opts.protocol);
        const seating = await authenticate(
          ws, `${opts.idPrefix}${index}`, opts.authTimeout * 1000);
        seated.push({ ws, seating });
      } catch (err) {
        if (ws !== null) ws.terminate();
        errors.push(String(err.message || err));
        if (errors.length > Math.max(10, count / 100)) return;
      }
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(opts.openConcurrency, count); i += 1) workers.push(worker());
  await Promise.all(workers);
  return { seated, errors };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1));
  return sorted[rank];
}

function round(x, digits) {
  return x === null ? null : Number(x.toFixed(digits));
}

function emit(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}

// ---------------------------------------------------------------- rtt, relay

// The closed loop of rtt and relay: each socket sends `template` (its byte 0
// the ack, bytes 2-9 a per-connection sequence number) and waits for the
// reply before sending the next. A reply is any message with a non-empty
// payload whose bytes 1-9 match (`exact`: whose every byte after the ack
// matches); 1-byte ack-only messages are counted apart. `owed[i]` is what
// socket i's first packet acknowledges. Resolves with the figures.
async function closedLoop(sockets, owed, template, exact, opts) {
  // Latencies in microseconds, measured only inside the window.
  let samples = new Float64Array(1 << 18);
  let nSamples = 0;
  let measuring = false;
  let stopping = false;
  let replies = 0;     // measured round trips
  let acksOnly = 0;    // ack-only (1-byte) messages received
  let acksOnlyMeasured = 0;  // the same, inside the window
  let mismatches = 0;  // replies whose sequence number (or bytes) were not ours
  let closedEarly = 0;
  let unexpected = 0;  // messages with no request outstanding

  function record(us) {
    if (nSamples === samples.length) {
      const bigger = new Float64Array(samples.length * 2);
      bigger.set(samples);
      samples = bigger;
    }
    samples[nSamples++] = us;
  }

  const loops = sockets.map((ws, index) => ({
    ws,
    owed: owed[index] || 0,  // non-empty packets received since our last send
    sentAt: 0n,              // hrtime of the outstanding request, 0n when none
    // Bytes 2-9 carry a per-connection sequence number, so that each reply
    // can be checked against the request it answers.
    seq: BigInt(index) << 40n,
    packet: Buffer.from(template),
  }));

  function send(state) {
    const ack = Math.min(state.owed, ACK_CAP);
    state.owed -= ack;
    state.packet[0] = ack;
    state.seq += 1n;
    state.packet.writeBigInt64LE(state.seq, 2);
    state.sentAt = process.hrtime.bigint();
    // `ws` may hold on to the buffer until it is written: send a copy so
    // the next request cannot overwrite a queued one.
    state.ws.send(Buffer.from(state.packet), { binary: true });
  }

  for (const state of loops) {
    state.ws.on('message', (data) => {
      if (data.length === 0) return;
      if (data.length === 1) {
        acksOnly += 1;
        if (measuring) acksOnlyMeasured += 1;
        return;
      }
      state.owed += 1;
      if (state.sentAt === 0n) {
        unexpected += 1;
        return;
      }
      const now = process.hrtime.bigint();
      if (exact
        ? data.length !== state.packet.length || data.compare(state.packet, 1, state.packet.length, 1) !== 0
        : data.length < 10 || data[1] !== 0x09 || data.readBigInt64LE(2) !== state.seq) {
        mismatches += 1;
      }
      if (measuring) {
        replies += 1;
        record(Number(now - state.sentAt) / 1000);
      }
      state.sentAt = 0n;
      if (!stopping) send(state);
    });
    state.ws.on('close', () => {
      if (!stopping) closedEarly += 1;
    });
    state.ws.on('error', () => {});
  }

  for (const state of loops) send(state);
  await sleep(opts.warmup * 1000);
  measuring = true;
  markWindow(opts, 'start');
  const t0 = process.hrtime.bigint();
  await sleep(opts.seconds * 1000);
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  markWindow(opts, 'end');
  stopping = true;

  const sorted = samples.subarray(0, nSamples).sort();
  await closeAll(sockets);
  return {
    ok: closedEarly === 0 && mismatches === 0,
    conns: sockets.length,
    seconds: round(elapsed, 3),
    round_trips: replies,
    rtt_per_s: round(replies / elapsed, 1),
    p50_ms: round(percentile(sorted, 50) / 1000, 3),
    p99_ms: round(percentile(sorted, 99) / 1000, 3),
    max_ms: round(percentile(sorted, 100) / 1000, 3),
    ack_only_msgs: acksOnly,
    ack_only_measured: acksOnlyMeasured,
    mismatches,
    unexpected,
    closed_early: closedEarly,
  };
}

// The ping loop: PingRequests (`0x09` + client_time) on ping sessions.
async function rtt(opts) {
  const started = Date.now();
  const { sockets, errors } = await openMany(
    opts.url, opts.protocol, opts.conns, opts.openConcurrency,
    started + opts.openTimeout * 1000);
  if (sockets.length < opts.conns) {
    sockets.forEach((ws) => ws.terminate());
    emit({ mode: 'rtt', ok: false, opened: sockets.length, errors: errors.slice(0, 5) });
    return 1;
  }
  const ping = Buffer.alloc(10);
  ping[1] = 0x09;  // PingRequest.client_time: field 1, sfixed64
  const result = await closedLoop(sockets, [], ping, false, opts);
  emit({ mode: 'rtt', ...result });
  return result.ok ? 0 : 1;
}

// The relay loop: seated game sessions (or, with --no-auth, bare sessions)
// sending payloads that the echo game returns verbatim.
async function relay(opts) {
  const started = Date.now();
  const deadline = started + opts.openTimeout * 1000;
  let sockets;
  let owed = [];
  let errors;
  let acksWhileSeating = 0;
  if (opts.noAuth) {
    ({ sockets, errors } = await openMany(
      opts.url, opts.protocol, opts.conns, opts.openConcurrency, deadline));
  } else {
    const got = await seatMany(opts, opts.conns, deadline);
    errors = got.errors;
    sockets = got.seated.map((s) => s.ws);
    owed = got.seated.map((s) => s.seating.owed);
    acksWhileSeating = got.seated.reduce((n, s) => n + s.seating.acksOnly, 0);
  }
  const seatSeconds = (Date.now() - started) / 1000;
  if (sockets.length < opts.conns) {
    sockets.forEach((ws) => ws.terminate());
    emit({
      mode: 'relay', ok: false, opened: sockets.length, errors: errors.slice(0, 5),
    });
    return 1;
  }
  const result = await closedLoop(sockets, owed, relayPacket(opts.payload), true, opts);
  emit({
    mode: 'relay',
    ...result,
    authenticated: !opts.noAuth,
    payload_bytes: opts.payload,
    ack_only_per_rt: result.round_trips
      ? round(result.ack_only_measured / result.round_trips, 3) : null,
    setup_seconds: round(seatSeconds, 3),
    ack_only_while_seating: acksWhileSeating,
  });
  return result.ok ? 0 : 1;
}

// ---------------------------------------------------------------- handshakes

async function handshakes(opts) {
  let measuring = false;
  let stopping = false;
  let completed = 0;
  let failed = 0;
  const errors = [];
  const latencies = [];

  function once() {
    return new Promise((resolve) => {
      const t = process.hrtime.bigint();
      const ws = connect(opts.url);
      let gotToken = false;
      ws.on('open', () => ws.send(initPacket(opts.protocol)));
      ws.once('message', (data) => {
        if (data.length === TOKEN_LENGTH) {
          gotToken = true;
          ws.close(1000, 'bye');
        } else {
          ws.terminate();
        }
      });
      ws.on('error', (err) => {
        if (errors.length < 5) errors.push(String(err.message || err));
      });
      // Count on close, so a handshake includes its closing handshake and no
      // more than `concurrency` sockets are ever open.
      ws.on('close', () => {
        if (measuring) {
          if (gotToken) {
            completed += 1;
            latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
          } else {
            failed += 1;
          }
        }
        resolve();
      });
    });
  }

  async function worker() {
    while (!stopping) await once();
  }

  const workers = [];
  for (let i = 0; i < opts.concurrency; i += 1) workers.push(worker());
  await sleep(opts.warmup * 1000);
  measuring = true;
  markWindow(opts, 'start');
  const t0 = process.hrtime.bigint();
  await sleep(opts.seconds * 1000);
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  markWindow(opts, 'end');
  stopping = true;
  await Promise.race([Promise.all(workers), sleep(15000)]);
  latencies.sort((a, b) => a - b);
  emit({
    mode: 'handshakes',
    ok: completed > 0 && failed === 0,
    concurrency: opts.concurrency,
    seconds: round(elapsed, 3),
    handshakes: completed,
    handshakes_per_s: round(completed / elapsed, 1),
    p50_ms: round(percentile(latencies, 50), 3),
    p99_ms: round(percentile(latencies, 99), 3),
    failed,
    errors,
  });
  return completed > 0 && failed === 0 ? 0 : 1;
}

// ---------------------------------------------------------------- seats

// Seat a fresh player, repeatedly: open, init, authenticate with a new dev ID,
// wait for `connected`, close with 1000 and wait for the close. With --no-auth
// (the bare echo) the authenticate packet is sent all the same and its echo
// stands for `connected`: one round trip after the init.
async function seats(opts) {
  let measuring = false;
  let stopping = false;
  let completed = 0;
  let failed = 0;
  let counter = 0;
  const errors = [];
  const latencies = [];  // ms from opening to seated

  function once() {
    return new Promise((resolve) => {
      const t = process.hrtime.bigint();
      const id = `${opts.idPrefix}${counter}`;
      counter += 1;
      const ws = connect(opts.url);
      const seating = new Seating(false);
      let sent = null;
      let seatedAt = 0n;
      const note = (why) => {
        if (errors.length < 5) errors.push(why);
      };
      const timer = setTimeout(() => {
        note('not seated in time');
        ws.terminate();
      }, opts.authTimeout * 1000);
      ws.on('open', () => ws.send(initPacket(opts.protocol)));
      ws.on('message', (data) => {
        if (sent === null) {
          if (data.length !== TOKEN_LENGTH) {
            note(`S2CInitPacket of ${data.length} bytes`);
            ws.terminate();
            return;
          }
          sent = authPacket(id, 0);
          ws.send(sent);
          return;
        }
        if (seatedAt !== 0n) return;
        let state;
        if (opts.noAuth) {
          state = data.length > 1 ? 'seated' : 'waiting';
          if (state === 'seated' && data.compare(sent, 1, sent.length, 1) !== 0) {
            state = seating.fail('echo differs from the authenticate packet');
          }
        } else {
          state = seating.feed(data);
        }
        if (state === 'seated') {
          seatedAt = process.hrtime.bigint();
          ws.close(1000, 'bye');
        } else if (state === 'failed') {
          note(seating.error);
          ws.terminate();
        }
      });
      ws.on('error', (err) => note(String(err.message || err)));
      // Count on close, so a seat includes its closing handshake and no more
      // than `concurrency` sockets are ever open.
      ws.on('close', () => {
        clearTimeout(timer);
        if (measuring) {
          if (seatedAt !== 0n) {
            completed += 1;
            latencies.push(Number(seatedAt - t) / 1e6);
          } else {
            failed += 1;
          }
        }
        resolve();
      });
    });
  }

  async function worker() {
    while (!stopping) await once();
  }

  const workers = [];
  for (let i = 0; i < opts.concurrency; i += 1) workers.push(worker());
  await sleep(opts.warmup * 1000);
  measuring = true;
  markWindow(opts, 'start');
  const t0 = process.hrtime.bigint();
  await sleep(opts.seconds * 1000);
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  markWindow(opts, 'end');
  stopping = true;
  await Promise.race([Promise.all(workers), sleep(15000)]);
  latencies.sort((a, b) => a - b);
  emit({
    mode: 'seats',
    ok: completed > 0 && failed === 0,
    authenticated: !opts.noAuth,
    concurrency: opts.concurrency,
    seconds: round(elapsed, 3),
    seats: completed,
    seats_per_s: round(completed / elapsed, 1),
    p50_ms: round(percentile(latencies, 50), 3),
    p99_ms: round(percentile(latencies, 99), 3),
    attempts: counter,
    failed,
    errors,
  });
  return completed > 0 && failed === 0 ? 0 : 1;
}

// ---------------------------------------------------------------- idle

async function idle(opts) {
  const started = Date.now();
  const { sockets, errors } = await openMany(
    opts.url, opts.protocol, opts.conns, opts.openConcurrency,
    started + opts.openTimeout * 1000);
  const openSeconds = (Date.now() - started) / 1000;
  let lost = 0;
  let holding = true;
  for (const ws of sockets) {
    ws.on('message', () => {});
    ws.on('error', () => {});
    ws.on('close', () => { if (holding) lost += 1; });
  }
  if (sockets.length < opts.conns) {
    sockets.forEach((ws) => ws.terminate());
    emit({ mode: 'idle', ok: false, opened: sockets.length, errors: errors.slice(0, 5) });
    return 1;
  }
  if (opts.holdFile) fs.writeFileSync(opts.holdFile, 'ready\n');
  process.stderr.write(`idle: ${sockets.length} sessions ready in ${openSeconds.toFixed(1)} s\n`);

  const reason = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve('max-hold'), opts.maxHold * 1000);
    const done = (why) => { clearTimeout(timer); resolve(why); };
    process.once('SIGTERM', () => done('SIGTERM'));
    process.once('SIGINT', () => done('SIGINT'));
    process.stdin.on('end', () => done('stdin closed'));
    process.stdin.on('error', () => done('stdin error'));
    process.stdin.resume();
  });
  holding = false;
  process.stdin.pause();
  await closeAll(sockets);
  emit({
    mode: 'idle',
    ok: lost === 0,
    conns: sockets.length,
    open_seconds: round(openSeconds, 3),
    lost_while_holding: lost,
    stopped_by: reason,
  });
  return lost === 0 ? 0 : 1;
}

// ---------------------------------------------------------------- helpers

// With --mark-window, tell the runner on stderr when the measured window
// starts and ends, so that it can read the servers' CPU over exactly that time.
function markWindow(opts, what) {
  if (opts.markWindow) process.stderr.write(`window ${what}\n`);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Close every socket with 1000 and wait (bounded) for the closes to finish.
function closeAll(sockets) {
  const closes = sockets.map((ws) => new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', resolve);
    try { ws.close(1000, 'done'); } catch (err) { ws.terminate(); }
  }));
  return Promise.race([Promise.all(closes), sleep(10000)]).then(() => {
    sockets.forEach((ws) => { if (ws.readyState !== WebSocket.CLOSED) ws.terminate(); });
  });
}

async function main() {
  const { mode, opts } = parseArgs(process.argv.slice(2));
  const modes = { rtt, handshakes, idle, relay, seats };
  if (!(mode in modes)) {
    process.stderr.write('usage: loadgen.js rtt|handshakes|idle|relay|seats --url ws://127.0.0.1:PORT/aphelion [options]\n');
    return 2;
  }
  return modes[mode](opts);
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`loadgen: ${err.stack || err}\n`);
  process.exit(1);
});
