#!/usr/bin/env node
// The smallest aphelion game client, in Node: join the chat game, say one
// line, print what the room says for a second, leave.
//
//   node examples/chat-node.mjs ws://127.0.0.1:PORT/aphelion alice "hello"
//
// In a browser it is the same code without the `ws` import (see
// docs/browser.rst).
import { fileURLToPath } from 'node:url';

import protobuf from 'protobufjs';
import WebSocket from 'ws';

import { Client } from '../aphelion.js';

const [url, id, text] = process.argv.slice(2);
const root = await protobuf.load(fileURLToPath(new URL('chat.proto', import.meta.url)));
const C2S = root.lookupType('chat.C2S');
const S2C = root.lookupType('chat.S2C');

const client = new Client(url, { WebSocket, sockets: 2 });
client.on('message', (payload) => {
  const { said } = S2C.decode(payload);
  if (said) console.log(`<${said.playerId}> ${said.text}`);
});
client.on('session', ({ resumed }) => console.log(resumed ? '* resumed' : '* new session'));
client.on('close', (error) => console.log(`* closed: ${error.code} ${error.reason}`));

await client.connect();
const details = await client.authenticate(id);
console.log(`* joined ${details.name} on ${details.serverId} as ${details.playerId}`);
client.send(C2S.encode({ say: { text } }).finish());
await new Promise((resolve) => setTimeout(resolve, 1000));
client.close();
