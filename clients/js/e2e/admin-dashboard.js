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

import WebSocket from 'ws';

import { Client, SessionEndedError, encodeFields } from '../aphelion.js';
import { cleanups, hasFailed, newBrowser, run, startDriver, step, until as untilEvery } from './webdriver.js';

const env = process.env;
const aphelionPort = Number(env.APHELION_PORT);
const adminPort = Number(env.ADMIN_PORT);
const token = env.ADMIN_TOKEN || '';
const screenshot = env.SCREENSHOT || 'admin.png';

const until = (what, check, ms = 20000) => untilEvery(what, check, ms, 100);

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
  const browser = await newBrowser(driver, '1000,900');
  cleanups.push(browser.quit);
  cleanups.push(async () => {
    if (!hasFailed()) return;
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

  await browser.clear('#reason');
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

  await browser.screenshot(screenshot);
  step(`screenshot: ${screenshot}`);
}

await run(main);
