// The audio-rooms client SDK (index.js): the public API, typed. The wire messages come from
// protocol.d.ts, which is generated from the server's message models (docs/sdk.md).

import type {
  ErrorCode, Participant, ServerMessage, ServerMessageMap,
} from "./protocol";

export type * from "./protocol";

/** A REST call the server refused: `code` is its stable error code, `status` the HTTP status. */
export class ApiError extends Error {
  readonly code: ErrorCode | "network_error";
  readonly status: number;
}

/** A room action the server refused (`code` from its `error`), or that got no answer. */
export class RoomError extends Error {
  readonly code: ErrorCode | "not_connected" | "timeout" | string;
  readonly details: { [key: string]: unknown } | null;
}

/** `GET /api/config`. */
export interface ServerConfig {
  server_name: string;
  slots: number;
  /** Whether hosts here may open rooms to other deployments. */
  federation: boolean;
  ice_servers: Array<{ urls: string | string[] }>;
  max_message_bytes: number;
  locales: string[];
  terminal_close_codes: { [code: string]: string };
  reactions: Array<{ name: string; emoji: string }>;
  limits: {
    handle_pattern: string; display_name_max: number; password_min: number;
    password_max: number; title_max: number; description_max: number;
  };
}

/** An account or guest (`user` of the REST API). */
export interface User {
  id: string;
  display_name: string;
  is_guest: boolean;
  locale: string;
  handle?: string;
}

/** `ROOM` of the REST API: a room's record, before joining. */
export interface RoomRecord {
  id: string;
  title: string;
  description: string;
  visibility: "open" | "social" | "closed";
  host: { id: string; display_name: string };
  status: "scheduled" | "live" | "ended";
  scheduled_start: string | null;
  started_at: string | null;
  ended_at: string | null;
  speakers: Array<{ user_id: string; display_name: string; role: Participant["role"] }>;
  speaker_count: number;
  listener_count: number;
}

/** The room as the client holds it (room-state.js), rebuilt from the welcome and the deltas. */
export interface RoomState {
  id: string;
  title: string;
  description: string;
  visibility: "open" | "social" | "closed";
  hostId: string;
  status: "live" | "ended";
  version: number;
  /** Your user id. */
  me: string;
  meIsGuest: boolean;
  /** The stage, yourself, and for moderators the listeners with a hand up or an invitation. */
  participants: Map<string, Participant>;
  handQueue: string[];
  invited: boolean;
  accountsOnly: boolean;
  /** Users of other deployments may listen, through their own server. */
  interconnected: boolean;
  audience: {
    /** Listeners in the room now. */
    count: number;
    /** A few faces. */
    sample: Participant[];
    /** The audience list as far as it has been read, in join order. */
    listeners: Participant[];
    /** Cursor of the next page; null once read to the end. */
    next: string | null;
  };
  ended: string | null;
}

export type ConnectionStateName = "idle" | "connecting" | "joined" | "reconnecting" | "closed";
export type MediaPath = "connecting" | "webrtc" | "relay";

/** A sentence the user should be told: a key of the web client's catalogues (i18n/*.json). */
export interface Notice {
  key: string;
  params: { [name: string]: string };
  urgent: boolean;
}

/** Events of a Room besides the server's messages (which are events by their `type`). */
export interface RoomEvents {
  message: ServerMessage;
  state: RoomState;
  joined: Participant["role"];
  connection: ConnectionStateName;
  media: MediaPath;
  notice: Notice;
  invitation: boolean;
  closed: { reason: string };
  /** Something went wrong on this side (`media_error`: an offer, an answer or the relay). */
  failure: { code: string };
  autoplay_blocked: undefined;
}

export type RoomEventMap = ServerMessageMap & RoomEvents;

/** Connect to the server this page was served by, with the session cookie or `token`. */
export function connect(options?: { token?: string | null }): Promise<Client>;

export class Client {
  /** `GET /api/config`, or null when it could not be read. */
  readonly config: ServerConfig | null;
  /** Who you are; null until signed in or made a guest. */
  user: User | null;
  /** The session token, when one was handed to this page (null when only a cookie holds it). */
  readonly token: string | null;
  guest(displayName: string): Promise<User>;
  signIn(handle: string, password: string): Promise<User>;
  signUp(fields: { handle: string; display_name: string; password: string;
    locale?: "fa" | "en" }): Promise<User>;
  signOut(): Promise<void>;
  rooms(status?: "live" | "scheduled", cursor?: string | null):
    Promise<{ rooms: RoomRecord[]; next_cursor: string | null }>;
  getRoom(roomId: string, invite?: string | null): Promise<RoomRecord>;
  createRoom(fields: { title: string; description?: string;
    visibility?: "open" | "social" | "closed"; scheduled_start?: string }): Promise<RoomRecord>;
  /**
   * Join and listen; resolves at the server's `welcome`, rejects with a RoomError whose code
   * says why the server refused. `audio`: where the room's <audio> elements go.
   */
  join(roomId: string, options?: { invite?: string | null; audio?: HTMLElement | null }):
    Promise<Room>;
}

/** The answer to an action: the room version it produced. */
export type Ack = ServerMessageMap["ack"];

export class Room {
  readonly roomId: string;
  readonly state: RoomState | null;
  readonly me: Participant | null;
  readonly role: Participant["role"] | null;
  readonly connectionState: ConnectionStateName;
  readonly media: MediaPath;
  readonly closedReason: string | null;

  on<K extends keyof RoomEventMap>(name: K, handler: (value: RoomEventMap[K]) => void):
    () => void;

  /** Lift the browser's autoplay block: call from a click after `autoplay_blocked`. */
  listen(): void;
  leave(): void;
  refreshAudience(): void;
  loadMoreAudience(): void;

  raiseHand(): Promise<Ack>;
  lowerHand(userId?: string | null): Promise<Ack>;
  acceptInvitation(): Promise<Ack>;
  declineInvitation(): Promise<Ack>;
  /** Unmute (true) or mute (false) yourself on stage. */
  setMicrophone(on: boolean): Promise<Ack>;
  react(emoji: string): Promise<Ack>;

  inviteToSpeak(userId: string): Promise<Ack>;
  moveToAudience(userId: string): Promise<Ack>;
  makeModerator(userId: string): Promise<Ack>;
  unmakeModerator(userId: string): Promise<Ack>;
  mute(userId: string): Promise<Ack>;
  unmute(userId: string): Promise<Ack>;
  remove(userId: string): Promise<Ack>;
  ban(userId: string): Promise<Ack>;
  endRoom(): Promise<Ack>;
  setAccountsOnly(enabled: boolean): Promise<Ack>;
  /** Host only: open the room to users of other deployments (docs/federation.md). */
  setInterconnected(enabled: boolean): Promise<Ack>;
  rotateInvite(): Promise<Ack>;
  inviteLink(rotate?: boolean): Promise<string>;
}

/** The REST API, one function per endpoint (api.js); the Client wraps the common ones. */
export namespace api {
  function token(): string | null;
  function useToken(value: string | null): void;
  function getConfig(): Promise<ServerConfig>;
  function me(): Promise<User | null>;
  function guest(displayName: string): Promise<{ user: User; token: string }>;
  function signIn(fields: { handle: string; password: string }):
    Promise<{ user: User; token: string }>;
  function signUp(fields: { handle: string; display_name: string; password: string;
    locale?: "fa" | "en" }): Promise<{ user: User; token: string }>;
  function signOut(): Promise<void>;
  function listRooms(status: "live" | "scheduled", cursor?: string | null):
    Promise<{ rooms: RoomRecord[]; next_cursor: string | null }>;
  function getRoom(id: string, invite?: string | null): Promise<RoomRecord>;
  function createRoom(fields: { title: string; description?: string;
    visibility?: "open" | "social" | "closed"; scheduled_start?: string }): Promise<RoomRecord>;
  function startRoom(id: string): Promise<RoomRecord>;
  function inviteLink(id: string, rotate?: boolean): Promise<string>;
  function follow(userId: string): Promise<null>;
  function unfollow(userId: string): Promise<null>;
  /** Federation (docs/federation.md): rooms on other servers, reached through this one. */
  function consents(): Promise<string[]>;
  function giveConsent(server: string): Promise<string[]>;
  function withdrawConsent(server: string): Promise<string[]>;
  /** `ref` is `ROOM_ID@server`. */
  function joinRemote(ref: string): Promise<{ room: Record<string, unknown>; ref: string }>;
  function remoteRoom(ref: string): Promise<{ room: Record<string, unknown>; ref: string;
    you: { role: string; may_speak: boolean; invited: boolean; hand_raised: boolean } | null }>;
  /** A listen-only offer for the remote room; resolves with this server's answer SDP. */
  function remoteMedia(ref: string, sdp: string): Promise<string>;
  function leaveRemote(ref: string): Promise<Record<string, never>>;
  function actRemote(ref: string, action: "raise_hand" | "lower_hand" | "accept_invitation"
    | "decline_invitation" | "mute" | "unmute"): Promise<{ version: number }>;
}

/** The pure reducer the Room uses (room-state.js), for drawing the room. */
export namespace roomState {
  const STAGE_ROLES: ReadonlySet<string>;
  const MODERATOR_ROLES: ReadonlySet<string>;
  function stage(state: RoomState): Participant[];
  function myself(state: RoomState): Participant | undefined;
  function myRole(state: RoomState): Participant["role"];
  function isModerator(state: RoomState): boolean;
  function audience(state: RoomState): Participant[];
  function audienceFaces(state: RoomState): Participant[];
  function audienceHasMore(state: RoomState): boolean;
  function audienceLength(state: RoomState): number;
  function listenerView(state: RoomState, p: Participant): Participant;
}
