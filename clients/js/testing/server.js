// Starts a real aphelion (twistd) for the tests: on 127.0.0.1, port 0, with
// the options a test needs; stopped by its PID.
//
// The twistd to run: $APHELION_TWISTD, else the repository's .venv, else
// `twistd` on PATH. A test that needs no special options may use the
// server at $APHELION_URL (tests/test_js.py starts one) instead.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const repository = join(here, '..', '..', '..');

export function twistdPath() {
  if (process.env.APHELION_TWISTD) return process.env.APHELION_TWISTD;
  const venv = join(repository, '.venv', 'bin', 'twistd');
  return existsSync(venv) ? venv : 'twistd';
}

/**
 * Start aphelion with `args` added to `--listen tcp:0:interface=127.0.0.1`;
 * resolves once it listens and its `gameServers` game servers are ready,
 * with `{url, port, log(), stop()}`.
 */
export async function startAphelion(args = [], { gameServers = 0, timeout = 20000 } = {}) {
  const child = spawn(
    twistdPath(),
    [
      '-n',
      '--pidfile=',
      'aphelion',
      '--listen',
      'tcp:0:interface=127.0.0.1',
      '--exempt',
      '127.0.0.0/8',
      '--game-servers',
      String(gameServers),
      ...args,
    ],
    { cwd: repository, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  let port = null;
  let exited = null;
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`aphelion did not start in time:\n${output}`)), timeout);
    const check = () => {
      const match = /AphelionSite starting on (\d+)/.exec(output);
      if (match) port = Number(match[1]);
      const servers = (output.match(/game server gs\d+ ready/g) || []).length;
      if (port !== null && servers >= gameServers) {
        clearTimeout(timer);
        resolve();
      }
    };
    const read = (chunk) => {
      output += chunk;
      check();
    };
    child.stdout.setEncoding('utf8').on('data', read);
    child.stderr.setEncoding('utf8').on('data', read);
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      clearTimeout(timer);
      reject(new Error(`aphelion exited (${code ?? signal}):\n${output}`));
    });
  });
  const gone = new Promise((resolve) => child.on('exit', resolve));
  const stop = async () => {
    if (exited === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      await gone;
      clearTimeout(timer);
    }
  };
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    url: `ws://127.0.0.1:${port}/aphelion`,
    log: () => output,
    stop,
  };
}

/** Wait until `check()` is true, for at most `ms`. */
export async function eventually(check, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The next `event` of `emitter` (an aphelion Client), within `ms`. */
export function nextEvent(emitter, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${ms} ms`));
    }, ms);
    const off = emitter.once(event, (value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/**
 * The server of the tests that need no special options: the one at
 * $APHELION_URL, or one started now (`--auth dev`, one chat game server);
 * `stop()` stops only one started here.
 */
export async function sharedServer() {
  if (process.env.APHELION_URL) {
    return { url: process.env.APHELION_URL, log: () => '', stop: async () => {} };
  }
  return startAphelion(['--auth', 'dev'], { gameServers: 1 });
}

/**
 * A WebSocket class (from `ws`) that records what the library sends in
 * `sent` (copies, init packets included), lets `transform(bytes, ws)` change
 * or drop (null) each message, and keeps every instance in `instances`, so
 * that a test can cut one: `cut(ws)` destroys its TCP socket as a network
 * failure would (close 1006, no closing handshake).
 */
export function spyWebSocket(WebSocket, transform = (bytes) => bytes) {
  const sent = [];
  const instances = [];
  class SpyWebSocket extends WebSocket {
    constructor(url, ...rest) {
      super(url, ...rest);
      instances.push(this);
    }

    send(data, ...rest) {
      const bytes = typeof data === 'string' ? data : new Uint8Array(data).slice();
      sent.push({ ws: this, data: bytes, at: performance.now() });
      const out = transform(bytes, this);
      if (out !== null) super.send(out, ...rest);
    }
  }
  return { WebSocket: SpyWebSocket, sent, instances, cut: (ws) => ws._socket.destroy() };
}
