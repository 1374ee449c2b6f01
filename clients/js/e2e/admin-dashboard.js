#!/usr/bin/env node
// Drives a real headless Chromium through the admin dashboard
// (aphelion/admin/static), over WebDriver (Debian's chromium-driver):
//
//   - the operator logs in with the admin token; the dashboard shows the
//     two running game servers and the player seated by this script;
//   - the player chats for a few seconds: the packets-per-second chart
//     moves (its samples rise and the canvas is redrawn);
//   - the kick button of that player ends its session: the player gets
//     S2C{disconnect} and its socket closes with 4009;
//   - a screenshot of the dashboard is saved.
//
// Environment: APHELION_PORT (a running aphelion with --auth dev, the chat
// game and two game servers), ADMIN_PORT (its --admin endpoint),
// ADMIN_TOKEN, SCREENSHOT (the PNG to write), CHROMIUM, CHROMEDRIVER.
// Prints one line per step; exits 0 when every step passed.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';

import WebSocket from 'ws';

import { Client, SessionEndedError, encodeFields } from '../aphelion.js';

const env = process.env;
const aphelionPort = Number(env.APHELION_PORT);
const adminPort = Number(env.ADMIN_PORT);
const token = env.ADMIN_TOKEN || '';
const screenshot = env.SCREENSHOT || 'admin.png';
const chromium = env.CHROMIUM || '/usr/bin/chromium';
const chromedriver = env.CHROMEDRIVER || 'chromedriver';
const started = performance.now();
const cleanups = [];
let status = 0;

function step(text) {
  process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${text}\n`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// ------------------------------------------------------------- WebDriver

const ELEMENT = 'element-6066-11e4-a5a8-4da2d4b0e4b6';

function elementId(element) {
  return element[ELEMENT] ?? element.ELEMENT ?? Object.values(element)[0];
}

async function startDriver() {
  const port = await freePort();
  const child = spawn(chromedriver, [`--port=${port}`, '--allowed-ips=127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const base = `http://127.0.0.1:${port}`;
  await until('chromedriver listening', async () => {
    try {
      return (await fetch(`${base}/status`)).ok;
    } catch {
      return false;
    }
  }).catch((error) => {
    throw new Error(`${error.message}\n${output}`);
  });
  return {
    base,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function call(base, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`WebDriver ${method} ${path}: ${JSON.stringify(json.value).slice(0, 500)}`);
  return json.value;
}

async function newBrowser(driver) {
  const value = await call(driver.base, 'POST', '/session', {
    capabilities: {
      alwaysMatch: {
        browserName: 'chrome',
        'goog:loggingPrefs': { browser: 'ALL' },
        'goog:chromeOptions': {
          binary: chromium,
          args: [
            '--headless=new',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-dev-shm-usage',
            '--window-size=1000,900',
            '--disable-background-timer-throttling',
            '--disable-renderer-backgrounding',
            '--no-first-run',
          ],
        },
      },
    },
  });
  const base = `${driver.base}/session/${value.sessionId}`;
  const browser = {
    call: (method, path, body) => call(base, method, path, body),
    run: (script, ...args) => call(base, 'POST', '/execute/sync', { script, args }),
    consoleLog: () => call(base, 'POST', '/se/log', { type: 'browser' }),
    quit: () => call(base, 'DELETE', ''),
    async find(selector) {
      return elementId(await call(base, 'POST', '/element', { using: 'css selector', value: selector }));
    },
    async type(selector, text) {
      await call(base, 'POST', `/element/${await browser.find(selector)}/value`, { text });
    },
    async click(selector) {
      await call(base, 'POST', `/element/${await browser.find(selector)}/click`, {});
    },
  };
  return browser;
}

// ------------------------------------------------------------------ main

const say = (text) => encodeFields([[1, encodeFields([[1, text]])]]);

async function main() {
  if (!aphelionPort || !adminPort) throw new Error('APHELION_PORT and ADMIN_PORT must be set');

  // The player: seated on a game server, recording how its session ends.
  const player = new Client(`ws://127.0.0.1:${aphelionPort}/aphelion`, { WebSocket });
  cleanups.push(() => player.close());
  const ended = { disconnect: null, close: null };
  player.on('disconnect', (notice) => (ended.disconnect = notice));
  player.on('close', (error) => (ended.close = error ?? null));
  await player.connect();
  await player.authenticate('alice');
  step('player alice seated');

  const driver = await startDriver();
  cleanups.push(driver.stop);
  const browser = await newBrowser(driver);
  cleanups.push(browser.quit);
  cleanups.push(async () => {
    if (status === 0) return;
    step(`status: ${await browser.run("return document.getElementById('status').textContent")}`);
    for (const entry of await browser.consoleLog()) step(`console: ${entry.level} ${entry.message}`);
  });
  step('chromium started');

  await browser.call('POST', '/url', { url: `http://127.0.0.1:${adminPort}/` });
  await browser.type('#token', token);
  await browser.click('#login-button');
  const rows = () =>
    browser.run(
      "return [...document.querySelectorAll('#servers tbody tr')].map((tr) => [tr.dataset.server, tr.dataset.state, [...tr.querySelectorAll('li')].map((li) => li.dataset.player)])",
    );
  await until('two running game servers and alice on the dashboard', async () => {
    const shown = await rows();
    return (
      shown.length === 2 &&
      shown.every(([, state]) => state === 'ready') &&
      shown.some(([, , players]) => players.includes('alice'))
    );
  });
  step(`dashboard shows ${JSON.stringify(await rows())}`);
  const badge = await browser.run("return document.getElementById('ready').textContent");
  if (badge !== 'ready') throw new Error(`the ready badge says ${badge}`);

  const canvasBefore = await browser.run("return document.getElementById('chart').toDataURL()");
  let sent = 0;
  const chatter = setInterval(() => {
    for (let i = 0; i < 20; i += 1) player.send(say(`message ${(sent += 1)}`));
  }, 50);
  cleanups.push(() => clearInterval(chatter));
  const peak = await until('the chart shows the traffic', async () => {
    const top = await browser.run(
      'return Math.max(0, ...globalThis.aphelionAdmin.history.map((sample) => sample.in))',
    );
    return top > 100 ? top : 0;
  });
  clearInterval(chatter);
  const canvasAfter = await browser.run("return document.getElementById('chart').toDataURL()");
  if (canvasAfter === canvasBefore) throw new Error('the chart was not redrawn');
  step(`the chart moved: ${Math.round(peak)} packets/s in at the peak (${sent} messages sent); pps shows ${await browser.run("return document.getElementById('pps').textContent")}`);

  await browser.call('POST', `/element/${await browser.find('#reason')}/clear`, {});
  await browser.type('#reason', 'kicked from the dashboard');
  await browser.click('button.kick[data-player="alice"]');
  await until('alice sees her session end', () => ended.close !== null);
  if (!(ended.close instanceof SessionEndedError) || ended.close.code !== 4009) {
    throw new Error(`alice closed with ${ended.close}`);
  }
  if (!ended.disconnect || ended.disconnect.reason !== 'kicked from the dashboard') {
    throw new Error(`alice's S2C{disconnect}: ${JSON.stringify(ended.disconnect)}`);
  }
  step(`the kick button ended alice's session: S2C{disconnect} "${ended.disconnect.reason}", then ${ended.close.code}`);
  await until('alice gone from the dashboard', async () => (await rows()).every(([, , players]) => !players.includes('alice')));
  await until('the 4009 close in the recent closes', async () =>
    browser.run("return document.getElementById('recent-closes').textContent.includes('4009 kicked from the dashboard')"),
  );
  step('alice is gone from the dashboard; her 4009 is in the recent closes');

  const png = await browser.call('GET', '/screenshot');
  writeFileSync(screenshot, Buffer.from(png, 'base64'));
  step(`screenshot: ${screenshot}`);
}

try {
  await main();
  step('PASSED');
} catch (error) {
  step(`FAILED: ${error.stack || error}`);
  status = 1;
} finally {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (error) {
      step(`cleanup: ${error.message}`);
    }
  }
}
process.exit(status);
