// The sans-IO parts: the init packet, the ack rules of Part 1.3, the
// gateway's protobuf fields, and the named close errors.

import assert from 'node:assert/strict';
import test from 'node:test';

import {
  AckState,
  AckViolation,
  AuthenticationError,
  AuthResult,
  ClosedError,
  CloseCode,
  ConnectionLostError,
  SessionEndedError,
  closeError,
  decodeFields,
  decodeGatewayFields,
  decodePingResponse,
  encodeAuthenticate,
  encodeFields,
  encodeInit,
  encodePingRequest,
  tokenFromHex,
  tokenToHex,
} from '../aphelion.js';

test('the init packet is 39 bytes, big endian, with or without a token', () => {
  const plain = encodeInit(2, 7);
  assert.equal(plain.length, 39);
  assert.deepEqual([...plain.subarray(0, 7)], [0, 2, 0, 0, 0, 7, 0]);
  const token = new Uint8Array(32).fill(0xab);
  const withToken = encodeInit(1, 0, token);
  assert.deepEqual([...withToken.subarray(0, 7)], [0, 1, 0, 0, 0, 0, 1]);
  assert.deepEqual(withToken.subarray(7), token);
  assert.throws(() => encodeInit(1, 0, new Uint8Array(31)), TypeError);
});

test('tokens round-trip through hex', () => {
  const token = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
  assert.deepEqual(tokenFromHex(tokenToHex(token)), token);
  assert.throws(() => tokenFromHex('abc'), TypeError);
});

test('acks count non-empty packets per direction and ride on payloads, at most the cap each', () => {
  const acks = new AckState(2);
  assert.deepEqual([...acks.send(Uint8Array.of(9))], [0, 9]);
  assert.equal(acks.unacknowledged, 1);
  assert.deepEqual([...acks.send(new Uint8Array(0))], [0]);
  assert.equal(acks.unacknowledged, 1, 'an empty payload is never counted');
  for (let i = 0; i < 5; i++) acks.receive(Uint8Array.of(0, 1));
  acks.receive(Uint8Array.of(0));
  assert.equal(acks.owed, 5, 'an ack-only packet is never owed an ack');
  assert.deepEqual([...acks.send(Uint8Array.of(1))], [2, 1]);
  assert.deepEqual([...acks.send(new Uint8Array(0))], [2]);
  assert.deepEqual([...acks.send(new Uint8Array(0))], [1]);
  assert.equal(acks.owed, 0);
  assert.deepEqual([...acks.receive(Uint8Array.of(2, 7, 8))], [7, 8]);
  assert.equal(acks.unacknowledged, 0);
});

test('a bad packet from the peer is an AckViolation: empty, ack 255, acking more than sent', () => {
  const acks = new AckState();
  assert.throws(() => acks.receive(new Uint8Array(0)), AckViolation);
  assert.throws(() => acks.receive(Uint8Array.of(255)), AckViolation);
  assert.throws(() => acks.receive(Uint8Array.of(1)), AckViolation);
  acks.send(Uint8Array.of(1));
  assert.deepEqual([...acks.receive(Uint8Array.of(1))], []);
  assert.throws(() => new AckState(255), RangeError);
});

test('authenticate is C2S field 100 holding the ID in field 1', () => {
  const bytes = encodeAuthenticate('bob');
  assert.deepEqual([...bytes], [0xa2, 0x06, 5, 0x0a, 3, 0x62, 0x6f, 0x62]);
});

test("the gateway's S2C fields decode, and other fields are the game's", () => {
  const payload = encodeFields([
    [1, encodeFields([[1, 'bob'], [2, 'hi']])],
    [101, encodeFields([[1, 0]])],
    [110, encodeFields([[1, 'gs1'], [2, 'chat'], [3, 'bob'], [4, 2], [5, 64], [15, Uint8Array.of(1, 2)]])],
    [111, encodeFields([[1, 'application/json'], [2, '{}']])],
    [112, encodeFields([[1, 3], [2, 'moved']])],
  ]);
  const gateway = decodeGatewayFields(payload);
  assert.equal(gateway.hasGameFields, true);
  assert.deepEqual(gateway.authenticateResponse, { result: 0, description: '', resultName: 'OK' });
  assert.equal(gateway.connected.serverId, 'gs1');
  assert.equal(gateway.connected.players, 2);
  assert.deepEqual([...gateway.connected.extra], [1, 2]);
  assert.equal(new TextDecoder().decode(gateway.gameConfig.content), '{}');
  assert.deepEqual(gateway.disconnect, { code: 3, reason: 'moved' });
  assert.equal(decodeGatewayFields(encodeFields([[101, encodeFields([[1, 3]])]])).hasGameFields, false);
  assert.throws(() => decodeFields(Uint8Array.of(0x0a, 5, 1)));
});

test('ping request and response carry sfixed64 times', () => {
  const request = encodePingRequest(-2);
  assert.equal(request.length, 9);
  const response = new Uint8Array(9 + 9 + 2 + 2);
  response.set(request);
  response[9] = 0x11;
  new DataView(response.buffer).setBigInt64(10, 1700000000000000000n, true);
  response.set([0x18, 5, 0x20, 3], 18);
  assert.deepEqual(decodePingResponse(response), {
    clientTime: -2n,
    serverTime: 1700000000000000000n,
    players: 5,
    playing: 3,
  });
});

test('every close code of the contract has a named error', () => {
  for (const [name, code] of Object.entries(CloseCode)) {
    const error = closeError(code, 'why');
    assert.ok(error instanceof ClosedError, name);
    assert.equal(error.code, code);
    assert.equal(error.reason, 'why');
    if (code >= 4000 || [1001, 1003, 1006, 1009, 1011, 1013].includes(code)) {
      assert.notEqual(error.constructor, ClosedError, `${name} has its own class`);
      assert.equal(error.name, error.constructor.name);
    }
  }
  assert.ok(closeError(4009) instanceof SessionEndedError);
  assert.ok(closeError(1006).retryable);
  assert.ok(!closeError(4009).retryable);
  assert.ok(closeError(1006) instanceof ConnectionLostError);
  const auth = new AuthenticationError(AuthResult.INVALID_ID, 'bad');
  assert.equal(auth.resultName, 'INVALID_ID');
});
