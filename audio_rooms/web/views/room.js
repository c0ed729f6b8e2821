// A room: the pre-join screen ("tap to listen"), then the stage, the audience, the hand queue,
// the participant's own controls, and the moderators' per-person menu.

import * as api from "../api.js";
import { h, icon, replaceChildrenKeepingFocus } from "../dom.js";
import { errorText, formatDateTime, formatNumber, t } from "../i18n.js";
import { AudioPool, MediaSession, Microphone } from "../media.js";
import {
  applyDelta, audience, fromSnapshot, fromWelcome, isModerator, myRole, myself, stage, STAGE_ROLES,
} from "../room-state.js";
import { ConnectionState, RoomConnection } from "../signalling.js";
import { avatar, roomPath, shareLink } from "./lobby.js";

// The server's allowlist (audio_rooms/domain/actions.py REACTIONS), with stable test names.
export const REACTIONS = [
  ["clap", "👏"], ["heart", "❤️"], ["laugh", "😂"], ["fire", "🔥"],
  ["thumbs", "👍"], ["pray", "🙏"], ["wow", "😮"], ["party", "🎉"],
];
const RANK = { listener: 0, speaker: 1, moderator: 2, host: 3 };
const AUDIENCE_SHOWN = 300; // beyond this a phone spends more on layout than people can scan
const REACTION_MS = 2500;
// After `media_failed` the client offers again: at once the first time, then waiting longer
// each time it fails again (a network that blocks UDP must not make client and server loop).
// A failure this long after the previous one starts the sequence over.
const MEDIA_RETRY_MS = [0, 1000, 3000, 10000, 30000];
const MEDIA_STEADY_MS = 60000;

// Reasons that have a `closed.<reason>` sentence; refusals with another code use the close code's.
const CLOSED_REASONS = new Set(["not_authenticated", "not_allowed_in", "room_not_found",
  "replaced", "room_ended", "removed", "banned", "account_banned"]);

const Phase = Object.freeze({
  LOADING: "loading",
  MISSING: "missing",
  SCHEDULED: "scheduled",
  PREJOIN: "prejoin",
  JOINING: "joining",
  IN_ROOM: "in_room",
  CLOSED: "closed",
});

export class RoomView {
  constructor(app, roomId, invite) {
    this.app = app;
    this.roomId = roomId;
    this.invite = invite;
    this.phase = Phase.LOADING;
    this.info = null; // the REST room record, before joining
    this.state = null; // the live room, from the WebSocket
    this.closedReason = null;
    this.conn = null;
    this.connState = ConnectionState.IDLE;
    this.openMenu = null;
    this.confirming = null;
    this.levels = new Map(); // user id -> level, from the latest active_speakers
    this.renderQueued = false;
    this.micTarget = false;
    this.mic = new Microphone();
    this.audioBox = h("div", { class: "visually-hidden", testid: "remote-audio" });
    this.audioPool = new AudioPool(this.audioBox);
    this.audioPool.onBlocked = () => this.scheduleRender();
    this.media = null;
    this.mediaFailures = 0; // media_failed in a row (see MEDIA_RETRY_MS)
    this.lastMediaFailure = 0;
    this.mediaRetryTimer = null;
    this.invitation = null;
    this.onKeydown = (e) => this.keydown(e);
  }

  mount(container) {
    this.container = container;
    document.body.append(this.audioBox);
    document.addEventListener("keydown", this.onKeydown);
    this.render();
    this.load();
  }

  unmount() {
    document.removeEventListener("keydown", this.onKeydown);
    this.conn?.leave();
    this.teardownMedia();
    this.closeInvitation();
    this.audioBox.remove();
    this.container = null;
  }

  async load() {
    try {
      this.info = await api.getRoom(this.roomId, this.invite);
    } catch (err) {
      this.phase = Phase.MISSING;
      this.closedReason = err.code;
      this.render();
      return;
    }
    if (this.info.status === "live") this.phase = Phase.PREJOIN;
    else if (this.info.status === "ended") {
      this.phase = Phase.CLOSED;
      this.closedReason = "room_ended";
    } else this.phase = Phase.SCHEDULED;
    this.render();
  }

  // --- joining --------------------------------------------------------------------------------

  /** The click that joins is also the gesture that lets audio play (iOS Safari). */
  async join(event) {
    event?.preventDefault();
    const slots = this.app.config?.slots ?? 3;
    this.audioPool.ensure(slots);
    this.audioPool.unlock();
    if (!this.app.user) {
      const name = this.container.querySelector("[data-testid=guest-name]")?.value.trim();
      if (!name) return;
      try {
        this.app.setUser((await api.guest(name)).user);
      } catch (err) {
        this.app.toast(errorText(err.code));
        return;
      }
    }
    this.phase = Phase.JOINING;
    this.render();
    this.media = new MediaSession({
      iceServers: this.app.config?.ice_servers ?? [],
      slots,
      audioPool: this.audioPool,
      onStateChange: (s) => {
        // A transport that failed cannot recover by itself: rejoin, which renegotiates.
        if (s === "failed") this.conn?.resync();
      },
    });
    this.conn = new RoomConnection(this.roomId, {
      token: api.token(),
      invite: this.invite,
      handlers: {
        onState: (s) => {
          this.connState = s;
          this.scheduleRender();
        },
        onWelcome: (msg) => this.welcome(msg),
        onDelta: (msg) => this.delta(msg),
        onMediaAnswer: (msg) => this.media?.applyAnswer(msg.sdp).catch((err) => {
          console.warn("room %s: answer rejected: %s", this.roomId, err);
          this.app.toast(errorText("media_error"));
        }),
        onMediaFailed: (msg) => this.mediaFailed(msg),
        onError: (msg) => {
          // Sent just before the server closes every socket of an account banned server-wide.
          if (msg.code === "account_banned") this.closedReason = "account_banned";
          this.app.toast(errorText(msg.code));
        },
        onClosed: (reason, refusal) => this.closed(reason, refusal),
      },
    });
    this.conn.connect();
    // Gather ICE candidates while the WebSocket joins; without TURN the welcome usually confirms
    // the same ICE servers and slots, and then this offer goes out at once.
    this.media.prepare();
  }

  async welcome(msg) {
    const rejoin = this.state !== null;
    this.state = fromWelcome(msg);
    this.levels = new Map(); // until the server's next active_speakers
    this.phase = Phase.IN_ROOM;
    // The welcome's ICE servers hold this participant's TURN credentials (/api/config has STUN
    // only); they are short-lived, so fresh ones are asked for before they run out.
    this.useIceServers(msg);
    if (msg.slots) this.media.slots = msg.slots;
    this.render();
    if (!rejoin) {
      const role = myRole(this.state);
      const joined = t("notice.joined", { title: this.state.title });
      this.app.announce(role === "listener" ? joined : `${joined} ${t(`notice.you_are_${role}`)}`);
    }
    if (this.state.invited) this.showInvitation();
    await this.syncMic();
    await this.offerMedia();
  }

  /** Offer a fresh peer connection for the current ICE servers, slots and microphone. */
  async offerMedia() {
    if (!this.media) return;
    try {
      const sdp = await this.media.offer(this.mic.track);
      this.conn.sendRaw({ type: "media_offer", sdp });
    } catch (err) {
      console.warn("room %s: offer failed: %s", this.roomId, err);
      this.app.toast(errorText("media_error"));
    }
  }

  /** The server closed our media transport by itself: offer again rather than sit silent. */
  mediaFailed(msg) {
    if (!this.media || this.phase !== Phase.IN_ROOM) return;
    const now = Date.now();
    if (now - this.lastMediaFailure > MEDIA_STEADY_MS) this.mediaFailures = 0;
    this.lastMediaFailure = now;
    const delay = MEDIA_RETRY_MS[Math.min(this.mediaFailures, MEDIA_RETRY_MS.length - 1)];
    this.mediaFailures += 1;
    console.warn("room %s: media failed (%s); offering again in %d ms", this.roomId,
      msg.reason, delay);
    if (delay > 0) this.app.toast(t("room.media_reconnecting"));
    clearTimeout(this.mediaRetryTimer);
    this.mediaRetryTimer = setTimeout(() => this.offerMedia(), delay);
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
    if (msg.type === "active_speakers") return this.speaking(msg.speakers || []);
    if (msg.type === "reactions") return this.showReactions(msg.counts || {});
    if (msg.type === "snapshot") {
      this.state = fromSnapshot(this.state, msg);
      if (!this.state.invited) this.closeInvitation();
      this.syncMic();
      this.scheduleRender();
      return;
    }
    const me = this.state.me;
    if (msg.type === "participant_removed" && msg.user_id === me) {
      this.closedReason ??= msg.banned ? "banned" : "removed";
    }
    const { state, notices } = applyDelta(this.state, msg);
    this.state = state;
    for (const n of notices) this.app.announce(t(n.key, n.params), { urgent: n.urgent });
    if (msg.type === "invited" && msg.user_id === me) this.showInvitation();
    if (!state.invited) this.closeInvitation();
    if (state.ended) this.closed("room_ended");
    this.syncMic();
    this.scheduleRender();
  }

  /** `refusal`: the server's error code when a join was refused (banned, removed, ...). */
  closed(reason, refusal = null) {
    const specific = refusal && CLOSED_REASONS.has(refusal) ? refusal : null;
    this.closedReason = this.closedReason ?? specific ?? reason;
    this.phase = Phase.CLOSED;
    this.conn?.shutdown(1000);
    this.teardownMedia();
    this.closeInvitation();
    this.app.announce(t(`closed.${this.closedReason}`), { urgent: true });
    this.render();
  }

  teardownMedia() {
    clearTimeout(this.mediaRetryTimer);
    this.mediaRetryTimer = null;
    clearTimeout(this.iceRenewal);
    this.media?.close();
    this.media = null;
    this.mic.release();
    this.micTarget = false;
    this.audioPool.detachAll();
  }

  leave() {
    this.app.navigate("/"); // unmount sends `leave`
  }

  // --- the microphone -------------------------------------------------------------------------

  /** Match the microphone to the role and mute flags the server holds for us. */
  async syncMic() {
    const me = this.state && myself(this.state);
    const onStage = Boolean(me && STAGE_ROLES.has(me.role));
    if (onStage && !this.micTarget) {
      this.micTarget = true;
      try {
        const track = await this.mic.acquire();
        await this.media?.setMicTrack(track);
      } catch (err) {
        console.warn("room %s: microphone unavailable: %s", this.roomId, err);
        this.app.toast(t("room.mic_unavailable"));
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
      this.app.toast(errorText("muted_by_moderator"));
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

  // --- invitations ----------------------------------------------------------------------------

  showInvitation() {
    if (this.invitation || myRole(this.state) !== "listener") return;
    const accept = h("button", { type: "button", class: "primary", testid: "accept-invitation",
      onclick: () => this.answerInvitation(true) }, t("room.accept"));
    this.invitation = h("dialog", {
      class: "dialog", testid: "invitation-dialog", "aria-labelledby": "invitation-title",
      oncancel: (e) => {
        e.preventDefault();
        this.answerInvitation(false);
      },
    },
      h("h2", { id: "invitation-title" }, t("room.invitation_title")),
      h("p", {}, t("room.invitation_body")),
      h("div", { class: "row" }, accept,
        h("button", { type: "button", testid: "decline-invitation",
          onclick: () => this.answerInvitation(false) }, t("room.decline"))));
    document.body.append(this.invitation);
    this.invitation.showModal();
    accept.focus();
  }

  async answerInvitation(yes) {
    this.closeInvitation();
    if (!yes) {
      this.conn.send("decline_invitation");
      return;
    }
    // Ask for the microphone inside the click, where browsers allow the prompt most readily.
    try {
      await this.mic.acquire();
    } catch {
      this.app.toast(t("room.mic_unavailable"));
    }
    this.conn.send("accept_invitation");
  }

  closeInvitation() {
    if (this.invitation?.open) this.invitation.close();
    this.invitation?.remove();
    this.invitation = null;
  }

  // --- active speakers and reactions (drawn in place, no re-render at 5 Hz) -----------------

  /**
   * The server sends the list when it changes (docs/sfu.md), not periodically: a steady voice
   * is one message. So the latest list holds until the next one; it is not timed out.
   */
  speaking(speakers) {
    this.levels = new Map(speakers.map((s) => [s.user_id, Number(s.level) || 0]));
    this.applyLevels();
  }

  applyLevels() {
    if (!this.container) return;
    for (const tile of this.container.querySelectorAll("[data-user-id]")) {
      const level = this.levels.get(tile.dataset.userId);
      tile.classList.toggle("speaking", level !== undefined);
      tile.dataset.speaking = level !== undefined ? "true" : "false";
      tile.style.setProperty("--level", String(level ?? 0));
    }
  }

  /** The server batches reactions: `counts` is the whole room's since its last batch. */
  showReactions(counts) {
    const slot = this.container?.querySelector(".reaction-burst");
    if (!slot) return;
    const allowed = new Set(REACTIONS.map(([, emoji]) => emoji));
    const shown = Object.entries(counts)
      .filter(([emoji, n]) => allowed.has(emoji) && Number.isInteger(n) && n > 0)
      .map(([emoji, n]) => (n > 1 ? `${emoji}×${formatNumber(n)}` : emoji));
    if (shown.length === 0) return;
    slot.textContent = shown.join(" ");
    slot.classList.remove("pop");
    void slot.offsetWidth; // restart the animation for a repeated reaction
    slot.classList.add("pop");
    clearTimeout(slot.timer);
    slot.timer = setTimeout(() => {
      slot.textContent = "";
      slot.classList.remove("pop");
    }, REACTION_MS);
  }

  // --- rendering ------------------------------------------------------------------------------

  scheduleRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  render() {
    if (!this.container) return;
    const body = {
      [Phase.LOADING]: () => [h("p", { class: "muted" }, t("common.loading"))],
      [Phase.MISSING]: () => this.renderClosed(),
      [Phase.SCHEDULED]: () => this.renderScheduled(),
      [Phase.PREJOIN]: () => this.renderPrejoin(),
      [Phase.JOINING]: () => [this.renderHeader(this.info), h("p", { class: "muted" },
        t("room.joining"))],
      [Phase.IN_ROOM]: () => this.renderRoom(),
      [Phase.CLOSED]: () => this.renderClosed(),
    }[this.phase]();
    replaceChildrenKeepingFocus(this.container, body);
    if (this.phase === Phase.IN_ROOM) this.applyLevels();
  }

  renderHeader(room) {
    return h("header", { class: "room-header" },
      h("h1", { dir: "auto", testid: "room-title" }, room.title),
      room.description ? h("p", { class: "muted", dir: "auto" }, room.description) : null,
      this.renderConnection());
  }

  renderConnection() {
    const key = {
      [ConnectionState.IDLE]: "connection.idle",
      [ConnectionState.CONNECTING]: "connection.connecting",
      [ConnectionState.JOINED]: "connection.joined",
      [ConnectionState.RECONNECTING]: "connection.reconnecting",
      [ConnectionState.CLOSED]: "connection.closed",
    }[this.connState];
    return h("p", { class: `connection ${this.connState}`, testid: "connection-state",
      "data-state": this.connState, role: "status" }, t(key));
  }

  renderScheduled() {
    const isHost = this.app.user && this.info.host?.id === this.app.user.id;
    return [
      this.renderHeader(this.info),
      h("p", { testid: "scheduled-notice" }, t("room.scheduled_for", {
        when: this.info.scheduled_start ? formatDateTime(this.info.scheduled_start) : "",
      })),
      isHost
        ? h("button", { type: "button", class: "primary", testid: `start-room-${this.info.id}`,
            onclick: async () => {
              try {
                this.info = await api.startRoom(this.info.id);
                this.phase = Phase.PREJOIN;
                this.render();
              } catch (err) {
                this.app.toast(errorText(err.code));
              }
            } }, t("lobby.start_now"))
        : null,
      h("a", { href: "/", testid: "back-to-lobby" }, t("room.back_to_lobby")),
    ];
  }

  renderPrejoin() {
    const info = this.info;
    const user = this.app.user;
    let action;
    if (user) {
      action = h("button", { type: "button", class: "primary big", testid: "join-button",
        onclick: (e) => this.join(e) }, t("room.tap_to_listen"));
    } else if (info.visibility === "open") {
      action = h("form", { class: "stack", onsubmit: (e) => this.join(e) },
        h("label", { class: "field" }, h("span", {}, t("room.guest_name")),
          h("input", { testid: "guest-name", name: "guest_name", required: true, dir: "auto",
            maxlength: "64", autocomplete: "nickname" })),
        h("button", { type: "submit", class: "primary big", testid: "join-button" },
          t("room.listen_as_guest")),
        h("button", { type: "button", class: "link", testid: "signin-open-room",
          onclick: () => this.app.auth.open("signin") }, t("room.or_sign_in")));
    } else {
      action = h("div", { class: "stack" },
        h("p", {}, t("room.account_required")),
        h("button", { type: "button", class: "primary", testid: "signin-open-room",
          onclick: () => this.app.auth.open("signin") }, t("auth.signin")));
    }
    return [
      this.renderHeader(info),
      h("p", { class: "muted" },
        t("lobby.hosted_by", { name: info.host?.display_name ?? "" }), " · ",
        t("lobby.listener_count", { count: info.listener_count ?? 0 })),
      h("section", { class: "panel prejoin" }, action),
      h("a", { href: "/", testid: "back-to-lobby" }, t("room.back_to_lobby")),
    ];
  }

  renderClosed() {
    const reason = this.closedReason || "room_not_found";
    return [
      h("section", { class: "panel", testid: "room-closed", "data-reason": reason },
        h("h1", {}, this.info ? this.info.title : t("room.unavailable")),
        h("p", {}, this.phase === Phase.MISSING ? errorText(reason) : t(`closed.${reason}`)),
        h("a", { href: "/", class: "button primary", testid: "back-to-lobby" },
          t("room.back_to_lobby"))),
    ];
  }

  renderRoom() {
    const s = this.state;
    const listeners = audience(s);
    return [
      this.renderHeader(s),
      this.audioPool.blocked
        ? h("button", { type: "button", class: "primary big", testid: "tap-to-listen",
            onclick: () => {
              this.audioPool.unlock();
              this.scheduleRender();
            } }, t("room.tap_to_listen"))
        : null,
      isModerator(s) ? this.renderHandQueue() : null,
      h("section", { "aria-labelledby": "stage-heading", testid: "stage" },
        h("h2", { id: "stage-heading" }, t("room.stage")),
        h("ul", { class: "people stage" }, stage(s).map((p) => this.tile(p)))),
      h("section", { "aria-labelledby": "audience-heading", testid: "audience" },
        h("h2", { id: "audience-heading" },
          t("room.audience"), " ", h("span", { class: "muted", testid: "audience-count" },
            t("room.people", { count: listeners.length }))),
        h("ul", { class: "people audience" },
          listeners.slice(0, AUDIENCE_SHOWN).map((p) => this.tile(p))),
        listeners.length > AUDIENCE_SHOWN
          ? h("p", { class: "muted" },
              t("room.more_listeners", { count: listeners.length - AUDIENCE_SHOWN }))
          : null),
      this.renderControls(),
    ];
  }

  renderHandQueue() {
    const queue = this.state.handQueue
      .map((id) => this.state.participants.get(id))
      .filter(Boolean);
    return h("section", { class: "panel", "aria-labelledby": "hands-heading", testid: "hand-queue" },
      h("h2", { id: "hands-heading" }, t("room.hand_queue"), " ",
        h("span", { class: "muted" }, t("room.people", { count: queue.length }))),
      queue.length === 0
        ? h("p", { class: "muted" }, t("room.no_hands"))
        : h("ol", { class: "hand-list" }, queue.map((p) =>
            h("li", { testid: `hand-${p.user_id}` },
              avatar(p.user_id, p.display_name, "small"),
              h("span", { class: "name" }, h("bdi", {}, p.display_name)),
              h("button", { type: "button", class: "primary", testid: `invite-${p.user_id}`,
                "aria-label": t("room.invite_named", { name: p.display_name }),
                onclick: () => this.conn.send("invite_to_speak", { user_id: p.user_id }) },
                t("room.invite")),
              h("button", { type: "button", testid: `dismiss-hand-${p.user_id}`,
                "aria-label": t("room.dismiss_hand_named", { name: p.display_name }),
                onclick: () => this.conn.send("lower_hand", { user_id: p.user_id }) },
                t("room.dismiss_hand"))))));
  }

  tile(p) {
    const s = this.state;
    const isMe = p.user_id === s.me;
    const muted = p.self_muted || p.muted_by_moderator;
    const onStage = STAGE_ROLES.has(p.role);
    const status = [
      t(`role.${p.role}`),
      onStage && muted ? t(p.muted_by_moderator ? "room.muted_by_moderator" : "room.muted") : null,
      p.hand_raised ? t("room.hand_raised") : null,
    ].filter(Boolean).join(t("common.list_separator"));
    return h("li", { class: `person ${p.role}`, "data-user-id": p.user_id,
      "data-role": p.role, testid: `participant-${p.user_id}` },
      h("div", { class: "avatar-wrap" },
        avatar(p.user_id, p.display_name, onStage ? "large" : ""),
        onStage && muted
          ? h("span", { class: "badge-icon muted-badge", testid: `muted-${p.user_id}`,
              "aria-hidden": "true" }, icon("mic-off"))
          : null,
        p.hand_raised
          ? h("span", { class: "badge-icon hand-badge", testid: `hand-raised-${p.user_id}`,
              "aria-hidden": "true" }, icon("hand"))
          : null),
      h("span", { class: "name", dir: "auto" }, p.display_name,
        isMe ? h("span", { class: "muted" }, " ", t("room.you")) : null),
      h("span", { class: "role" }, t(`role.${p.role}`)),
      h("span", { class: "visually-hidden" }, status),
      this.canModerate(p) ? this.personMenu(p) : null);
  }

  canModerate(p) {
    const mine = myRole(this.state);
    return p.user_id !== this.state.me && isModerator(this.state) && RANK[mine] > RANK[p.role];
  }

  personMenu(p) {
    const id = p.user_id;
    const open = this.openMenu === id;
    const onStage = STAGE_ROLES.has(p.role);
    const act = (type, testid, key) =>
      h("li", {}, h("button", { type: "button", testid: `${testid}-${id}`,
        onclick: () => {
          this.conn.send(type, { user_id: id });
          this.openMenu = null;
          this.confirming = null;
          this.render();
        } }, t(key)));
    const items = [
      // Guests only listen: the server refuses to invite or promote them, so nothing is offered.
      p.role === "listener" && !p.is_guest
        ? act("invite_to_speak", "menu-invite", "menu.invite") : null,
      onStage ? act("move_to_audience", "move-to-audience", "menu.move_to_audience") : null,
      p.role === "speaker" ? act("make_moderator", "make-moderator", "menu.make_moderator") : null,
      p.role === "moderator"
        ? act("unmake_moderator", "unmake-moderator", "menu.unmake_moderator") : null,
      onStage && !p.muted_by_moderator ? act("mute", "mute", "menu.mute") : null,
      onStage && p.muted_by_moderator ? act("unmute", "unmute", "menu.unmute") : null,
      act("remove", "remove", "menu.remove"),
      this.confirming === `ban-${id}`
        ? act("ban", "confirm-ban", "menu.confirm_ban")
        : h("li", {}, h("button", { type: "button", class: "danger", testid: `ban-${id}`,
            onclick: () => {
              this.confirming = `ban-${id}`;
              this.render();
            } }, t("menu.ban"))),
    ];
    return h("div", { class: "person-menu" },
      h("button", {
        type: "button", class: "menu-button", testid: `person-menu-${id}`,
        "aria-expanded": open ? "true" : "false",
        "aria-controls": `menu-${id}`,
        "aria-label": t("menu.label", { name: p.display_name }),
        onclick: () => {
          this.openMenu = open ? null : id;
          this.confirming = null;
          this.render();
        },
      }, "⋯"),
      open
        ? h("ul", { class: "menu", id: `menu-${id}`, testid: `menu-${id}` },
            h("li", { class: "menu-title" }, h("bdi", {}, p.display_name)), items,
            h("li", {}, h("button", { type: "button", testid: `menu-close-${id}`,
              onclick: () => this.closeMenu() }, t("common.close"))))
        : null);
  }

  renderControls() {
    const s = this.state;
    const me = myself(s);
    const role = myRole(s);
    const onStage = STAGE_ROLES.has(role);
    const muted = me && (me.self_muted || me.muted_by_moderator);
    const controls = [
      h("button", { type: "button", testid: "leave-room", onclick: () => this.leave() },
        t("room.leave")),
      onStage
        ? h("button", {
            type: "button", class: muted ? "mic off" : "mic on", testid: "mic-toggle",
            "data-muted": muted ? "true" : "false",
            "aria-disabled": me?.muted_by_moderator ? "true" : null,
            onclick: () => this.toggleMic(),
          }, icon(muted ? "mic-off" : "mic"), muted
            ? (me.muted_by_moderator ? t("room.muted_by_moderator") : t("room.unmute_me"))
            : t("room.mute_me"))
        : me?.is_guest
          ? h("span", { class: "muted", testid: "guest-listens" }, t("room.guests_listen"))
          : h("button", {
              type: "button", testid: "raise-hand",
              "aria-pressed": me?.hand_raised ? "true" : "false",
              onclick: () => this.conn.send(me?.hand_raised ? "lower_hand" : "raise_hand"),
            }, icon("hand"), me?.hand_raised ? t("room.lower_hand") : t("room.raise_hand")),
      h("button", { type: "button", testid: "share-room", onclick: () => this.share() },
        t("room.share")),
      isModerator(s) && s.visibility !== "open"
        ? h("button", { type: "button", testid: "rotate-invite", onclick: () => this.share(true) },
            t("room.rotate_invite"))
        : null,
      isModerator(s) && s.visibility === "open"
        ? h("button", {
            type: "button", testid: "accounts-only",
            "aria-pressed": s.accountsOnly ? "true" : "false",
            onclick: () => this.conn.send("set_accounts_only", { enabled: !s.accountsOnly }),
          }, t("room.accounts_only"))
        : null,
      isModerator(s)
        ? this.confirming === "end-room"
          ? h("button", { type: "button", class: "danger", testid: "confirm-end-room",
              onclick: () => this.conn.send("end_room") }, t("room.confirm_end"))
          : h("button", { type: "button", class: "danger", testid: "end-room",
              onclick: () => {
                this.confirming = "end-room";
                this.render();
              } }, t("room.end"))
        : null,
    ];
    return h("footer", { class: "controls", "aria-label": t("room.controls") },
      h("div", { class: "row" }, controls),
      h("p", { class: "reaction-burst", testid: "reaction-counts", "aria-hidden": "true" }),
      h("div", { class: "reactions", role: "group", "aria-label": t("room.reactions") },
        REACTIONS.map(([name, emoji]) => h("button", {
          type: "button", class: "reaction", testid: `reaction-${name}`,
          "aria-label": t(`reaction.${name}`),
          onclick: () => this.conn.send("reaction", { emoji }),
        }, emoji))));
  }

  /** `rotate`: void every link shared so far and share the new one. */
  async share(rotate = false) {
    let url = new URL(roomPath(this.roomId), location.href).href;
    if (this.state.visibility !== "open" && isModerator(this.state)) {
      try {
        url = await api.inviteLink(this.roomId, rotate);
      } catch (err) {
        this.app.toast(errorText(err.code));
        return;
      }
    }
    await shareLink(this.app, this.state.title, url);
  }

  keydown(event) {
    if (event.key === "Escape" && (this.openMenu || this.confirming)) this.closeMenu();
  }

  /** Close the person menu and give focus back to the button that opened it. */
  closeMenu() {
    const id = this.openMenu;
    this.openMenu = null;
    this.confirming = null;
    this.render();
    if (id) this.container?.querySelector(`[data-testid="person-menu-${CSS.escape(id)}"]`)?.focus();
  }
}
