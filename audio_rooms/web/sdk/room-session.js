// One person's session in one room, without the DOM: the room's REST record, the WebSocket
// connection, the live room state, the media session and the microphone. The view
// (views/room.js) renders what this holds and calls its methods; this tells the view what
// happened through `events`, and never touches the page.

import * as api from "./api.js";
import { RelayListener } from "./listen.js";
import { MediaSession, Microphone } from "./media.js";
import {
  applyAudience, applyAudiencePage, applyDelta, audienceHasMore, fromSnapshot, fromWelcome,
  isModerator, myRole, myself, STAGE_ROLES,
} from "./room-state.js";
import { ConnectionState, RoomConnection } from "./signalling.js";

// After `media_failed` the client offers again: at once the first time, then waiting longer
// each time it fails again (a network that blocks UDP must not make client and server loop).
// A failure this long after the previous one starts the sequence over.
const MEDIA_RETRY_MS = [0, 1000, 3000, 10000, 30000];
const MEDIA_STEADY_MS = 60000;

// A peer connection not connected this long after its offer went out gets no UDP path (or
// none that works): the room's audio then comes over the relay (listen.js), and WebRTC is
// tried again every WEBRTC_RETRY_MS, the relay stopping once it connects.
const FALLBACK_AFTER_MS = 4000;
const WEBRTC_RETRY_MS = 30000;

// Listeners per `audience_page` request: the server's most, so reading 10,000 takes 100 round
// trips rather than 200.
export const AUDIENCE_PAGE_SIZE = 100;
// Page requests go at most this often: the server allows a socket 20 messages a second (and
// drops the rest unanswered), so dragging to the end of 10,000 must not spend them all.
const AUDIENCE_PAGE_INTERVAL_MS = 100;
// A page not answered by then (dropped, or lost with the socket) is asked for again.
const AUDIENCE_PAGE_TIMEOUT_MS = 5000;
const AUDIENCE_RETRY_MS = 1000;

// Reasons that have a `closed.<reason>` sentence; refusals with another code use the close code's.
const CLOSED_REASONS = new Set(["not_authenticated", "not_allowed_in", "room_not_found",
  "replaced", "room_ended", "removed", "banned", "account_banned"]);

export const Phase = Object.freeze({
  LOADING: "loading",
  MISSING: "missing",
  SCHEDULED: "scheduled",
  PREJOIN: "prejoin",
  JOINING: "joining",
  IN_ROOM: "in_room",
  CLOSED: "closed",
});

/**
 * `events` (all optional): changed() when anything shown changed; joined(role) on first entry;
 * notice(key, params, {urgent}) for a sentence to announce; toast(key) for a passing message;
 * error(code) for a failure to show; levels(map) for the active speakers; reactions(counts);
 * audience() when only the audience (count, faces, pages read) changed, else changed();
 * invitation(open) when an invitation to speak appears or goes away; media(state) when the
 * peer connection's state changes; message(msg) for every
 * message the server sends, as it arrives (the SDK's per-type events).
 */
export class RoomSession {
  constructor(roomId, invite, { config, audioPool, events }) {
    this.roomId = roomId;
    this.invite = invite;
    this.config = config; // /api/config, or null when it could not be loaded
    this.audioPool = audioPool; // plays the slots: the view owns its elements
    this.events = events;
    this.phase = Phase.LOADING;
    this.info = null; // the REST room record, before joining
    this.state = null; // the live room, from the WebSocket
    this.closedReason = null;
    this.conn = null;
    this.connState = ConnectionState.IDLE;
    this.micTarget = false;
    this.mic = new Microphone();
    this.media = null;
    this.mediaFailures = 0; // media_failed in a row (see MEDIA_RETRY_MS)
    this.lastMediaFailure = 0;
    this.mediaRetryTimer = null;
    this.relay = null; // a RelayListener while listening over the relay
    this.relayState = null; // its "connecting" | "listening" | "closed"
    this.fallbackTimer = null;
    this.webrtcRetryTimer = null;
    this.relaySpeakNoticed = false;
    this.iceRenewal = null;
    this.audienceRequest = null; // {ref, fresh}: the audience page on its way, if any
    this.audiencePacingMs = AUDIENCE_PAGE_INTERVAL_MS;
    this.audienceSentAt = -Infinity;
    this.audienceTimer = null; // a paced request, or a retry
    this.audienceTimeout = null;
  }

  /** Audio slots to prepare before the welcome confirms them (the server's media_slots). */
  get slots() {
    return this.config?.slots ?? 1;
  }

  emit(name, ...args) {
    this.events[name]?.(...args);
  }

  async load() {
    try {
      this.info = await api.getRoom(this.roomId, this.invite);
    } catch (err) {
      this.phase = Phase.MISSING;
      this.closedReason = err.code;
      this.emit("changed");
      return;
    }
    if (this.info.status === "live") this.phase = Phase.PREJOIN;
    else if (this.info.status === "ended") {
      this.phase = Phase.CLOSED;
      this.closedReason = "room_ended";
    } else this.phase = Phase.SCHEDULED;
    this.emit("changed");
  }

  /** The host starts a scheduled room. */
  async start() {
    try {
      this.info = await api.startRoom(this.info.id);
      this.phase = Phase.PREJOIN;
      this.emit("changed");
    } catch (err) {
      this.emit("error", err.code);
    }
  }

  /** Join as the signed-in user (the view signs a guest in first). */
  join() {
    this.phase = Phase.JOINING;
    this.emit("changed");
    this.media = new MediaSession({
      iceServers: this.config?.ice_servers ?? [],
      slots: this.slots,
      audioPool: this.audioPool,
      onStateChange: (s) => this.mediaStateChanged(s),
    });
    this.conn = new RoomConnection(this.roomId, {
      token: api.token(),
      invite: this.invite,
      terminalCloseCodes: this.config?.terminal_close_codes,
      handlers: {
        onState: (s) => {
          this.connState = s;
          this.emit("changed");
        },
        onMessage: (msg) => this.emit("message", msg),
        onWelcome: (msg) => this.welcome(msg),
        onDelta: (msg) => this.delta(msg),
        onMediaAnswer: (msg) => this.media?.applyAnswer(msg.sdp).catch((err) => {
          console.warn("room %s: answer rejected: %s", this.roomId, err);
          this.emit("error", "media_error");
        }),
        onMediaFailed: (msg) => this.mediaFailed(msg),
        onError: (msg) => {
          // Sent just before the server closes every socket of an account banned server-wide.
          if (msg.code === "account_banned") this.closedReason = "account_banned";
          if (this.audienceRequest && msg.ref === this.audienceRequest.ref) {
            return this.audiencePageRefused(msg.code);
          }
          this.emit("error", msg.code);
        },
        onClosed: (reason, refusal) => this.closed(reason, refusal),
      },
    });
    this.conn.connect();
    // Gather ICE candidates while the WebSocket joins; without TURN the welcome usually confirms
    // the same ICE servers and slots, and then this offer goes out at once.
    this.media.prepare();
  }

  /** Leave the room and let go of the connection, the media and the microphone. */
  leave() {
    this.conn?.leave();
    this.teardownMedia();
    this.stopAudience();
  }

  send(type, fields) {
    this.conn?.send(type, fields);
  }

  async welcome(msg) {
    const rejoin = this.state !== null;
    this.state = fromWelcome(msg);
    this.stopAudience(); // a request on the old socket gets no answer
    this.phase = Phase.IN_ROOM;
    this.emit("levels", new Map()); // until the server's next active_speakers
    // The welcome's ICE servers hold this participant's TURN credentials (/api/config has STUN
    // only); they are short-lived, so fresh ones are asked for before they run out.
    this.useIceServers(msg);
    if (msg.slots) this.media.slots = msg.slots;
    this.emit("changed");
    if (!rejoin) this.emit("joined", myRole(this.state));
    if (this.state.invited) this.emit("invitation", true);
    await this.syncMic();
    await this.offerMedia();
  }

  /** Offer a fresh peer connection for the current ICE servers, slots and microphone. */
  async offerMedia() {
    if (!this.media) return;
    try {
      const sdp = await this.media.offer(this.mic.track);
      this.conn.sendRaw({ type: "media_offer", sdp });
      clearTimeout(this.fallbackTimer);
      this.fallbackTimer = setTimeout(() => this.checkMediaArrived(), FALLBACK_AFTER_MS);
    } catch (err) {
      console.warn("room %s: offer failed: %s", this.roomId, err);
      this.emit("error", "media_error");
    }
  }

  /** The server closed our media transport by itself: offer again rather than sit silent. */
  mediaFailed(msg) {
    if (!this.media || this.phase !== Phase.IN_ROOM) return;
    if (this.relay) return; // the relay plays; WebRTC is retried on its own schedule
    const now = Date.now();
    if (now - this.lastMediaFailure > MEDIA_STEADY_MS) this.mediaFailures = 0;
    this.lastMediaFailure = now;
    const delay = MEDIA_RETRY_MS[Math.min(this.mediaFailures, MEDIA_RETRY_MS.length - 1)];
    this.mediaFailures += 1;
    console.warn("room %s: media failed (%s); offering again in %d ms", this.roomId,
      msg.reason, delay);
    if (delay > 0) this.emit("toast", "room.media_reconnecting");
    clearTimeout(this.mediaRetryTimer);
    this.mediaRetryTimer = setTimeout(() => this.offerMedia(), delay);
  }

  mediaStateChanged(state) {
    this.emit("media", state);
    if (state === "connected") {
      clearTimeout(this.fallbackTimer);
      this.stopRelay();
    } else if (state === "failed") {
      // A transport that worked and then failed cannot recover by itself: rejoin, which
      // renegotiates. One that never connected had no path: listen over the relay.
      if (this.media?.everConnected) this.conn?.resync();
      else this.checkMediaArrived();
    }
  }

  /** FALLBACK_AFTER_MS after an offer (or when it failed): relay if WebRTC is not connected. */
  checkMediaArrived() {
    clearTimeout(this.fallbackTimer);
    if (!this.media || this.phase !== Phase.IN_ROOM || this.media.state === "connected") return;
    this.startRelay();
    clearTimeout(this.webrtcRetryTimer);
    this.webrtcRetryTimer = setTimeout(() => {
      if (this.relay) this.offerMedia();
    }, WEBRTC_RETRY_MS);
  }

  startRelay() {
    if (this.relay) return;
    console.warn("room %s: no WebRTC media; listening over the relay", this.roomId);
    const relay = new RelayListener({
      roomId: this.roomId,
      token: api.token(),
      audioPool: this.audioPool,
      onState: (state) => {
        if (this.relay !== relay) return;
        this.relayState = state;
        this.emit("changed");
      },
    });
    this.relay = relay;
    this.relayState = "connecting";
    relay.start().then(() => this.emit("changed"), (err) => {
      console.warn("room %s: the relay could not start: %s", this.roomId, err);
      if (this.relay === relay) this.stopRelay();
      this.emit("error", "media_error");
    });
    this.emit("changed");
  }

  stopRelay() {
    clearTimeout(this.webrtcRetryTimer);
    if (!this.relay) return;
    console.info("room %s: WebRTC works; the relay stops", this.roomId);
    this.relay.stop();
    this.relay = null;
    this.relayState = null;
    this.relaySpeakNoticed = false;
    this.emit("changed");
  }

  /** Take ICE servers from `welcome` or an `ice_servers` reply; renew them at 80% of their life. */
  useIceServers(msg) {
    if (msg.ice_servers && this.media) this.media.iceServers = msg.ice_servers;
    clearTimeout(this.iceRenewal);
    const ttl = Number(msg.ice_servers_ttl) || 0;
    if (ttl > 0) this.iceRenewal = setTimeout(() => this.conn?.send("ice_servers"), ttl * 800);
  }

  delta(msg) {
    if (!this.state) return;
    if (msg.type === "ice_servers") return this.useIceServers(msg);
    if (msg.type === "active_speakers") {
      const speakers = msg.speakers || [];
      return this.emit("levels", new Map(speakers.map((s) => [s.user_id, Number(s.level) || 0])));
    }
    if (msg.type === "reactions") return this.emit("reactions", msg.counts || {});
    if (msg.type === "audience") {
      this.state = applyAudience(this.state, msg);
      return this.audienceChanged();
    }
    if (msg.type === "audience_page") return this.audiencePage(msg);
    if (msg.type === "snapshot") {
      this.state = fromSnapshot(this.state, msg);
      if (!this.state.invited) this.emit("invitation", false);
      this.syncMic();
      this.emit("changed");
      return;
    }
    const me = this.state.me;
    if (msg.type === "participant_removed" && msg.user_id === me) {
      this.closedReason ??= msg.banned ? "banned" : "removed";
    }
    const { state, notices } = applyDelta(this.state, msg);
    this.state = state;
    for (const n of notices) this.emit("notice", n.key, n.params, { urgent: n.urgent });
    if (msg.type === "invited" && msg.user_id === me) this.emit("invitation", true);
    if (!state.invited) this.emit("invitation", false);
    if (state.ended) this.closed("room_ended");
    this.syncMic();
    this.emit("changed");
  }

  // --- the audience list -----------------------------------------------------------------------

  /** Read the audience list from its start again: it was opened, and what was held is old. */
  refreshAudience() {
    this.requestAudiencePage(null, true);
  }

  /** Read the next page of the audience list, unless it is all read or a page is on its way. */
  loadMoreAudience() {
    if (!this.state || this.audienceRequest || this.audienceTimer
        || !audienceHasMore(this.state)) return;
    const wait = this.audienceSentAt + this.audiencePacingMs - Date.now();
    if (wait > 0) {
      this.audienceTimer = setTimeout(() => {
        this.audienceTimer = null;
        this.loadMoreAudience();
      }, wait);
      return;
    }
    this.requestAudiencePage(this.state.audience.next, false);
  }

  get audienceLoading() {
    return this.audienceRequest !== null;
  }

  requestAudiencePage(cursor, fresh) {
    const fields = { limit: AUDIENCE_PAGE_SIZE };
    if (cursor) fields.cursor = cursor;
    clearTimeout(this.audienceTimer);
    this.audienceTimer = null;
    // A fresh reading supersedes a page on its way: that answer's ref no longer matches.
    const ref = this.conn?.send("audience_page", fields) ?? null;
    this.audienceRequest = ref ? { ref, fresh } : null;
    this.audienceSentAt = Date.now();
    clearTimeout(this.audienceTimeout);
    if (ref) {
      this.audienceTimeout = setTimeout(() => {
        if (this.audienceRequest?.ref !== ref) return;
        this.audienceRequest = null;
        this.audienceChanged(); // the list asks again if it still needs the page
      }, AUDIENCE_PAGE_TIMEOUT_MS);
    }
  }

  stopAudience() {
    clearTimeout(this.audienceTimer);
    clearTimeout(this.audienceTimeout);
    this.audienceTimer = null;
    this.audienceRequest = null;
  }

  audiencePage(msg) {
    const request = this.audienceRequest;
    if (!request || msg.ref !== request.ref) return; // superseded, or from before a rejoin
    this.audienceRequest = null;
    clearTimeout(this.audienceTimeout);
    this.state = applyAudiencePage(this.state, msg, { fresh: request.fresh });
    this.audienceChanged();
  }

  /**
   * Only the audience changed (its count, faces or pages): views that can redraw just that
   * listen to `audience`; others get `changed`. The count changes every second in a busy room,
   * and redrawing the whole room that often would swallow clicks (a button replaced between
   * mouse down and up gets no click).
   */
  audienceChanged() {
    this.emit(this.events.audience ? "audience" : "changed");
  }

  /**
   * The server refused a page. Too many messages: ask again a second later. A cursor it did
   * not take (one from before its restart): read from the start.
   */
  audiencePageRefused(code) {
    const request = this.audienceRequest;
    this.audienceRequest = null;
    clearTimeout(this.audienceTimeout);
    if (code === "rate_limited") {
      clearTimeout(this.audienceTimer);
      this.audienceTimer = setTimeout(() => {
        this.audienceTimer = null;
        this.audienceChanged();
      }, AUDIENCE_RETRY_MS);
    } else if (request && !request.fresh) {
      this.refreshAudience();
    } else {
      this.audienceChanged();
    }
  }

  /** `refusal`: the server's error code when a join was refused (banned, removed, ...). */
  closed(reason, refusal = null) {
    const specific = refusal && CLOSED_REASONS.has(refusal) ? refusal : null;
    this.closedReason = this.closedReason ?? specific ?? reason;
    this.phase = Phase.CLOSED;
    this.conn?.shutdown(1000);
    this.teardownMedia();
    this.stopAudience();
    this.emit("invitation", false);
    this.emit("notice", `closed.${this.closedReason}`, {}, { urgent: true });
    this.emit("changed");
  }

  teardownMedia() {
    clearTimeout(this.mediaRetryTimer);
    this.mediaRetryTimer = null;
    clearTimeout(this.fallbackTimer);
    this.stopRelay();
    clearTimeout(this.iceRenewal);
    this.media?.close();
    this.media = null;
    this.mic.release();
    this.micTarget = false;
    this.audioPool.detachAll();
  }

  // --- the microphone -------------------------------------------------------------------------

  /** Match the microphone to the role and mute flags the server holds for us. */
  async syncMic() {
    const me = this.state && myself(this.state);
    const onStage = Boolean(me && STAGE_ROLES.has(me.role));
    if (onStage && this.relay && !this.relaySpeakNoticed) {
      // The relay carries nothing upstream: say so, and try WebRTC again now.
      this.relaySpeakNoticed = true;
      this.emit("toast", "room.relay_speak");
      clearTimeout(this.webrtcRetryTimer);
      this.webrtcRetryTimer = setTimeout(() => this.offerMedia(), 0);
    }
    if (onStage && !this.micTarget) {
      this.micTarget = true;
      try {
        const track = await this.mic.acquire();
        await this.media?.setMicTrack(track);
      } catch (err) {
        console.warn("room %s: microphone unavailable: %s", this.roomId, err);
        this.emit("toast", "room.mic_unavailable");
      }
    } else if (!onStage && this.micTarget) {
      this.micTarget = false;
      await this.media?.setMicTrack(null);
      this.mic.release();
    }
    const live = this.state && myself(this.state);
    this.mic.setEnabled(Boolean(live && onStage && !live.self_muted && !live.muted_by_moderator));
  }

  toggleMic() {
    const me = myself(this.state);
    if (me.muted_by_moderator) {
      this.emit("error", "muted_by_moderator");
      return;
    }
    if (me.self_muted) {
      // The track is enabled when the server confirms (mute_changed), not before.
      this.conn.send("unmute", { user_id: me.user_id });
    } else {
      this.mic.setEnabled(false); // silence at once, whatever the round trip
      this.conn.send("mute", { user_id: me.user_id });
    }
  }

  /** Accept or decline an invitation to speak. */
  async answerInvitation(yes) {
    if (!yes) {
      this.conn.send("decline_invitation");
      return;
    }
    // Ask for the microphone inside the click, where browsers allow the prompt most readily.
    try {
      await this.mic.acquire();
    } catch {
      this.emit("toast", "room.mic_unavailable");
    }
    this.conn.send("accept_invitation");
  }

  /**
   * The link to share: the room's own, or for a moderator of a closed or social room an invite
   * link (`rotate`: void every link shared so far). Null when the server refused one.
   */
  async shareUrl(rotate, roomUrl) {
    if (this.state.visibility === "open" || !isModerator(this.state)) return roomUrl;
    try {
      return await api.inviteLink(this.roomId, rotate);
    } catch (err) {
      this.emit("error", err.code);
      return null;
    }
  }
}
