// The audio-rooms client SDK: connect to a server, join a room, listen, speak and moderate.
// Plain ES modules, no build step; docs/sdk.md is the guide and index.d.ts the types.
//
//   const client = await connect();            // the session cookie, or connect({ token })
//   if (!client.user) await client.guest("Nima");
//   const room = await client.join(roomId);      // resolves at the server's `welcome`
//   room.on("active_speakers", (msg) => ...);    // every server message is an event
//   await room.raiseHand();                      // actions resolve at the server's `ack`
//
// The web client is built on the same modules: room-session.js (one person in one room,
// without the DOM), room-state.js (the reducer), signalling.js (the WebSocket), media.js
// (WebRTC), listen.js (the relay); a program that wants those layers imports them directly.

import * as api from "./api.js";
import { AudioPool } from "./media.js";
import { myRole, myself, STAGE_ROLES } from "./room-state.js";
import { Phase, RoomSession } from "./room-session.js";

export * as api from "./api.js";
export * as roomState from "./room-state.js";
export { ApiError } from "./api.js";

/** An action the server refused (its `error` message), or that got no answer in time. */
export class RoomError extends Error {
  constructor(code, message, details = null) {
    super(message || code);
    this.name = "RoomError";
    this.code = code;
    this.details = details;
  }
}

// An action unanswered this long (its socket dropped and came back, say) is reported as failed
// rather than left pending forever.
const ACTION_TIMEOUT_MS = 10000;

/**
 * Connect to the audio-rooms server this page was loaded from. `token`: a session or guest
 * token obtained elsewhere; without one the session cookie is used, if there is one.
 */
export async function connect({ token = null } = {}) {
  if (token) api.useToken(token);
  const [config, user] = await Promise.all([
    api.getConfig().catch(() => null),
    api.me(),
  ]);
  return new Client(config, user);
}

/** One signed-in (or guest, or anonymous) visitor of the server. */
export class Client {
  constructor(config, user) {
    this.config = config; // GET /api/config, or null when it could not be read
    this.user = user; // null until signed in
  }

  /** The token of the session (null when only the HttpOnly cookie holds it). */
  get token() {
    return api.token();
  }

  async guest(displayName) {
    this.user = (await api.guest(displayName)).user;
    return this.user;
  }

  async signIn(handle, password) {
    this.user = (await api.signIn({ handle, password })).user;
    return this.user;
  }

  async signUp(fields) {
    this.user = (await api.signUp(fields)).user;
    return this.user;
  }

  async signOut() {
    await api.signOut();
    this.user = null;
  }

  /** One page of the lobby: `{rooms, next_cursor}`. */
  rooms(status = "live", cursor = null) {
    return api.listRooms(status, cursor);
  }

  getRoom(roomId, invite = null) {
    return api.getRoom(roomId, invite);
  }

  createRoom(fields) {
    return api.createRoom(fields);
  }

  /**
   * Join a room and start listening: resolves with the `Room` once the server welcomes you,
   * rejects with a RoomError when it refuses (`code`: `room_not_found`, `banned`, ...).
   * `audio`: the element the room's <audio> elements go in (default: document.body).
   * Call it from a click where you can: browsers let a page play sound after a gesture.
   */
  join(roomId, { invite = null, audio = null } = {}) {
    const room = new Room(this, roomId, { invite, audio });
    return room.start();
  }
}

/**
 * One person in one room. Events (`on(name, handler)`): every server message by its `type`
 * (`welcome`, `role_changed`, `active_speakers`, ...) and `message` for all of them; and
 * `state` (the room state changed), `connection` (the socket's state), `media` (how audio
 * comes: "connecting", "webrtc" or "relay"), `notice` ({key, params, urgent}), `invitation`
 * (open), `closed` ({reason}), `failure` ({code}: went wrong on this side, such as
 * `media_error`), `autoplay_blocked`. An action the server refuses rejects its promise and is
 * also an `error` event, like every message.
 */
export class Room {
  constructor(client, roomId, { invite = null, audio = null } = {}) {
    this.client = client;
    this.roomId = roomId;
    this.handlers = new Map();
    this.pending = new Map(); // ref -> {resolve, reject, timer}
    this.audio = new AudioPool(audio ?? document.body);
    this.audio.onBlocked = () => this.emit("autoplay_blocked");
    this.lastMedia = null;
    this.lastConnection = null;
    this.closedSent = false;
    this.serverError = false;
    this.session = new RoomSession(roomId, invite, {
      config: client.config,
      audioPool: this.audio,
      events: {
        message: (msg) => this.message(msg),
        changed: () => this.changed(),
        media: () => this.mediaChanged(),
        audience: () => this.emit("state", this.state),
        joined: (role) => this.emit("joined", role),
        notice: (key, params, { urgent } = {}) =>
          this.emit("notice", { key, params: params ?? {}, urgent: Boolean(urgent) }),
        invitation: (open) => this.emit("invitation", open),
        error: (code) => {
          // The server's errors were events already (`error`, in message()); what is left
          // went wrong here (an offer or the relay that could not start: `media_error`).
          if (this.serverError) this.serverError = false;
          else this.emit("failure", { code });
        },
        toast: (key) => this.emit("notice", { key, params: {}, urgent: false }),
      },
    });
  }

  start() {
    return new Promise((resolve, reject) => {
      const off = [
        this.on("joined", () => {
          off.forEach((f) => f());
          resolve(this);
        }),
        this.on("closed", ({ reason }) => {
          off.forEach((f) => f());
          reject(new RoomError(reason, `could not join: ${reason}`));
        }),
      ];
      this.session.join();
    });
  }

  /** Subscribe to an event; returns a function that unsubscribes. */
  on(name, handler) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(handler);
    return () => this.handlers.get(name)?.delete(handler);
  }

  emit(name, value) {
    for (const handler of [...(this.handlers.get(name) ?? [])]) {
      try {
        handler(value);
      } catch (err) {
        console.error("audio-rooms: a %s handler failed: %s", name, err);
      }
    }
  }

  message(msg) {
    if (msg.ref && this.pending.has(msg.ref) && (msg.type === "ack" || msg.type === "error")) {
      const { resolve, reject, timer } = this.pending.get(msg.ref);
      this.pending.delete(msg.ref);
      clearTimeout(timer);
      if (msg.type === "ack") resolve(msg);
      else reject(new RoomError(msg.code, msg.message, msg.details ?? null));
    }
    if (msg.type === "room_ended") {
      // The room closes on the heels of this, before an ack could come: an `end_room` of
      // ours did what it asked for.
      for (const [ref, entry] of this.pending) {
        if (entry.type !== "end_room") continue;
        this.pending.delete(ref);
        clearTimeout(entry.timer);
        entry.resolve({ type: "ack", ref, version: msg.version });
      }
    }
    if (msg.type === "error") {
      // The session reports it next, in this same task: not a `failure` (see the constructor).
      this.serverError = true;
      queueMicrotask(() => { this.serverError = false; });
    }
    this.emit(msg.type, msg);
    this.emit("message", msg);
  }

  mediaChanged() {
    const media = this.media;
    if (media !== this.lastMedia) {
      this.lastMedia = media;
      this.emit("media", media);
    }
  }

  changed() {
    this.mediaChanged();
    if (this.session.phase === Phase.CLOSED && !this.closedSent) {
      this.closedSent = true;
      this.failPending("not_in_room");
      this.emit("closed", { reason: this.session.closedReason });
    }
    if (this.session.connState !== this.lastConnection) {
      this.lastConnection = this.session.connState;
      this.emit("connection", this.lastConnection);
    }
    this.emit("state", this.state);
  }

  // --- what the room holds now ------------------------------------------------------------

  /** The room state (room-state.js): participants on stage, hand queue, audience, version. */
  get state() {
    return this.session.state;
  }

  /** Yourself as a participant, or null before the welcome. */
  get me() {
    return this.state ? myself(this.state) ?? null : null;
  }

  get role() {
    return this.state ? myRole(this.state) : null;
  }

  /** The socket's state: "connecting", "joined", "reconnecting", "closed". */
  get connectionState() {
    return this.session.connState;
  }

  /** How the room's audio comes: "webrtc", "relay" (the WebSocket fallback) or "connecting". */
  get media() {
    if (this.session.relay) return this.session.relayState === "listening" ? "relay" : "connecting";
    return this.session.media?.state === "connected" ? "webrtc" : "connecting";
  }

  get closedReason() {
    return this.session.closedReason;
  }

  // --- listening ---------------------------------------------------------------------------

  /**
   * Let the room's audio play: call from a click if `autoplay_blocked` fired (or before it, to
   * be sure). Joining already listens; this only lifts the browser's autoplay block.
   */
  listen() {
    this.audio.unlock();
  }

  /** Leave the room: the server is told at once, the media and microphone are let go. */
  leave() {
    this.session.leave();
    this.session.phase = Phase.CLOSED;
    this.session.closedReason ??= "left";
    this.changed();
  }

  /** Read the audience list from the start, or its next page; `state` fires with the result. */
  refreshAudience() {
    this.session.refreshAudience();
  }

  loadMoreAudience() {
    this.session.loadMoreAudience();
  }

  // --- actions: each resolves with the server's `ack`, or rejects with a RoomError ----------

  send(type, fields = {}) {
    const ref = this.session.conn?.send(type, fields) ?? null;
    if (ref === null) return Promise.reject(new RoomError("not_connected", "not joined now"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new RoomError("timeout", `no answer to ${type}`));
      }, ACTION_TIMEOUT_MS);
      this.pending.set(ref, { type, resolve, reject, timer });
    });
  }

  failPending(code) {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new RoomError(code, "the room closed"));
    }
    this.pending.clear();
  }

  raiseHand() {
    return this.send("raise_hand");
  }

  /** Your own hand; moderators may lower anyone's. */
  lowerHand(userId = null) {
    return this.send("lower_hand", userId ? { user_id: userId } : {});
  }

  /**
   * Accept an invitation to speak: the microphone is asked for first (from a click, where
   * browsers allow the prompt), and you come on stage muted; then `setMicrophone(true)`.
   */
  async acceptInvitation() {
    try {
      await this.session.mic.acquire();
    } catch {
      this.emit("notice", { key: "room.mic_unavailable", params: {}, urgent: false });
    }
    return this.send("accept_invitation");
  }

  declineInvitation() {
    return this.send("decline_invitation");
  }

  /**
   * Speak or stop: unmute or mute yourself on stage. Muting silences the microphone at once;
   * unmuting opens it when the server confirms. A moderator's mute only a moderator lifts
   * (`muted_by_moderator`).
   */
  setMicrophone(on) {
    const me = this.me;
    if (!me || !STAGE_ROLES.has(me.role)) {
      return Promise.reject(new RoomError("not_permitted", "not on stage"));
    }
    if (!on) this.session.mic.setEnabled(false);
    return this.send(on ? "unmute" : "mute", { user_id: me.user_id });
  }

  react(emoji) {
    return this.send("reaction", { emoji });
  }

  // --- moderation (host and moderators, on lower ranks) ------------------------------------

  inviteToSpeak(userId) {
    return this.send("invite_to_speak", { user_id: userId });
  }

  moveToAudience(userId) {
    return this.send("move_to_audience", { user_id: userId });
  }

  makeModerator(userId) {
    return this.send("make_moderator", { user_id: userId });
  }

  unmakeModerator(userId) {
    return this.send("unmake_moderator", { user_id: userId });
  }

  mute(userId) {
    return this.send("mute", { user_id: userId });
  }

  unmute(userId) {
    return this.send("unmute", { user_id: userId });
  }

  remove(userId) {
    return this.send("remove", { user_id: userId });
  }

  ban(userId) {
    return this.send("ban", { user_id: userId });
  }

  endRoom() {
    return this.send("end_room");
  }

  /** Host only: let users of other deployments listen through their own server (federation). */
  setInterconnected(enabled) {
    return this.send("set_interconnected", { enabled: Boolean(enabled) });
  }

  setAccountsOnly(enabled) {
    return this.send("set_accounts_only", { enabled: Boolean(enabled) });
  }

  rotateInvite() {
    return this.send("rotate_invite");
  }

  /** For moderators of closed and social rooms: the URL of a current invite link. */
  inviteLink(rotate = false) {
    return api.inviteLink(this.roomId, rotate);
  }
}
