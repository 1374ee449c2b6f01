// The example of docs/browser.rst runs: it joins the chat, says a line and
// hears it back.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'node:test';
import { promisify } from 'node:util';

import { sharedServer } from '../testing/server.js';

test('examples/chat-node.mjs joins, talks and hears itself', async (t) => {
  const server = await sharedServer();
  t.after(() => server.stop());
  const script = fileURLToPath(new URL('../examples/chat-node.mjs', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script, server.url, 'ivy', 'hi from the docs'], {
    timeout: 20000,
  });
  const lines = stdout.trim().split('\n');
  assert.equal(lines[0], '* new session');
  assert.match(lines[1], /^\* joined chat on gs\d+ as ivy$/);
  assert.ok(lines.includes('<ivy> hi from the docs'), stdout);
  assert.equal(lines.at(-1), '* closed: 1000 bye');
});
