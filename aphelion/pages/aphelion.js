// aphelion.js: the aphelion client library for browsers and Node 20+.
//
// One ES module, no build step, no dependencies. It speaks the WebSocket
// contract of aphelion's PROTOCOL.md Part 1: the 39-byte init handshake,
// ProtobufPackets with their ack byte (1.3), sessions of several sockets
// (1.4), automatic reconnect with the session token, the ping protocol (1.5)
// and the gateway's fields of the game protocol (1.6). A game's own messages
// go in and out as raw bytes, encoded with the game's protobuf library.
//
// Copyright (c) aphelion contributors. MIT licence (see LICENSE).

export const VERSION = '0.1.0';

/** The `aphelion_protocol` of the init packet. */
export const AphelionProtocol = Object.freeze({ PING: 1, GAME: 2 });

/** Every close code of the contract (Part 1.2), and the RFC 6455 ones seen. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  INVALID_PROTOCOL: 4000,
  VERSION_TOO_OLD: 4001,
  VERSION_TOO_NEW: 4002,
  MALFORMED_INIT: 4003,
  INIT_TIMEOUT: 4004,
  UNEXPECTED_NEW_SESSION: 4005,
  MALFORMED_PACKET: 4006,
  TOO_MANY_UNACKNOWLEDGED: 4007,
  TOO_MANY_AUTH_ATTEMPTS: 4008,
  SESSION_ENDED: 4009,
  SESSION_MOVED: 4010,
});

/** `AuthenticateResponse.Result` (Part 1.6). */
export const AuthResult = Object.freeze({
  OK: 0,
  OTHER: 1,
  AUTH_METHOD_UNSUPPORTED: 2,
  INVALID_ID: 3,
  ID_IN_USE: 4,
  NO_SERVER: 5,
  REJECTED: 6,
  TOO_MANY_ATTEMPTS: 7,
  NOT_AUTHENTICATED: 8,
});

const AUTH_RESULT_NAMES = Object.fromEntries(
  Object.entries(AuthResult).map(([name, value]) => [value, name]),
);

export const INIT_LENGTH = 39;
export const TOKEN_LENGTH = 32;
export const ACK_CAP = 254;

// ------------------------------------------------------------------ errors

/** The base of every error this library raises. */
export class AphelionError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * A connection closed. `code` is the WebSocket close code (1006 when there
 * was no closing handshake), `reason` its text, `byClient` whether this
 * library closed it (then the code is the one it sent).
 */
export class ClosedError extends AphelionError {
  constructor(code, reason = '', byClient = false) {
    super(`closed with ${code}${reason ? `: ${reason}` : ''}`);
    this.code = code;
    this.reason = reason;
    this.byClient = byClient;
  }

  /** Whether a client may reconnect after it and hope to keep its session. */
  get retryable() {
    return RETRYABLE.has(this.code);
  }
}

export class ServerShuttingDownError extends ClosedError {} // 1001
export class UnsupportedDataError extends ClosedError {} // 1003
export class ConnectionLostError extends ClosedError {} // 1005, 1006
export class MessageTooBigError extends ClosedError {} // 1009
export class InternalServerError extends ClosedError {} // 1011
export class NoCapacityError extends ClosedError {} // 1013
export class InvalidProtocolError extends ClosedError {} // 4000
export class VersionTooOldError extends ClosedError {} // 4001
export class VersionTooNewError extends ClosedError {} // 4002
export class MalformedInitError extends ClosedError {} // 4003
export class InitTimeoutError extends ClosedError {} // 4004
export class UnexpectedNewSessionError extends ClosedError {} // 4005
export class MalformedPacketError extends ClosedError {} // 4006
export class TooManyUnacknowledgedError extends ClosedError {} // 4007
export class TooManyAuthAttemptsError extends ClosedError {} // 4008
export class SessionEndedError extends ClosedError {} // 4009
export class SessionMovedError extends ClosedError {} // 4010

const CLOSE_ERRORS = new Map([
  [1001, ServerShuttingDownError],
  [1003, UnsupportedDataError],
  [1005, ConnectionLostError],
  [1006, ConnectionLostError],
  [1009, MessageTooBigError],
  [1011, InternalServerError],
  [1013, NoCapacityError],
  [4000, InvalidProtocolError],
  [4001, VersionTooOldError],
  [4002, VersionTooNewError],
  [4003, MalformedInitError],
  [4004, InitTimeoutError],
  [4005, UnexpectedNewSessionError],
  [4006, MalformedPacketError],
  [4007, TooManyUnacknowledgedError],
  [4008, TooManyAuthAttemptsError],
  [4009, SessionEndedError],
  [4010, SessionMovedError],
]);

// Closes after which a socket reconnects with its token: the network, a
// server restart or overload, or a slow handshake. Every other code ends the
// session on purpose (4009, 4010), or says the client is wrong.
const RETRYABLE = new Set([1001, 1005, 1006, 1011, 1013, 4004, 4007]);

/** The named {@link ClosedError} subclass of a close code. */
export function closeError(code, reason = '', byClient = false) {
  const Class = CLOSE_ERRORS.get(code) ?? ClosedError;
  return new Class(code, reason, byClient);
}

/** `authenticate` was answered with another result than OK. */
export class AuthenticationError extends AphelionError {
  constructor(result, description = '') {
    const name = AUTH_RESULT_NAMES[result] ?? String(result);
    super(`authentication failed: ${name}${description ? `: ${description}` : ''}`);
    this.result = result;
    this.resultName = name;
    this.description = description;
  }
}

/** A payload cannot be sent: the client is closed or its queue is full. */
export class NotConnectedError extends AphelionError {}

/** The peer broke the ack rules of Part 1.3 (the socket closes with 4006). */
export class AckViolation extends AphelionError {}

// --------------------------------------------------------------- protobuf
//
// Just enough protobuf for the gateway's fields (100-199) and the ping
// protocol; a game encodes its own fields with its own protobuf library.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

function varintLength(n) {
  let length = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    length += 1;
  }
  return length;
}

function writeVarint(out, pos, n) {
  while (n >= 0x80) {
    out[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  return pos;
}

/** Encode `fields`, a list of `[number, value]`: a Uint8Array (bytes, length-delimited), a string, or a non-negative integer (varint). */
export function encodeFields(fields) {
  const parts = [];
  let length = 0;
  for (const [number, value] of fields) {
    if (typeof value === 'number') {
      const tag = number * 8;
      parts.push([tag, value, null]);
      length += varintLength(tag) + varintLength(value);
    } else {
      const bytes = typeof value === 'string' ? textEncoder.encode(value) : value;
      const tag = number * 8 + 2;
      parts.push([tag, bytes.length, bytes]);
      length += varintLength(tag) + varintLength(bytes.length) + bytes.length;
    }
  }
  const out = new Uint8Array(length);
  let pos = 0;
  for (const [tag, n, bytes] of parts) {
    pos = writeVarint(out, pos, tag);
    pos = writeVarint(out, pos, n);
    if (bytes !== null) {
      out.set(bytes, pos);
      pos += bytes.length;
    }
  }
  return out;
}

/**
 * Decode the top level of a protobuf message: a list of
 * `{number, wireType, value}` (a Number for varints, a Uint8Array for
 * length-delimited and fixed fields). Throws an Error on malformed bytes.
 */
export function decodeFields(bytes) {
  const fields = [];
  let pos = 0;
  const readVarint = () => {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= bytes.length) throw new Error('truncated varint');
      const b = bytes[pos++];
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
    throw new Error('varint too long');
  };
  const take = (n) => {
    if (pos + n > bytes.length) throw new Error('truncated field');
    const value = bytes.subarray(pos, pos + n);
    pos += n;
    return value;
  };
  while (pos < bytes.length) {
    const tag = readVarint();
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (number === 0) throw new Error('field number 0');
    let value;
    if (wireType === 0) value = readVarint();
    else if (wireType === 1) value = take(8);
    else if (wireType === 2) value = take(readVarint());
    else if (wireType === 5) value = take(4);
    else throw new Error(`unsupported wire type ${wireType}`);
    fields.push({ number, wireType, value });
  }
  return fields;
}

function fieldsOf(bytes, shape) {
  // `shape` maps a field number to [name, kind]; kind is 'string', 'bytes'
  // or 'uint'. Unknown fields are skipped, as protobuf does.
  const result = {};
  for (const [, [name, kind]] of Object.entries(shape)) {
    result[name] = kind === 'uint' ? 0 : kind === 'string' ? '' : new Uint8Array(0);
  }
  for (const { number, wireType, value } of decodeFields(bytes)) {
    const entry = shape[number];
    if (entry === undefined) continue;
    const [name, kind] = entry;
    if (kind === 'uint' && wireType === 0) result[name] = value;
    else if (kind === 'string' && wireType === 2) result[name] = textDecoder.decode(value);
    else if (kind === 'bytes' && wireType === 2) result[name] = value.slice();
    else throw new Error(`field ${number} has wire type ${wireType}`);
  }
  return result;
}

const AUTH_RESPONSE = { 1: ['result', 'uint'], 2: ['description', 'string'] };
const GAME_DETAILS = {
  1: ['serverId', 'string'],
  2: ['name', 'string'],
  3: ['playerId', 'string'],
  4: ['players', 'uint'],
  5: ['capacity', 'uint'],
  15: ['extra', 'bytes'],
};
const GAME_CONFIG = { 1: ['contentType', 'string'], 2: ['content', 'bytes'] };
const DISCONNECT = { 1: ['code', 'uint'], 2: ['reason', 'string'] };

/** `C2S{authenticate{id}}`: field 100 holding field 1. */
export function encodeAuthenticate(id) {
  return encodeFields([[100, encodeFields([[1, id]])]]);
}

/**
 * The gateway's fields of one `S2C` payload: `{authenticateResponse,
 * connected, gameConfig, disconnect}` (each absent when not sent) and
 * `hasGameFields`, whether any other field is there. Throws on malformed
 * bytes.
 */
export function decodeGatewayFields(payload) {
  const result = { hasGameFields: false };
  for (const { number, wireType, value } of decodeFields(payload)) {
    if (number < 100 || number > 199) {
      result.hasGameFields = true;
      continue;
    }
    if (wireType !== 2) continue;
    if (number === 101) {
      const response = fieldsOf(value, AUTH_RESPONSE);
      response.resultName = AUTH_RESULT_NAMES[response.result] ?? String(response.result);
      result.authenticateResponse = response;
    } else if (number === 110) result.connected = fieldsOf(value, GAME_DETAILS);
    else if (number === 111) result.gameConfig = fieldsOf(value, GAME_CONFIG);
    else if (number === 112) result.disconnect = fieldsOf(value, DISCONNECT);
  }
  return result;
}

/** `PingRequest{client_time}` (sfixed64, field 1). */
export function encodePingRequest(clientTime) {
  const out = new Uint8Array(9);
  out[0] = 0x09;
  new DataView(out.buffer).setBigInt64(1, BigInt(clientTime), true);
  return out;
}

/** `PingResponse` as `{clientTime, serverTime (BigInt ns), players, playing}`. */
export function decodePingResponse(payload) {
  const result = { clientTime: 0n, serverTime: 0n, players: 0, playing: 0 };
  for (const { number, wireType, value } of decodeFields(payload)) {
    if ((number === 1 || number === 2) && wireType === 1) {
      const time = new DataView(value.buffer, value.byteOffset, 8).getBigInt64(0, true);
      if (number === 1) result.clientTime = time;
      else result.serverTime = time;
    } else if (number === 3 && wireType === 0) result.players = value;
    else if (number === 4 && wireType === 0) result.playing = value;
  }
  return result;
}

// ------------------------------------------------------------ handshake

/** The 39-byte C2SInitPacket (Part 1.2). */
export function encodeInit(protocol, version = 0, token = null) {
  const out = new Uint8Array(INIT_LENGTH);
  const view = new DataView(out.buffer);
  view.setInt16(0, protocol);
  view.setInt32(2, version);
  if (token !== null) {
    if (token.length !== TOKEN_LENGTH) throw new TypeError('a token is 32 bytes');
    out[6] = 1;
    out.set(token, 7);
  }
  return out;
}

/** A token as 64 hex digits. */
export function tokenToHex(token) {
  return Array.from(token, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A token from 64 hex digits. */
export function tokenFromHex(hex) {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new TypeError('a token is 64 hex digits');
  const out = new Uint8Array(TOKEN_LENGTH);
  for (let i = 0; i < TOKEN_LENGTH; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function sameBytes(a, b) {
  if (a === null || b === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ------------------------------------------------------------------ acks

/**
 * The acknowledgement counts of one connection (Part 1.3), with no I/O:
 * `unacknowledged` is ours (sent, non-empty, not acked yet), `owed` is
 * theirs (received, non-empty, not acked yet).
 */
export class AckState {
  constructor(cap = ACK_CAP) {
    if (!(cap >= 1 && cap <= 254)) throw new RangeError('the ack cap is 1-254');
    this.cap = cap;
    this.unacknowledged = 0;
    this.owed = 0;
  }

  /** Take one received packet; return its payload or throw AckViolation. */
  receive(packet) {
    if (packet.length === 0) throw new AckViolation('empty packet');
    const ack = packet[0];
    if (ack === 255) throw new AckViolation('ack 255 is reserved');
    if (ack > this.unacknowledged) {
      throw new AckViolation(`ack ${ack} > ${this.unacknowledged} unacknowledged`);
    }
    this.unacknowledged -= ack;
    const payload = packet.subarray(1);
    if (payload.length > 0) this.owed += 1;
    return payload;
  }

  /** The packet that carries `payload` and as much of the owed ack as fits. */
  send(payload) {
    const ack = Math.min(this.owed, this.cap);
    this.owed -= ack;
    const packet = new Uint8Array(payload.length + 1);
    packet[0] = ack;
    packet.set(payload, 1);
    if (payload.length > 0) this.unacknowledged += 1;
    return packet;
  }
}

// ----------------------------------------------------------------- events

class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Call `listener` for each `event`; returns a function that stops it. */
  on(event, listener) {
    let set = this._listeners.get(event);
    if (set === undefined) this._listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  /** Stop calling `listener` for `event`. */
  off(event, listener) {
    this._listeners.get(event)?.delete(listener);
  }

  /** Call `listener` for the next `event` only. */
  once(event, listener) {
    const off = this.on(event, (...args) => {
      off();
      listener(...args);
    });
    return off;
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (error) {
        // A listener's bug must not break the connection: report it the way
        // an uncaught exception would be, outside this call stack.
        setTimeout(() => {
          throw error;
        }, 0);
      }
    }
  }
}

// ----------------------------------------------------------------- socket

let nextClientTime = 1;

/** One WebSocket of a session. Made and owned by {@link Client}. */
class Socket {
  constructor(client, index) {
    this.client = client;
    this.index = index;
    this.ws = null;
    this.acks = null;
    this.handshaken = false;
    this.lastUsed = 0;
    this.attempt = 0;
    this.token = null;
    this.presented = null;
    this.pings = new Map();
    this._ackTimer = null;
    this._ackSoon = false;
    this._initTimer = null;
    this._retryTimer = null;
    this._closing = null;
    this._handshake = null;
  }

  get open() {
    return this.handshaken && this._closing === null;
  }

  get unacknowledged() {
    return this.acks === null ? 0 : this.acks.unacknowledged;
  }

  /** Open the WebSocket and do the init handshake, presenting `token`. */
  connect(token) {
    const client = this.client;
    const WebSocketClass = client.options.WebSocket;
    this.acks = new AckState(client.options.ackCap);
    this.handshaken = false;
    this._closing = null;
    this.presented = token;
    this.token = null;
    let ws;
    const done = new Promise((resolve, reject) => {
      this._handshake = { resolve, reject };
    });
    try {
      ws = new WebSocketClass(client.url);
    } catch (error) {
      this._handshake = null;
      return Promise.reject(error);
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this._initTimer = setTimeout(() => {
        this._initTimer = null;
        this.close(CloseCode.INIT_TIMEOUT, 'no S2CInitPacket in time');
      }, client.options.initTimeout);
      ws.send(encodeInit(client.protocol, client.options.version, token));
    };
    ws.onmessage = (event) => {
      if (this.ws === ws) this._message(event.data);
    };
    ws.onclose = (event) => {
      if (this.ws === ws) this._closed(event.code, event.reason);
    };
    // An error is always followed by a close event, which tells the rest.
    ws.onerror = () => {};
    return done;
  }

  _message(data) {
    if (this._closing !== null) return;
    if (typeof data === 'string') {
      this.close(CloseCode.UNSUPPORTED_DATA, 'text frames are not allowed');
      return;
    }
    const bytes = new Uint8Array(data);
    if (!this.handshaken) {
      clearTimeout(this._initTimer);
      this._initTimer = null;
      if (bytes.length !== TOKEN_LENGTH) {
        this.close(CloseCode.MALFORMED_INIT, `S2CInitPacket must be ${TOKEN_LENGTH} bytes`);
        return;
      }
      this.token = bytes.slice();
      this.handshaken = true;
      this.attempt = 0;
      const handshake = this._handshake;
      this._handshake = null;
      handshake?.resolve(this);
      return;
    }
    let payload;
    try {
      payload = this.acks.receive(bytes);
    } catch (error) {
      this.close(CloseCode.MALFORMED_PACKET, error.message);
      return;
    }
    if (payload.length === 0) return;
    this._scheduleAck();
    this.client._payload(this, payload);
  }

  _scheduleAck() {
    const acks = this.acks;
    if (acks.owed >= acks.cap || this.client.options.ackDelay <= 0) {
      // At the cap (or with no delay), at the end of this turn.
      if (!this._ackSoon) {
        this._ackSoon = true;
        queueMicrotask(() => {
          this._ackSoon = false;
          this._flushAcks();
        });
      }
    } else if (this._ackTimer === null) {
      this._ackTimer = setTimeout(() => {
        this._ackTimer = null;
        this._flushAcks();
      }, this.client.options.ackDelay);
    }
  }

  _flushAcks() {
    if (this._closing !== null || this.ws === null) return;
    while (this.acks.owed > 0) this.ws.send(this.acks.send(EMPTY));
  }

  /** Send one payload, with the pending ack. */
  send(payload) {
    const packet = this.acks.send(payload);
    this.ws.send(packet);
    if (this.acks.owed === 0 && this._ackTimer !== null) {
      clearTimeout(this._ackTimer);
      this._ackTimer = null;
    }
  }

  /** Close with `code` (one a browser may send: 1000, 3000-4999). */
  close(code, reason) {
    if (this._closing !== null || this.ws === null) return;
    reason = shortReason(reason);
    this._closing = { code, reason };
    this._stopTimers();
    try {
      this.ws.close(code, reason);
    } catch {
      // A browser refuses codes outside 1000 and 3000-4999 (1003 here).
      this.ws.close(1000, reason);
    }
  }

  _stopTimers() {
    clearTimeout(this._ackTimer);
    clearTimeout(this._initTimer);
    this._ackTimer = this._initTimer = null;
  }

  _closed(code, reason) {
    this._stopTimers();
    const mine = this._closing;
    this.ws = null;
    this.handshaken = false;
    this._closing = null;
    const error =
      mine !== null && (code === mine.code || code === CloseCode.NO_STATUS || code === CloseCode.ABNORMAL)
        ? closeError(mine.code, mine.reason, true)
        : closeError(code || CloseCode.ABNORMAL, reason || '');
    for (const pending of this.pings.values()) pending.reject(error);
    this.pings.clear();
    const handshake = this._handshake;
    this._handshake = null;
    if (handshake !== null) handshake.reject(error);
    else this.client._socketClosed(this, error);
  }
}

const EMPTY = new Uint8Array(0);

// A close frame's reason is at most 123 bytes of UTF-8.
function shortReason(reason) {
  let text = String(reason ?? '');
  while (textEncoder.encode(text).length > 123) text = text.slice(0, -1);
  return text;
}

// ----------------------------------------------------------------- client

const DEFAULTS = Object.freeze({
  protocol: AphelionProtocol.GAME,
  version: 0,
  sockets: 1,
  token: null,
  ackDelay: 5,
  ackCap: ACK_CAP,
  initTimeout: 10000,
  reconnect: true,
  backoffInitial: 250,
  backoffMax: 10000,
  backoffFactor: 2,
  jitter: 0.5,
  maxAttempts: Infinity,
  queueLimit: 256,
  WebSocket: undefined,
});

/**
 * One aphelion session over `sockets` WebSockets: sends each payload on the
 * open socket with the fewest unacknowledged packets (on a tie, the one
 * used least recently), reconnects a lost socket with its token, and tells
 * the application what happened through events (see aphelion.d.ts).
 */
export class Client extends Emitter {
  constructor(url, options = {}) {
    super();
    const merged = { ...DEFAULTS, ...options };
    if (merged.WebSocket === undefined) merged.WebSocket = globalThis.WebSocket;
    if (typeof merged.WebSocket !== 'function') {
      throw new TypeError(
        'no WebSocket: pass one as the WebSocket option (in Node 20: `import WebSocket from "ws"`)',
      );
    }
    if (!(Number.isInteger(merged.sockets) && merged.sockets >= 1)) {
      throw new RangeError('sockets must be a positive integer');
    }
    const protocol = merged.protocol;
    this.protocol =
      protocol === 'ping' ? AphelionProtocol.PING : protocol === 'game' ? AphelionProtocol.GAME : protocol;
    this.url = url;
    this.options = merged;
    this.token =
      typeof merged.token === 'string' ? tokenFromHex(merged.token) : merged.token ? merged.token.slice() : null;
    /** 'idle', 'connecting', 'open', 'reconnecting' or 'closed'. */
    this.state = 'idle';
    this.authenticated = false;
    /** The `GameDetails` of the seat, or null. */
    this.details = null;
    /** The last `GameConfig`, or null. */
    this.gameConfig = null;
    this.closeError = null;
    this.sockets = [];
    this._queue = [];
    this._tick = 0;
    this._pinned = null;
    this._auth = null;
    this._connecting = null;
  }

  /** The token as hex, or null (keep it to resume after a page reload). */
  get tokenHex() {
    return this.token === null ? null : tokenToHex(this.token);
  }

  /** The handshaken sockets. */
  get openSockets() {
    return this.sockets.filter((socket) => socket.open);
  }

  /**
   * Open the session's sockets: the first one makes or resumes the session,
   * the rest join it. Resolves with this client once every socket tried
   * (the first one succeeded; any other that failed is being retried);
   * rejects with a named {@link ClosedError} if the first one failed.
   */
  connect() {
    if (this._connecting !== null) return this._connecting;
    if (this.state !== 'idle') return Promise.reject(new AphelionError(`client is ${this.state}`));
    this.state = 'connecting';
    this._connecting = this._connectAll();
    return this._connecting;
  }

  async _connectAll() {
    const first = new Socket(this, 0);
    this.sockets.push(first);
    try {
      await first.connect(this.token);
    } catch (error) {
      this._finish(error);
      throw error;
    }
    if (this.state === 'closed') throw this.closeError;
    this._handshaken(first);
    const rest = [];
    for (let i = 1; i < this.options.sockets; i++) {
      const socket = new Socket(this, i);
      this.sockets.push(socket);
      rest.push(this._open(socket));
    }
    await Promise.all(rest);
    if (this.state === 'closed') throw this.closeError;
    return this;
  }

  async _open(socket) {
    try {
      await socket.connect(this.token);
    } catch (error) {
      this._socketClosed(socket, error);
      return;
    }
    this._handshaken(socket);
  }

  _handshaken(socket) {
    if (this.state === 'closed') {
      socket.close(CloseCode.NORMAL, 'client closed');
      return;
    }
    const presented = socket.presented;
    const token = socket.token;
    const resumed = presented !== null && sameBytes(presented, token);
    const wasDown = this.state !== 'open';
    this._emit('socketopen', { index: socket.index, token, resumed });
    if (presented !== null && !resumed) {
      // The session we presented is gone: this socket holds a new one, and
      // the others still on the old one go (4005) and come back to it.
      const previous = this.token;
      this.token = token.slice();
      for (const other of this.sockets) {
        if (other !== socket && other.open && sameBytes(other.token, presented)) {
          other.close(CloseCode.UNEXPECTED_NEW_SESSION, 'the server made a new session unexpectedly');
        }
      }
      this._newSession(previous);
    } else if (this.token === null) {
      this.token = token.slice();
      this.state = 'open';
      this._emit('session', { token: this.token, resumed: false, previous: null });
    } else if (wasDown) {
      this.state = 'open';
      this._emit('session', { token: this.token, resumed: true, previous: null });
    }
    this.state = 'open';
    this._flush();
  }

  _newSession(previous) {
    this.authenticated = false;
    this.details = null;
    this.gameConfig = null;
    const dropped = this._queue.length;
    this._queue = [];
    this.state = 'open';
    const auth = this._auth;
    this._auth = null;
    auth?.reject(new AphelionError('the session was lost before authentication finished'));
    this._emit('session', { token: this.token, resumed: false, previous, dropped });
  }

  _socketClosed(socket, error) {
    this._emit('socketclose', { index: socket.index, error });
    if (this.state === 'closed') return;
    if (error.code === CloseCode.UNEXPECTED_NEW_SESSION && error.byClient) {
      // Closed by us for the new session: join it at once.
      this._open(socket);
      return;
    }
    if (!this.options.reconnect || !error.retryable) {
      this._finish(error);
      return;
    }
    if (this.openSockets.length === 0 && this.state === 'open') {
      this.state = 'reconnecting';
      this._emit('disconnected', { error });
    }
    this._retry(socket, error);
  }

  _retry(socket, error) {
    const options = this.options;
    if (socket.attempt >= options.maxAttempts) {
      if (this.openSockets.length === 0) this._finish(error);
      return;
    }
    const base = Math.min(options.backoffMax, options.backoffInitial * options.backoffFactor ** socket.attempt);
    // Jitter spreads the clients a server restart dropped all at once.
    const delay = Math.round(base * (1 - options.jitter * Math.random()));
    socket.attempt += 1;
    this._emit('reconnecting', { index: socket.index, attempt: socket.attempt, delay, error });
    socket._retryTimer = setTimeout(() => {
      socket._retryTimer = null;
      if (this.state !== 'closed') this._open(socket);
    }, delay);
  }

  /** Close every socket and end the session's life in this client. */
  close(code = CloseCode.NORMAL, reason = 'bye') {
    if (this.state === 'closed') return;
    this._finish(closeError(code, reason, true), code, reason);
  }

  _finish(error, code = CloseCode.NORMAL, reason = 'closing') {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeError = error;
    for (const socket of this.sockets) {
      clearTimeout(socket._retryTimer);
      socket._retryTimer = null;
      socket.close(code, reason);
    }
    const auth = this._auth;
    this._auth = null;
    auth?.reject(error);
    this._queue = [];
    this._emit('close', error);
  }

  /** The socket a payload goes on now, or null when none is open. */
  chooseSocket() {
    const pinned = this._pinned;
    if (pinned !== null && pinned.open) return pinned;
    let best = null;
    for (const socket of this.sockets) {
      if (!socket.open) continue;
      if (
        best === null ||
        socket.unacknowledged < best.unacknowledged ||
        (socket.unacknowledged === best.unacknowledged && socket.lastUsed < best.lastUsed)
      ) {
        best = socket;
      }
    }
    if (best !== null) {
      // What is sent in one turn goes on one socket, in order.
      this._pinned = best;
      queueMicrotask(() => {
        this._pinned = null;
      });
    }
    return best;
  }

  /**
   * Send one payload (a Uint8Array: a game's encoded `C2S`). While no
   * socket is open it is queued (up to `queueLimit`) and sent on resume;
   * a new session drops the queue.
   */
  send(payload) {
    if (this.state === 'closed') throw new NotConnectedError('the client is closed');
    if (!(payload instanceof Uint8Array)) payload = new Uint8Array(payload);
    if (payload.length === 0) throw new TypeError('a payload is not empty');
    const socket = this.chooseSocket();
    if (socket === null) {
      if (this._queue.length >= this.options.queueLimit) {
        throw new NotConnectedError(`not connected and ${this.options.queueLimit} payloads are queued`);
      }
      this._queue.push(payload);
      return null;
    }
    socket.lastUsed = ++this._tick;
    socket.send(payload);
    return socket;
  }

  _flush() {
    const queue = this._queue;
    this._queue = [];
    for (const payload of queue) this.send(payload);
  }

  /**
   * Authenticate with `id` (the game protocol). Resolves with the seat's
   * `GameDetails` once `connected`, rejects with an
   * {@link AuthenticationError} (or the close that ended the session).
   */
  authenticate(id) {
    if (this.protocol !== AphelionProtocol.GAME) {
      return Promise.reject(new AphelionError('authenticate is for the game protocol'));
    }
    if (this._auth !== null) return Promise.reject(new AphelionError('already authenticating'));
    return new Promise((resolve, reject) => {
      this._auth = { resolve, reject, ok: false };
      try {
        this.send(encodeAuthenticate(id));
      } catch (error) {
        this._auth = null;
        reject(error);
      }
    });
  }

  /**
   * One round trip of the ping protocol: resolves with `{rtt (ms),
   * players, playing, serverTime (ms since the epoch), serverTimeNs}`.
   */
  ping() {
    if (this.protocol !== AphelionProtocol.PING) {
      return Promise.reject(new AphelionError('ping is for the ping protocol'));
    }
    const socket = this.chooseSocket();
    if (socket === null) return Promise.reject(new NotConnectedError('not connected'));
    const clientTime = nextClientTime++;
    const started = performance.now();
    return new Promise((resolve, reject) => {
      socket.pings.set(BigInt(clientTime), {
        reject,
        resolve: (response) =>
          resolve({
            rtt: performance.now() - started,
            players: response.players,
            playing: response.playing,
            serverTime: Number(response.serverTime / 1000000n),
            serverTimeNs: response.serverTime,
          }),
      });
      socket.lastUsed = ++this._tick;
      socket.send(encodePingRequest(clientTime));
    });
  }

  _payload(socket, payload) {
    if (this.protocol === AphelionProtocol.PING) {
      let response;
      try {
        response = decodePingResponse(payload);
      } catch {
        socket.close(CloseCode.MALFORMED_PACKET, 'PingResponse does not parse');
        return;
      }
      const pending = socket.pings.get(response.clientTime);
      if (pending !== undefined) {
        socket.pings.delete(response.clientTime);
        pending.resolve(response);
      }
      return;
    }
    let gateway;
    try {
      gateway = decodeGatewayFields(payload);
    } catch {
      // Not protobuf: the game's business, if anyone's.
      this._emit('message', payload);
      return;
    }
    const response = gateway.authenticateResponse;
    if (response !== undefined) {
      this._emit('authenticateResponse', response);
      if (response.result === AuthResult.OK) {
        this.authenticated = true;
        if (this._auth !== null) this._auth.ok = true;
      } else if (this._auth !== null) {
        const auth = this._auth;
        this._auth = null;
        auth.reject(new AuthenticationError(response.result, response.description));
      }
    }
    if (gateway.connected !== undefined) {
      this.authenticated = true;
      this.details = gateway.connected;
      this._emit('connected', gateway.connected);
      const auth = this._auth;
      if (auth !== null && auth.ok) {
        this._auth = null;
        auth.resolve(gateway.connected);
      }
    }
    if (gateway.gameConfig !== undefined) {
      this.gameConfig = gateway.gameConfig;
      this._emit('gameConfig', gateway.gameConfig);
    }
    if (gateway.disconnect !== undefined) {
      this.details = null;
      this._emit('disconnect', gateway.disconnect);
    }
    if (gateway.hasGameFields) this._emit('message', payload);
  }
}

/** Make a {@link Client} and connect it: resolves with it once open. */
export function connect(url, options = {}) {
  return new Client(url, options).connect();
}
