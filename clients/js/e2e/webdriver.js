// What the browser scripts of this folder share: a W3C WebDriver client
// over fetch (Debian's chromium-driver; no npm package needed), a headless
// Chromium session, and the run of a script: numbered steps, waits,
// cleanups that run whatever happened, exit status 0 when every step
// passed.
//
// Environment: CHROMIUM (default /usr/bin/chromium), CHROMEDRIVER (default
// chromedriver on PATH).

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';

const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const chromedriver = process.env.CHROMEDRIVER || 'chromedriver';
const started = performance.now();

// What to undo at the end, last first (see run).
export const cleanups = [];
let failed = false;

// Whether the script has failed (cleanups print what helps then).
export const hasFailed = () => failed;

export function step(text) {
  process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${text}\n`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `check` every `every` ms until it returns something true, which
// it returns; throws after `ms`.
export async function until(what, check, ms = 15000, every = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(every);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Runs `main`, prints PASSED or FAILED, runs the cleanups and exits.
export async function run(main) {
  try {
    await main();
    step('PASSED');
  } catch (error) {
    step(`FAILED: ${error.stack || error}`);
    failed = true;
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        step(`cleanup: ${error.message}`);
      }
    }
  }
  process.exit(failed ? 1 : 0);
}

// A stop for the process `child`: SIGTERM, then SIGKILL if it has not
// exited within 5 s.
export function stopper(child) {
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return async () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
}

// ------------------------------------------------------------- WebDriver

const ELEMENT = 'element-6066-11e4-a5a8-4da2d4b0e4b6';

export function elementId(element) {
  return element[ELEMENT] ?? element.ELEMENT ?? Object.values(element)[0];
}

// chromedriver on a free port, once it answers.
export async function startDriver(ms = 20000) {
  const port = await freePort();
  const child = spawn(chromedriver, [`--port=${port}`, '--allowed-ips=127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  const stop = stopper(child);
  const base = `http://127.0.0.1:${port}`;
  await until('chromedriver listening', async () => {
    try {
      return (await fetch(`${base}/status`)).ok;
    } catch {
      return false;
    }
  }, ms).catch((error) => {
    throw new Error(`${error.message}\n${output}`);
  });
  return { base, stop };
}

export async function call(base, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`WebDriver ${method} ${path}: ${JSON.stringify(json.value).slice(0, 500)}`);
  return json.value;
}

// A headless Chromium session of `driver`, its window `windowSize`
// ('width,height') and its console logged.
export async function newBrowser(driver, windowSize) {
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
            `--window-size=${windowSize}`,
            '--disable-background-timer-throttling',
            '--disable-renderer-backgrounding',
            '--disable-backgrounding-occluded-windows',
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
    async clear(selector) {
      await call(base, 'POST', `/element/${await browser.find(selector)}/clear`, {});
    },
    async type(selector, text) {
      await call(base, 'POST', `/element/${await browser.find(selector)}/value`, { text });
    },
    async click(selector) {
      await call(base, 'POST', `/element/${await browser.find(selector)}/click`, {});
    },
    async screenshot(path) {
      const png = await call(base, 'GET', '/screenshot');
      writeFileSync(path, Buffer.from(png, 'base64'));
    },
  };
  return browser;
}
