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
//
// Every mode prints one JSON line on stdout and exits 0 on success, 1 on
// failure. Every mode is bounded in time.
'use strict';

const fs = require('fs');
const WebSocket = require('ws');

const INIT_LENGTH = 39;
const TOKEN_LENGTH = 32;
const PING_PROTOCOL = 1;
const ACK_CAP = 254;
const STRING_OPTIONS = new Set(['url', 'holdFile']);

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
    protocol: PING_PROTOCOL,
  };
  for (let i = 1; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const value = argv[i + 1];
    if (!(key in opts) || value === undefined) {
      throw new Error(`unknown or incomplete option ${argv[i]}`);
    }
    opts[key] = STRING_OPTIONS.has(key) ? value : Number(value);
    if (!STRING_OPTIONS.has(key) && !Number.isFinite(opts[key])) {
      throw new Error(`${argv[i]} needs a number`);
    }
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

// ---------------------------------------------------------------- rtt

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

  // Latencies in microseconds, measured only inside the window.
  let samples = new Float64Array(1 << 18);
  let nSamples = 0;
  let measuring = false;
  let stopping = false;
  let replies = 0;     // measured round trips
  let acksOnly = 0;    // ack-only (1-byte) messages received
  let mismatches = 0;  // replies whose client_time was not ours
  let closedEarly = 0;
  let unexpected = 0;  // messages with no ping outstanding

  function record(us) {
    if (nSamples === samples.length) {
      const bigger = new Float64Array(samples.length * 2);
      bigger.set(samples);
      samples = bigger;
    }
    samples[nSamples++] = us;
  }

  const loops = sockets.map((ws, index) => {
    const state = {
      ws,
      owed: 0,           // non-empty packets received since our last send
      sentAt: 0n,        // hrtime of the outstanding ping, 0n when none
      // client_time carries a per-connection sequence number, so that each
      // reply can be checked against the ping it answers.
      seq: BigInt(index) << 40n,
      packet: Buffer.alloc(10),
    };
    state.packet[1] = 0x09;  // PingRequest.client_time: field 1, sfixed64
    return state;
  });

  function sendPing(state) {
    const ack = Math.min(state.owed, ACK_CAP);
    state.owed -= ack;
    state.packet[0] = ack;
    state.seq += 1n;
    state.packet.writeBigInt64LE(state.seq, 2);
    state.sentAt = process.hrtime.bigint();
    // `ws` may hold on to the buffer until it is written: send a copy so
    // the next ping cannot overwrite a queued one.
    state.ws.send(Buffer.from(state.packet), { binary: true });
  }

  for (const state of loops) {
    state.ws.on('message', (data) => {
      if (data.length === 0) return;
      if (data.length === 1) {
        acksOnly += 1;
        return;
      }
      state.owed += 1;
      if (state.sentAt === 0n) {
        unexpected += 1;
        return;
      }
      const now = process.hrtime.bigint();
      if (data.length < 10 || data[1] !== 0x09 ||
          data.readBigInt64LE(2) !== state.seq) {
        mismatches += 1;
      }
      if (measuring) {
        replies += 1;
        record(Number(now - state.sentAt) / 1000);
      }
      state.sentAt = 0n;
      if (!stopping) sendPing(state);
    });
    state.ws.on('close', () => {
      if (!stopping) closedEarly += 1;
    });
    state.ws.on('error', () => {});
  }

  for (const state of loops) sendPing(state);
  await sleep(opts.warmup * 1000);
  measuring = true;
  const t0 = process.hrtime.bigint();
  await sleep(opts.seconds * 1000);
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  stopping = true;

  const sorted = samples.subarray(0, nSamples).sort();
  await closeAll(sockets);
  emit({
    mode: 'rtt',
    ok: closedEarly === 0 && mismatches === 0,
    conns: opts.conns,
    seconds: round(elapsed, 3),
    round_trips: replies,
    rtt_per_s: round(replies / elapsed, 1),
    p50_ms: round(percentile(sorted, 50) / 1000, 3),
    p99_ms: round(percentile(sorted, 99) / 1000, 3),
    max_ms: round(percentile(sorted, 100) / 1000, 3),
    ack_only_msgs: acksOnly,
    mismatches,
    unexpected,
    closed_early: closedEarly,
  });
  return closedEarly === 0 && mismatches === 0 ? 0 : 1;
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
  const t0 = process.hrtime.bigint();
  await sleep(opts.seconds * 1000);
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
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
  const modes = { rtt, handshakes, idle };
  if (!(mode in modes)) {
    process.stderr.write('usage: loadgen.js rtt|handshakes|idle --url ws://127.0.0.1:PORT/aphelion [options]\n');
    return 2;
  }
  return modes[mode](opts);
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`loadgen: ${err.stack || err}\n`);
  process.exit(1);
});
