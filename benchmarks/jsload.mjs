#!/usr/bin/env node
// aphelion.js as a load generator (see README.md, "The JavaScript client
// library as a load generator").
//
//   relay    --url U --conns 100 --seconds 10 [--warmup 1] [--payload 24] [--id-prefix j]
//            N clients of the library (clients/js/aphelion.js, one socket
//            each, `ws` underneath), each authenticated with its own dev ID
//            and seated, then a closed loop of echoes through the AuthProxy
//            and the echo game: the same payload and loop as
//            `loadgen.js relay`, but every packet goes through the library
//            (acks, socket choice, gateway-field decoding, events). Prints
//            one JSON line.
//   compare  [--rounds 3] [--conns 100] [--seconds 10] [--warmup 1] [--payload 24]
//            Starts aphelion (`--auth dev --game aphelion.games.echo
//            --game-servers 2`, on 127.0.0.1 port 0, a fresh one per phase),
//            runs `loadgen.js relay` (raw `ws`) and `jsload.mjs relay` (the
//            library) against it, alternating over the rounds, and prints
//            the medians and the library / raw ratio (target >= 0.7), then
//            one JSON line.
//
// Every phase is bounded in time; servers are stopped by their PID.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import WebSocket from 'ws';

import { Client } from '../clients/js/aphelion.js';

const here = dirname(fileURLToPath(import.meta.url));
const repository = join(here, '..');

function parseArgs(argv) {
  const opts = {
    mode: argv[0],
    url: null,
    conns: 100,
    seconds: 10,
    warmup: 1,
    payload: 24,
    rounds: 3,
    idPrefix: 'j',
    openTimeout: 60,
  };
  for (let i = 1; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
    opts[key] = typeof opts[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return opts;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (x, digits) => Math.round(x * 10 ** digits) / 10 ** digits;

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// The payload of loadgen.js relay: 0x09 + 8-byte sequence number, 0x12 <n> + filler.
function relayPayload(length) {
  const payload = new Uint8Array(length).fill(0x61);
  payload[0] = 0x09;
  payload[9] = 0x12;
  payload[10] = length - 11;
  return payload;
}

async function relay(opts) {
  const started = Date.now();
  const clients = [];
  const errors = [];
  const opening = [];
  // 50 logins in flight, as loadgen's seating does.
  let next = 0;
  async function opener() {
    while (next < opts.conns) {
      const index = next++;
      const client = new Client(opts.url, { WebSocket, reconnect: false });
      try {
        await client.connect();
        await client.authenticate(`${opts.idPrefix}${index}`);
        clients[index] = client;
      } catch (error) {
        errors.push(String(error));
        client.close();
      }
    }
  }
  for (let i = 0; i < 50; i++) opening.push(opener());
  await Promise.race([Promise.all(opening), sleep(opts.openTimeout * 1000)]);
  const seated = clients.filter(Boolean);
  const setupSeconds = (Date.now() - started) / 1000;
  if (seated.length < opts.conns) {
    seated.forEach((client) => client.close());
    console.log(JSON.stringify({ mode: 'relay-library', ok: false, seated: seated.length, errors: errors.slice(0, 5) }));
    return 1;
  }

  let samples = new Float64Array(1 << 18);
  let nSamples = 0;
  let measuring = false;
  let stopping = false;
  let replies = 0;
  let mismatches = 0;
  let closedEarly = 0;
  const template = relayPayload(opts.payload);
  const loops = seated.map((client, index) => {
    const state = { client, seq: BigInt(index) << 40n, sentAt: 0, payload: template.slice() };
    const view = new DataView(state.payload.buffer);
    state.send = () => {
      state.seq += 1n;
      view.setBigInt64(1, state.seq, true);
      state.sentAt = performance.now();
      // The library copies the payload into its packet.
      client.send(state.payload);
    };
    client.on('message', (payload) => {
      const now = performance.now();
      let same = payload.length === state.payload.length;
      for (let i = 0; same && i < payload.length; i++) same = payload[i] === state.payload[i];
      if (!same) mismatches += 1;
      if (measuring) {
        replies += 1;
        if (nSamples === samples.length) {
          const bigger = new Float64Array(samples.length * 2);
          bigger.set(samples);
          samples = bigger;
        }
        samples[nSamples++] = now - state.sentAt;
      }
      if (!stopping) state.send();
    });
    client.on('close', () => {
      if (!stopping) closedEarly += 1;
    });
    return state;
  });
  for (const state of loops) state.send();
  await sleep(opts.warmup * 1000);
  measuring = true;
  const t0 = performance.now();
  await sleep(opts.seconds * 1000);
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  stopping = true;
  const sorted = samples.subarray(0, nSamples).sort();
  for (const state of loops) state.client.close();
  await sleep(200);
  const result = {
    mode: 'relay-library',
    ok: closedEarly === 0 && mismatches === 0,
    conns: seated.length,
    seconds: round(elapsed, 3),
    round_trips: replies,
    rtt_per_s: round(replies / elapsed, 1),
    p50_ms: round(percentile(sorted, 50), 3),
    p99_ms: round(percentile(sorted, 99), 3),
    mismatches,
    closed_early: closedEarly,
    setup_seconds: round(setupSeconds, 3),
    payload_bytes: opts.payload,
  };
  console.log(JSON.stringify(result));
  return result.ok ? 0 : 1;
}

// ------------------------------------------------------------------ compare

function twistd() {
  const venv = join(repository, '.venv', 'bin', 'twistd');
  return existsSync(venv) ? venv : 'twistd';
}

async function startServer() {
  const child = spawn(
    twistd(),
    ['-n', '--pidfile=', 'aphelion', '--listen', 'tcp:0:interface=127.0.0.1', '--auth', 'dev',
      '--game', 'aphelion.games.echo', '--game-servers', '2', '--exempt', '127.0.0.0/8'],
    { cwd: repository, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const gone = new Promise((resolve) => child.on('exit', resolve));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`aphelion did not start:\n${output}`)), 30000);
    const read = (chunk) => {
      output += chunk;
      if (/AphelionSite starting on \d+/.test(output) && (output.match(/game server gs\d+ ready/g) || []).length >= 2) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.setEncoding('utf8').on('data', read);
    child.stderr.setEncoding('utf8').on('data', read);
    child.on('exit', () => reject(new Error(`aphelion exited:\n${output}`)));
  });
  const port = Number(/AphelionSite starting on (\d+)/.exec(output)[1]);
  return {
    url: `ws://127.0.0.1:${port}/aphelion`,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      await gone;
      clearTimeout(timer);
    },
  };
}

function runPhase(script, args, seconds) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(here, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 90) * 1000);
    child.on('exit', () => {
      clearTimeout(timer);
      const line = output.trim().split('\n').at(-1) || '{}';
      try {
        resolve(JSON.parse(line));
      } catch {
        resolve({ ok: false, output });
      }
    });
  });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

async function compare(opts) {
  const common = ['--conns', String(opts.conns), '--seconds', String(opts.seconds),
    '--warmup', String(opts.warmup), '--payload', String(opts.payload)];
  const rounds = [];
  for (let r = 0; r < opts.rounds; r++) {
    const order = r % 2 === 0 ? ['raw', 'library'] : ['library', 'raw'];
    const results = {};
    for (const which of order) {
      const server = await startServer();
      try {
        const prefix = `${which[0]}${r}-`;
        results[which] = which === 'raw'
          ? await runPhase('loadgen.js', ['relay', '--url', server.url, '--id-prefix', prefix, ...common], opts.seconds)
          : await runPhase('jsload.mjs', ['relay', '--url', server.url, '--id-prefix', prefix, ...common], opts.seconds);
      } finally {
        await server.stop();
      }
      process.stderr.write(`round ${r + 1} ${which}: ${JSON.stringify(results[which])}\n`);
    }
    rounds.push(results);
  }
  const ok = rounds.every((r) => r.raw.ok && r.library.ok);
  const raw = median(rounds.map((r) => r.raw.rtt_per_s || 0));
  const library = median(rounds.map((r) => r.library.rtt_per_s || 0));
  const ratios = rounds.map((r) => (r.raw.rtt_per_s ? r.library.rtt_per_s / r.raw.rtt_per_s : 0));
  const rows = [
    ['', 'raw ws (loadgen.js)', 'aphelion.js (jsload.mjs)', 'library / raw'],
    [`relay round trips/s, ${opts.conns} conns`, raw.toFixed(0), library.toFixed(0), (library / raw).toFixed(2)],
    ['p50 ms', median(rounds.map((r) => r.raw.p50_ms)).toFixed(2), median(rounds.map((r) => r.library.p50_ms)).toFixed(2), ''],
    ['p99 ms', median(rounds.map((r) => r.raw.p99_ms)).toFixed(2), median(rounds.map((r) => r.library.p99_ms)).toFixed(2), ''],
    ['per round', '', '', `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}`],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) process.stdout.write(`${row.map((cell, i) => cell.padEnd(widths[i])).join('  ')}\n`);
  process.stdout.write(`target: library >= 0.7 x raw: ${library / raw >= 0.7 ? 'met' : 'MISSED'}\n`);
  console.log(JSON.stringify({ mode: 'compare', ok, rounds, raw_rtt_per_s: raw, library_rtt_per_s: library, ratio: round(library / raw, 3) }));
  return ok ? 0 : 1;
}

const opts = parseArgs(process.argv.slice(2));
const modes = { relay, compare };
if (!(opts.mode in modes) || (opts.mode === 'relay' && !opts.url)) {
  process.stderr.write('usage: jsload.mjs relay --url ws://127.0.0.1:PORT/aphelion [options] | compare [options]\n');
  process.exit(2);
}
process.exit(await modes[opts.mode](opts));
