#!/usr/bin/env node
// The soak of the abuse suite (abuse.py --soak): N players seated through the
// AuthProxy on the echo game, each sending R game messages per second for S
// seconds; every echo is checked for loss, duplication and order.
//
//   node benchmarks/abuse_soak.js --url ws://127.0.0.1:PORT/aphelion \
//        --conns 5000 --rate 2 --seconds 60
//
// Each payload is `0x09` + an 8-byte per-player sequence number (little
// endian) + `0x12 0x0d` + 13 filler bytes, as in loadgen.js's relay mode; the
// echo game sends it back verbatim, so the echoes of one player must come
// back as 0, 1, 2, ... with none missing. The ack byte of each packet carries
// the count of non-empty packets received since the last one (at most 254).
//
// Writes "# seated N" and "# sending done" on stdout as it goes, then one
// JSON line. Bounded in time: --open-timeout for seating, --seconds (+5)
// for sending, then the echoes in flight for as long as they keep coming
// (some within each --grace seconds, at most --drain), 10 s for closing, and
// a hard stop.
'use strict';

const WebSocket = require('ws');

const TOKEN_LENGTH = 32;
const GAME_PROTOCOL = 2;
const ACK_CAP = 254;
const PAYLOAD = 24;

function parseArgs(argv) {
  const opts = {
    url: 'ws://127.0.0.1:8080/aphelion',
    conns: 5000,
    rate: 2,
    seconds: 60,
    openConcurrency: 100,
    openTimeout: 180,
    seatTimeout: 30,
    grace: 10,
    drain: 120,
    idPrefix: 'soak',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const value = argv[i + 1];
    if (!(key in opts) || value === undefined) {
      throw new Error(`unknown or incomplete option ${argv[i]}`);
    }
    opts[key] = typeof opts[key] === 'number' ? Number(value) : value;
    if (typeof opts[key] === 'number' && !Number.isFinite(opts[key])) {
      throw new Error(`${argv[i]} needs a number`);
    }
  }
  return opts;
}

function initPacket() {
  const buf = Buffer.alloc(39);
  buf.writeInt16BE(GAME_PROTOCOL, 0);
  return buf;
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

// C2S{authenticate{id}} behind ack byte `ack` (see loadgen.js).
function authPacket(id, ack) {
  const idBytes = Buffer.from(id, 'utf8');
  const inner = Buffer.concat([Buffer.from([0x0a]), varint(idBytes.length), idBytes]);
  return Buffer.concat([Buffer.from([ack, 0xa2, 0x06]), varint(inner.length), inner]);
}

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

// Top-level fields of a protobuf message: field number -> bytes or number.
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

// Open a game connection, authenticate as `id`, resolve once `connected` and
// `game_config` have come: { ws, owed }.
function seat(opts, id) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(opts.url, { perMessageDeflate: false, handshakeTimeout: 30000 });
    ws.binaryType = 'nodebuffer';
    let state = 'init';
    let owed = 0;
    let connected = false;
    let config = false;
    const timer = setTimeout(() => fail('not seated in time'), opts.seatTimeout * 1000);
    function fail(why) {
      if (state === 'done') return;
      state = 'done';
      clearTimeout(timer);
      ws.removeAllListeners('message');
      ws.on('error', () => {});
      ws.terminate();
      reject(new Error(why));
    }
    ws.on('error', (err) => fail(String(err.message || err)));
    ws.on('close', (code, reason) => fail(`closed ${code} ${reason}`));
    ws.on('open', () => ws.send(initPacket()));
    ws.on('message', (data) => {
      if (state === 'init') {
        if (data.length !== TOKEN_LENGTH) return fail(`S2CInitPacket of ${data.length} bytes`);
        state = 'auth';
        ws.send(authPacket(id, 0));
        return;
      }
      if (state !== 'auth' || data.length <= 1) return;
      owed += 1;
      const f = fields(data, 1);
      if (f === null) return fail('S2C does not parse');
      const response = f.get(101);
      if (response !== undefined && typeof response !== 'number') {
        const inner = fields(response, 0);
        const result = inner === null ? undefined : inner.get(1);
        if (result !== 0) return fail(`authenticate_response ${result}`);
      }
      if (f.has(112)) return fail('disconnect before seated');
      if (f.has(110)) connected = true;
      if (f.has(111)) config = true;
      if (connected && config) {
        state = 'done';
        clearTimeout(timer);
        ws.removeAllListeners('message');
        ws.removeAllListeners('close');
        ws.removeAllListeners('error');
        resolve({ ws, owed });
      }
    });
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1));
  return sorted[rank];
}

function round(x, digits) {
  return x === null ? null : Number(x.toFixed(digits));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const seatErrors = [];
  const players = [];
  let next = 0;
  const openDeadline = started + opts.openTimeout * 1000;
  async function seater() {
    while (next < opts.conns && Date.now() < openDeadline) {
      const index = next;
      next += 1;
      try {
        players.push({ index, ...(await seat(opts, `${opts.idPrefix}${index}`)) });
      } catch (err) {
        seatErrors.push(String(err.message || err));
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.openConcurrency, opts.conns) }, seater));
  const seatSeconds = (Date.now() - started) / 1000;
  process.stdout.write(`# seated ${players.length} in ${seatSeconds.toFixed(1)} s\n`);

  const perPlayer = Math.round(opts.rate * opts.seconds);
  const period = 1000 / opts.rate;
  let sent = 0;
  let received = 0;
  let lost = 0;
  let reordered = 0;
  let duplicates = 0;
  let garbled = 0;
  let acksOnly = 0;
  let sending = true;
  const closes = {};
  let latencies = new Float64Array(1 << 20);
  let nLatencies = 0;

  for (const p of players) {
    p.seq = 0;            // next sequence number to send
    p.got = 0;            // distinct sequence numbers echoed
    p.highest = -1;       // highest sequence number echoed
    p.seen = new Uint8Array(perPlayer);
    p.sentAt = new Float64Array(perPlayer);
    p.packet = Buffer.alloc(1 + PAYLOAD, 0x61);
    p.packet[1] = 0x09;
    p.packet[10] = 0x12;
    p.packet[11] = PAYLOAD - 11;
    p.closed = false;
    p.ws.on('error', () => {});
    p.ws.on('close', (code) => {
      p.closed = true;
      if (sending) closes[code] = (closes[code] || 0) + 1;  // before our own close
    });
    p.ws.on('message', (data) => {
      if (data.length <= 1) {
        acksOnly += 1;
        return;
      }
      p.owed += 1;
      if (data.length !== 1 + PAYLOAD || data[1] !== 0x09) {
        garbled += 1;
        return;
      }
      const seq = Number(data.readBigUInt64LE(2));
      if (seq >= p.seq) {
        garbled += 1;  // an echo of something never sent
        return;
      }
      if (p.seen[seq]) {
        duplicates += 1;
        return;
      }
      p.seen[seq] = 1;
      p.got += 1;
      if (seq < p.highest) reordered += 1;
      p.highest = Math.max(p.highest, seq);
      received += 1;
      {
        const ms = Number(process.hrtime.bigint()) / 1e6 - p.sentAt[seq];
        if (nLatencies === latencies.length) {
          const bigger = new Float64Array(latencies.length * 2);
          bigger.set(latencies);
          latencies = bigger;
        }
        latencies[nLatencies++] = ms;
      }
    });
  }

  function send(p) {
    if (p.closed || p.seq >= perPlayer) return;
    const ack = Math.min(p.owed, ACK_CAP);
    p.owed -= ack;
    p.packet[0] = ack;
    p.packet.writeBigUInt64LE(BigInt(p.seq), 2);
    p.sentAt[p.seq] = Number(process.hrtime.bigint()) / 1e6;
    p.seq += 1;
    sent += 1;
    p.ws.send(Buffer.from(p.packet), { binary: true });
  }

  // Open loop: player p sends message k at start + offset + k * period.
  // Each timer is set for the next message's due time, so a late tick (a
  // busy event loop) does not shift the ones after it; the lateness is
  // reported, as it says the generator itself could not keep up.
  const sendStart = Date.now();
  let maxLateMs = 0;
  for (const p of players) {
    p.offset = Math.random() * period;
    const tick = () => {
      const due = sendStart + p.offset + p.seq * period;
      maxLateMs = Math.max(maxLateMs, Date.now() - due);
      send(p);
      if (p.seq < perPlayer && !p.closed) {
        const next = sendStart + p.offset + p.seq * period;
        p.timer = setTimeout(tick, Math.max(0, next - Date.now()));
      }
    };
    p.timer = setTimeout(tick, p.offset);
  }
  const sendEnd = sendStart + opts.seconds * 1000 + period;
  while (Date.now() < sendEnd + 5000 && players.some((p) => !p.closed && p.seq < perPlayer)) {
    await sleep(100);
  }
  const sendSeconds = (Date.now() - sendStart) / 1000;
  process.stdout.write('# sending done\n');
  // Wait for the echoes still in flight: as long as they keep coming (some
  // within each --grace seconds), at most --drain seconds.
  const drainStart = Date.now();
  let lastReceived = -1;
  let lastProgress = Date.now();
  while (Date.now() - drainStart < opts.drain * 1000
    && players.some((p) => !p.closed && p.got < p.seq)) {
    if (received !== lastReceived) {
      lastReceived = received;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > opts.grace * 1000) {
      break;
    }
    await sleep(100);
  }
  const drainSeconds = (Date.now() - drainStart) / 1000;
  sending = false;
  players.forEach((p) => clearTimeout(p.timer));
  // Lost: sequence numbers sent and never echoed (within the grace time).
  for (const p of players) lost += p.seq - p.got;
  const sorted = latencies.subarray(0, nLatencies).sort();

  await Promise.race([
    Promise.all(players.map((p) => new Promise((resolve) => {
      if (p.ws.readyState === WebSocket.CLOSED) return resolve();
      p.ws.once('close', resolve);
      try { p.ws.close(1000, 'done'); } catch (err) { p.ws.terminate(); }
    }))),
    sleep(10000),
  ]);
  players.forEach((p) => { if (p.ws.readyState !== WebSocket.CLOSED) p.ws.terminate(); });

  const errors = seatErrors.length + Object.values(closes).reduce((a, b) => a + b, 0) + garbled;
  const result = {
    ok: players.length === opts.conns && errors === 0 && lost === 0 && reordered === 0
      && duplicates === 0,
    conns: opts.conns,
    seated: players.length,
    seat_seconds: round(seatSeconds, 1),
    seat_errors: seatErrors.length,
    seat_error_samples: seatErrors.slice(0, 5),
    rate_per_player: opts.rate,
    send_seconds: round(sendSeconds, 1),
    send_max_late_ms: round(maxLateMs, 1),
    drain_seconds: round(drainSeconds, 1),
    sent,
    received,
    lost,
    reordered,
    duplicates,
    garbled,
    closed_while_sending: closes,
    errors,
    msgs_per_s: round(received / Math.max(sendSeconds + drainSeconds, 1e-3), 1),
    ack_only_msgs: acksOnly,
    p50_ms: round(percentile(sorted, 50), 2),
    p99_ms: round(percentile(sorted, 99), 2),
    max_ms: round(percentile(sorted, 100), 2),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  return result.ok ? 0 : 1;
}

const opts0 = parseArgs(process.argv.slice(2));
// A hard stop, whatever happens.
setTimeout(() => {
  process.stderr.write('abuse_soak: hard time limit reached\n');
  process.exit(2);
}, (opts0.openTimeout + opts0.seconds + opts0.drain + 60) * 1000).unref();

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`abuse_soak: ${err.stack || err}\n`);
  process.exit(1);
});
