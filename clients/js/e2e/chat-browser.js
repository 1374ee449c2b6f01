#!/usr/bin/env node
// Drives a real headless Chromium through the chat page (aphelion/pages),
// over WebDriver (Debian's chromium-driver; no npm package needed):
//
//   - two browser pages log in and chat with each other and with a
//     terminal `aphelion chat`;
//   - the pages' sockets are cut (a TCP relay between the browser and
//     aphelion drops every connection and refuses new ones for a while);
//     each page resumes its session with its token, keeps its seat and
//     gets what was said meanwhile; a reload resumes too (sessionStorage);
//   - a screenshot of the chat page is saved.
//
// Environment: APHELION_PORT (a running aphelion with --auth dev and the
// chat game), APHELION_CLI (the `aphelion` command), SCREENSHOT (the PNG
// to write), CHROMIUM (default /usr/bin/chromium), CHROMEDRIVER (default
// chromedriver on PATH). Prints one line per step; exits 0 when every step
// passed.

import { spawn } from 'node:child_process';
import net from 'node:net';

import { cleanups, hasFailed, newBrowser, run, sleep, startDriver, step, until } from './webdriver.js';

const env = process.env;
const aphelionPort = Number(env.APHELION_PORT);
const cli = env.APHELION_CLI || 'aphelion';
const screenshot = env.SCREENSHOT || 'chat.png';

// A TCP relay to aphelion that can drop every connection, as a network
// failure would, and refuse new ones while it is "down".
async function startRelay(targetPort) {
  const pairs = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    open: () => pairs.size,
    cut() {
      down = true;
      const count = pairs.size;
      for (const [client, upstream] of [...pairs]) {
        client.resetAndDestroy?.() ?? client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      return count;
    },
    up() {
      down = false;
    },
    close: () => new Promise((resolve) => {
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      server.close(resolve);
    }),
  };
}

// The terminal client: `aphelion chat`, its output lines kept.
function startTerminal(url, id) {
  const child = spawn(cli, ['chat', url, '--id', id], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = [];
  let buffer = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    buffer += chunk;
    const parts = buffer.split('\n');
    buffer = parts.pop();
    lines.push(...parts);
  });
  let errors = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (errors += chunk));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    lines,
    errors: () => errors,
    say: (text) => child.stdin.write(`${text}\n`),
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGTERM'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// One page (a browser window) of the chat.
async function openPage(browser, url, first) {
  let handle;
  if (first) {
    handle = await browser.call('GET', '/window');
  } else {
    handle = (await browser.call('POST', '/window/new', { type: 'window' })).handle;
  }
  const page = {
    async focus() {
      await browser.call('POST', '/window', { handle });
    },
    async run(script, ...args) {
      await page.focus();
      return browser.run(script, ...args);
    },
    async type(selector, text) {
      await page.focus();
      await browser.type(selector, text);
    },
    async click(selector) {
      await page.focus();
      await browser.click(selector);
    },
    log: () => page.run("return [...document.querySelectorAll('#log li')].map((li) => li.textContent)"),
    status: () => page.run("return document.getElementById('status').textContent"),
    token: () => page.run('return globalThis.aphelionChat.client?.tokenHex ?? null'),
    async says(text) {
      await page.type('#text', text);
      await page.click('#say');
    },
    async screenshot(path) {
      await page.focus();
      await browser.screenshot(path);
    },
  };
  await page.focus();
  await browser.call('POST', '/url', { url });
  return page;
}

async function hears(page, line, what) {
  await until(what, async () => (await page.log()).includes(line));
}

// ------------------------------------------------------------------ main

async function main() {
  if (!aphelionPort) throw new Error('APHELION_PORT is not set');
  const relay = await startRelay(aphelionPort);
  cleanups.push(relay.close);
  const site = `http://127.0.0.1:${relay.port}`;
  step(`relay ${relay.port} -> aphelion ${aphelionPort}`);

  const terminal = startTerminal(`ws://127.0.0.1:${aphelionPort}/aphelion`, 'terry');
  cleanups.push(terminal.stop);
  await until('the terminal joined', () => terminal.lines.some((line) => line.startsWith('* joined')), 20000).catch(
    (error) => {
      throw new Error(`${error.message}: ${terminal.lines.join(' | ')} ${terminal.errors()}`);
    },
  );
  step('terminal `aphelion chat --id terry` joined');

  const driver = await startDriver();
  cleanups.push(driver.stop);
  const browser = await newBrowser(driver, '900,700');
  cleanups.push(browser.quit);
  step('chromium started');

  const pages = [];
  cleanups.push(async () => {
    if (!hasFailed()) return;
    for (const page of pages) {
      step(`page ${await page.run('return location.href')}: ${await page.status()} | ${(await page.log()).join(' | ')}`);
    }
    for (const entry of await browser.consoleLog()) step(`console: ${entry.level} ${entry.message}`);
  });
  const alice = await openPage(browser, `${site}/`, true);
  pages.push(alice);
  await alice.click('#chat-link');
  await until('the chat page', async () => (await alice.run('return location.pathname')) === '/chat.html');
  const bob = await openPage(browser, `${site}/chat.html`, false);
  pages.push(bob);
  for (const [page, id] of [[alice, 'alice'], [bob, 'bob']]) {
    await page.type('#id', id);
    await page.click('#join');
  }
  for (const [page, id] of [[alice, 'alice'], [bob, 'bob']]) {
    await until(`${id} joined`, async () => (await page.status()).startsWith(`Joined as ${id}`));
  }
  step('two pages (from the index page\'s link) logged in: alice and bob');

  await alice.says('hello from alice');
  await hears(bob, '<alice> hello from alice', 'bob hears alice');
  await until('terry hears alice', () => terminal.lines.includes('<alice> hello from alice'));
  await bob.says('hi alice, bob here');
  await hears(alice, '<bob> hi alice, bob here', 'alice hears bob');
  terminal.say('hello browsers, terry in a terminal');
  await hears(alice, '<terry> hello browsers, terry in a terminal', 'alice hears terry');
  await hears(bob, '<terry> hello browsers, terry in a terminal', 'bob hears terry');
  step('alice, bob and terry hear each other');

  const tokens = { alice: await alice.token(), bob: await bob.token() };
  const before = await alice.log();
  const cut = relay.cut();
  step(`cut ${cut} connections of the pages; the relay refuses new ones`);
  await until('alice sees the loss', async () => (await alice.status()).startsWith('Reconnecting'));
  terminal.say('said while the browsers were away');
  await until('terry hears himself', () => terminal.lines.includes('<terry> said while the browsers were away'));
  await sleep(1500);
  relay.up();
  for (const [page, id] of [[alice, 'alice'], [bob, 'bob']]) {
    await hears(page, '<terry> said while the browsers were away', `${id} gets what was said meanwhile`);
    const log = await page.log();
    if (!log.some((line) => line.startsWith('resumed session'))) throw new Error(`${id} did not resume: ${log.join(' | ')}`);
    if ((await page.token()) !== tokens[id]) throw new Error(`${id} has another token`);
  }
  const after = await alice.log();
  if (JSON.stringify(after.slice(0, before.length)) !== JSON.stringify(before)) throw new Error('alice lost lines');
  if (after.some((line) => line.startsWith('new session') && !before.includes(line))) {
    throw new Error('alice got a new session');
  }
  await alice.says('alice is back, same seat');
  await until('terry hears alice again', () => terminal.lines.includes('<alice> alice is back, same seat'));
  await hears(bob, '<alice> alice is back, same seat', 'bob hears alice again');
  step('both pages resumed their sessions with their tokens: same seat, nothing lost, what was said meanwhile arrived');

  await bob.run('location.reload()');
  await until('bob back after a reload', async () => {
    try {
      return (await bob.status()).startsWith('Joined as bob') && (await bob.token()) === tokens.bob;
    } catch {
      return false;
    }
  });
  await bob.says('bob reloaded the page');
  await hears(alice, '<bob> bob reloaded the page', 'alice hears bob after his reload');
  step('a reloaded page resumed its session from sessionStorage');

  await alice.screenshot(screenshot);
  step(`screenshot: ${screenshot}`);
}

await run(main);
