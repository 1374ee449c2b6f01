#!/usr/bin/env node
// Drives a real headless Chromium through the arena page (aphelion/pages),
// over WebDriver (Debian's chromium-driver; no npm package needed):
//
//   - the index page's link leads to the arena; the page logs in and draws
//     the snapshots on its canvas, bots (`aphelion bots`) moving around it;
//   - holding the right arrow key moves the player's dot right, `w` moves
//     it up; the round-trip time of the ping protocol is shown;
//   - a screenshot of the page is saved.
//
// Environment: APHELION_PORT (a running aphelion with --auth dev and the
// arena game), APHELION_CLI (the `aphelion` command), SCREENSHOT (the PNG to
// write), CHROMIUM (default /usr/bin/chromium), CHROMEDRIVER (default
// chromedriver on PATH). Prints one line per step; exits 0 when every step
// passed.

import { spawn } from 'node:child_process';

import { cleanups, hasFailed, newBrowser, run, startDriver, step, stopper, until } from './webdriver.js';

const env = process.env;
const aphelionPort = Number(env.APHELION_PORT);
const cli = env.APHELION_CLI || 'aphelion';
const screenshot = env.SCREENSHOT || 'arena.png';

// Bots in the arena, for the page to watch: `aphelion bots`, stopped at the end.
function startBots(url, count, seconds) {
  const args = ['bots', url, '--count', String(count), '--seconds', String(seconds), '--warmup', '0'];
  const child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  return { output: () => output, stop: stopper(child) };
}

// The page, with what this script asks of it besides the shared WebDriver calls.
async function openPage(driver) {
  const page = await newBrowser(driver, '900,900');
  Object.assign(page, {
    // Hold a key down for `ms` milliseconds (WebDriver actions), as a
    // player does.
    async hold(key, ms) {
      await page.call('POST', '/actions', {
        actions: [
          {
            type: 'key',
            id: 'keyboard',
            actions: [{ type: 'keyDown', value: key }, { type: 'pause', duration: ms }, { type: 'keyUp', value: key }],
          },
        ],
      });
    },
    text: (id) => page.run(`return document.getElementById(${JSON.stringify(id)}).textContent`),
    you: () => page.run('const y = globalThis.aphelionArena.state.you; return y ? { id: y.id, x: y.x, y: y.y } : null'),
  });
  return page;
}

// ------------------------------------------------------------------ main

// WebDriver's code for the right arrow key.
const ARROW_RIGHT = '\uE014';

async function main() {
  if (!aphelionPort) throw new Error('APHELION_PORT is not set');
  const site = `http://127.0.0.1:${aphelionPort}`;
  const bots = startBots(`ws://127.0.0.1:${aphelionPort}/aphelion`, 5, 60);
  cleanups.push(bots.stop);

  const driver = await startDriver();
  cleanups.push(driver.stop);
  const page = await openPage(driver);
  cleanups.push(page.quit);
  cleanups.push(async () => {
    if (!hasFailed()) return;
    step(`page: ${await page.text('status')} | ${await page.text('tick')} | ${await page.text('you')}`);
    for (const entry of await page.consoleLog()) step(`console: ${entry.level} ${entry.message}`);
    step(`bots: ${bots.output()}`);
  });
  step('chromium started');

  await page.call('POST', '/url', { url: `${site}/` });
  await page.click('#arena-link');
  await until('the arena page', async () => (await page.run('return location.pathname')) === '/arena.html');
  await page.clear('#id');
  await page.type('#id', 'alice');
  await page.click('#join');
  await until('alice plays', async () => (await page.text('status')).startsWith('Playing as alice'));
  const first = await until('a snapshot', () => page.you());
  await until('the bots on the canvas', async () => (await page.run('return globalThis.aphelionArena.state.entities.length')) >= 4);
  step(`alice plays (dot #${first.id} at ${first.x}, ${first.y}) and sees the bots`);

  // Away from the right edge first, so that the dot has room to move right.
  const size = await page.run('return globalThis.aphelionArena.state.config.size');
  if (first.x > size - 200) await page.hold('a', 1000);
  const before = await page.you();
  await page.hold(ARROW_RIGHT, 700);
  const moved = await until('the dot moved right', async () => {
    const now = await page.you();
    return now.x >= before.x + 50 && now.y === before.y ? now : null;
  });
  step(`holding the right arrow for 0.7 s moved the dot from x=${before.x} to x=${moved.x}`);
  // Key down and key up: two inputs, both acknowledged in the snapshots.
  await until('both inputs acknowledged', () => page.run('return globalThis.aphelionArena.state.you.ack >= 2'));

  if (moved.y < 100) await page.hold('s', 1000);
  const low = await page.you();
  await page.hold('w', 400);
  await until('the dot moved up with w', async () => (await page.you()).y <= low.y - 30);
  step('w moves it up');

  const rtt = await until('the round-trip time', async () => {
    const text = await page.text('rtt');
    return /^rtt \d+\.\d ms/.test(text) ? text : null;
  });
  const lag = await page.text('lag');
  if (!/input → snapshot \d+ ms/.test(lag)) throw new Error(`no input latency shown: ${lag}`);
  step(`shown: ${rtt}; ${lag}; ${await page.text('tick')}`);

  await page.screenshot(screenshot);
  step(`screenshot: ${screenshot}`);
}

await run(main);
