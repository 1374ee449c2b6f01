// TypeScript declarations of aphelion.js.

export declare const VERSION: string;
export declare const INIT_LENGTH: 39;
export declare const TOKEN_LENGTH: 32;
export declare const ACK_CAP: 254;

export declare const AphelionProtocol: Readonly<{ PING: 1; GAME: 2 }>;

export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  UNSUPPORTED_DATA: 1003;
  NO_STATUS: 1005;
  ABNORMAL: 1006;
  MESSAGE_TOO_BIG: 1009;
  INTERNAL_ERROR: 1011;
  TRY_AGAIN_LATER: 1013;
  INVALID_PROTOCOL: 4000;
  VERSION_TOO_OLD: 4001;
  VERSION_TOO_NEW: 4002;
  MALFORMED_INIT: 4003;
  INIT_TIMEOUT: 4004;
  UNEXPECTED_NEW_SESSION: 4005;
  MALFORMED_PACKET: 4006;
  TOO_MANY_UNACKNOWLEDGED: 4007;
  TOO_MANY_AUTH_ATTEMPTS: 4008;
  SESSION_ENDED: 4009;
  SESSION_MOVED: 4010;
}>;

export declare const AuthResult: Readonly<{
  OK: 0;
  OTHER: 1;
  AUTH_METHOD_UNSUPPORTED: 2;
  INVALID_ID: 3;
  ID_IN_USE: 4;
  NO_SERVER: 5;
  REJECTED: 6;
  TOO_MANY_ATTEMPTS: 7;
  NOT_AUTHENTICATED: 8;
}>;

export declare class AphelionError extends Error {}

/** A connection closed; subclasses name each code of the contract. */
export declare class ClosedError extends AphelionError {
  constructor(code: number, reason?: string, byClient?: boolean);
  /** The WebSocket close code (1006: no closing handshake). */
  readonly code: number;
  readonly reason: string;
  /** Whether this library closed the connection (with `code`). */
  readonly byClient: boolean;
  /** Whether the client reconnects after it (1001, 1005, 1006, 1011, 1013, 4004, 4007). */
  readonly retryable: boolean;
}
export declare class ServerShuttingDownError extends ClosedError {}
export declare class UnsupportedDataError extends ClosedError {}
export declare class ConnectionLostError extends ClosedError {}
export declare class MessageTooBigError extends ClosedError {}
export declare class InternalServerError extends ClosedError {}
export declare class NoCapacityError extends ClosedError {}
export declare class InvalidProtocolError extends ClosedError {}
export declare class VersionTooOldError extends ClosedError {}
export declare class VersionTooNewError extends ClosedError {}
export declare class MalformedInitError extends ClosedError {}
export declare class InitTimeoutError extends ClosedError {}
export declare class UnexpectedNewSessionError extends ClosedError {}
export declare class MalformedPacketError extends ClosedError {}
export declare class TooManyUnacknowledgedError extends ClosedError {}
export declare class TooManyAuthAttemptsError extends ClosedError {}
export declare class SessionEndedError extends ClosedError {}
export declare class SessionMovedError extends ClosedError {}

/** The named ClosedError subclass of a close code. */
export declare function closeError(code: number, reason?: string, byClient?: boolean): ClosedError;

export declare class AuthenticationError extends AphelionError {
  constructor(result: number, description?: string);
  readonly result: number;
  readonly resultName: string;
  readonly description: string;
}
export declare class NotConnectedError extends AphelionError {}
export declare class AckViolation extends AphelionError {}

export interface AuthenticateResponse {
  result: number;
  resultName: string;
  description: string;
}
export interface GameDetails {
  serverId: string;
  name: string;
  playerId: string;
  players: number;
  capacity: number;
  extra: Uint8Array;
}
export interface GameConfig {
  contentType: string;
  content: Uint8Array;
}
export interface Disconnect {
  code: number;
  reason: string;
}
export interface PingResult {
  /** Round-trip time in milliseconds. */
  rtt: number;
  /** Authenticated sessions on the server (the cluster) now. */
  players: number;
  /** Sessions seated in a game server now. */
  playing: number;
  /** The server clock, milliseconds since the Unix epoch. */
  serverTime: number;
  /** The server clock, nanoseconds since the Unix epoch. */
  serverTimeNs: bigint;
}

export interface WebSocketLike {
  binaryType: string;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: ArrayBuffer | string }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** 'game' (2, the default), 'ping' (1), or a number. */
  protocol?: 'game' | 'ping' | number;
  /** The protocol revision; 0 (the default) skips the check. */
  version?: number;
  /** WebSockets of the session (default 1). */
  sockets?: number;
  /** A token to resume (32 bytes or 64 hex digits), e.g. kept over a page reload. */
  token?: Uint8Array | string | null;
  /** Milliseconds before an ack-only packet (default 5; 0: end of the turn). */
  ackDelay?: number;
  /** The most one packet acknowledges (1-254, default 254). */
  ackCap?: number;
  /** Milliseconds to wait for the S2CInitPacket (default 10000; then 4004). */
  initTimeout?: number;
  /** Reconnect lost sockets with the token (default true). */
  reconnect?: boolean;
  /** First reconnect delay in ms (default 250), times `backoffFactor` (2) per attempt, at most `backoffMax` (10000). */
  backoffInitial?: number;
  backoffMax?: number;
  backoffFactor?: number;
  /** The share of each delay taken off at random (default 0.5). */
  jitter?: number;
  /** Reconnect attempts per socket before giving up (default Infinity). */
  maxAttempts?: number;
  /** Payloads kept while no socket is open (default 256). */
  queueLimit?: number;
  /** The WebSocket class: the browser's by default; in Node 20, `ws`'s. */
  WebSocket?: WebSocketConstructor;
}

export interface SessionEvent {
  token: Uint8Array;
  /** true: the session came back (seat, identity, queued messages); false: a new session. */
  resumed: boolean;
  /** The token of the session that was lost, when a new one replaced it. */
  previous: Uint8Array | null;
  /** Queued payloads dropped with the lost session. */
  dropped?: number;
}

export interface ClientEvents {
  session: (event: SessionEvent) => void;
  socketopen: (event: { index: number; token: Uint8Array; resumed: boolean }) => void;
  socketclose: (event: { index: number; error: ClosedError }) => void;
  disconnected: (event: { error: ClosedError }) => void;
  reconnecting: (event: { index: number; attempt: number; delay: number; error: ClosedError }) => void;
  close: (error: ClosedError) => void;
  authenticateResponse: (response: AuthenticateResponse) => void;
  connected: (details: GameDetails) => void;
  gameConfig: (config: GameConfig) => void;
  disconnect: (notice: Disconnect) => void;
  message: (payload: Uint8Array) => void;
}

export declare class AckState {
  constructor(cap?: number);
  cap: number;
  unacknowledged: number;
  owed: number;
  receive(packet: Uint8Array): Uint8Array;
  send(payload: Uint8Array): Uint8Array;
}

export interface Socket {
  readonly index: number;
  readonly open: boolean;
  readonly unacknowledged: number;
  readonly token: Uint8Array | null;
  readonly acks: AckState | null;
  lastUsed: number;
}

export declare class Client {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  readonly protocol: number;
  readonly options: Required<ClientOptions>;
  readonly token: Uint8Array | null;
  readonly tokenHex: string | null;
  readonly state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';
  readonly authenticated: boolean;
  readonly details: GameDetails | null;
  readonly gameConfig: GameConfig | null;
  readonly closeError: ClosedError | null;
  readonly sockets: readonly Socket[];
  readonly openSockets: readonly Socket[];
  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): () => void;
  once<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): () => void;
  off<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): void;
  connect(): Promise<Client>;
  close(code?: number, reason?: string): void;
  /** Send a game payload; returns the socket it went on, or null when queued. */
  send(payload: Uint8Array | ArrayBuffer): Socket | null;
  chooseSocket(): Socket | null;
  authenticate(id: string): Promise<GameDetails>;
  ping(): Promise<PingResult>;
}

export declare function connect(url: string, options?: ClientOptions): Promise<Client>;

export interface Field {
  number: number;
  wireType: number;
  value: number | Uint8Array;
}
export declare function encodeFields(fields: Array<[number, number | string | Uint8Array]>): Uint8Array;
export declare function decodeFields(bytes: Uint8Array): Field[];
export declare function encodeAuthenticate(id: string): Uint8Array;
export declare function decodeGatewayFields(payload: Uint8Array): {
  hasGameFields: boolean;
  authenticateResponse?: AuthenticateResponse;
  connected?: GameDetails;
  gameConfig?: GameConfig;
  disconnect?: Disconnect;
};
export declare function encodePingRequest(clientTime: number | bigint): Uint8Array;
export declare function decodePingResponse(payload: Uint8Array): {
  clientTime: bigint;
  serverTime: bigint;
  players: number;
  playing: number;
};
export declare function encodeInit(protocol: number, version?: number, token?: Uint8Array | null): Uint8Array;
export declare function tokenToHex(token: Uint8Array): string;
export declare function tokenFromHex(hex: string): Uint8Array;
