// A room's view: the pre-join screen ("tap to listen"), then the stage, the audience, the hand
// queue, the participant's own controls, and the moderators' per-person menu. What it shows
// comes from a RoomSession (room-session.js: connection, room state, media), which it renders.

import * as api from "../sdk/api.js";
import { h, icon, keepFocus, replaceChildrenKeepingFocus } from "../dom.js";
import { errorText, formatDateTime, formatNumber, t } from "../i18n.js";
import { AudioPool } from "../sdk/media.js";
import { Phase, RoomSession } from "../sdk/room-session.js";
import {
  audience, audienceFaces, audienceHasMore, audienceLength, isModerator, listenerView, myRole,
  myself, stage, STAGE_ROLES,
} from "../sdk/room-state.js";
import { ConnectionState } from "../sdk/signalling.js";
import { avatar, roomPath, shareLink } from "./common.js";
import { KeepListening } from "./keep-listening.js";
import { VirtualList } from "./virtual-list.js";

const RANK = { listener: 0, speaker: 1, moderator: 2, host: 3 };
const REACTION_MS = 2500;
// The audience list's rows, in px: fixed, so the virtual list finds any row by division.
const AUDIENCE_ROW_PX = 56;
// A screen reader hears the listener count at most this often: in a busy room it changes every
// second, and a sentence a second would drown out everything else.
const COUNT_ANNOUNCE_MS = 10000;

export class RoomView {
  constructor(app, roomId, invite) {
    this.app = app;
    this.roomId = roomId;
    this.openMenu = null;
    this.confirming = null;
    this.levels = new Map(); // user id -> level, from the latest active_speakers
    this.renderQueued = false;
    this.audienceQueued = false;
    this.audioBox = h("div", { class: "visually-hidden", testid: "remote-audio" });
    this.audioPool = new AudioPool(this.audioBox);
    this.audioPool.onBlocked = () => this.scheduleRender();
    this.invitation = null;
    this.audienceOpen = false;
    this.audienceList = null; // the VirtualList, made when first opened and kept
    // Its own polite live region, outside the re-rendered room, updated at most every
    // COUNT_ANNOUNCE_MS (see announceCount).
    this.countLive = h("p", { class: "visually-hidden", "aria-live": "polite",
      testid: "audience-live" });
    this.countAnnounced = null;
    this.countAnnouncedAt = 0;
    this.countTimer = null;
    this.onKeydown = (e) => this.keydown(e);
    this.keepListening = new KeepListening({
      play: () => this.audioPool.unlock(),
      pause: () => this.audioPool.elements.forEach((el) => el.pause()),
      leave: () => this.leave(),
      reconnect: () => {
        // Waiting out a backoff step while the network is back would be silence for nothing.
        const conn = this.session.conn;
        if (this.session.connState === ConnectionState.RECONNECTING && conn && !conn.ws) {
          conn.resync();
        }
      },
    });
    this.session = new RoomSession(roomId, invite, {
      config: app.config,
      audioPool: this.audioPool,
      events: {
        changed: () => this.scheduleRender(),
        audience: () => this.scheduleAudienceRender(),
        joined: (role) => {
          const joined = t("notice.joined", { title: this.session.state.title });
          app.announce(role === "listener" ? joined : `${joined} ${t(`notice.you_are_${role}`)}`);
        },
        notice: (key, params, options) => app.announce(t(key, params), options),
        toast: (key) => app.toast(t(key)),
        error: (code) => app.toast(errorText(code)),
        levels: (levels) => {
          this.levels = levels;
          this.applyLevels();
        },
        reactions: (counts) => this.showReactions(counts),
        invitation: (open) => (open ? this.showInvitation() : this.closeInvitation()),
      },
    });
  }

  get phase() {
    return this.session.phase;
  }

  get state() {
    return this.session.state;
  }

  get info() {
    return this.session.info;
  }

  mount(container) {
    this.container = container;
    document.body.append(this.audioBox, this.countLive);
    document.addEventListener("keydown", this.onKeydown);
    this.render();
    this.session.load();
  }

  unmount() {
    document.removeEventListener("keydown", this.onKeydown);
    this.keepListening.stop();
    this.session.leave();
    this.closeInvitation();
    this.audioBox.remove();
    this.countLive.remove();
    this.container.style.removeProperty("--controls-block-size");
    clearTimeout(this.countTimer);
    this.audienceList?.dispose();
    this.container = null;
  }

  /** The click that joins is also the gesture that lets audio play (iOS Safari). */
  async join(event) {
    event?.preventDefault();
    this.audioPool.ensure(this.session.slots);
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
    this.session.join();
  }

  leave() {
    this.app.navigate("/"); // unmount sends `leave`
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

  answerInvitation(yes) {
    this.closeInvitation();
    this.session.answerInvitation(yes);
  }

  closeInvitation() {
    if (this.invitation?.open) this.invitation.close();
    this.invitation?.remove();
    this.invitation = null;
  }

  // --- active speakers and reactions (drawn in place, no re-render at 5 Hz) -----------------

  /**
   * The server sends the active speakers when they change (docs/sfu.md), not periodically: a
   * steady voice is one message. So the latest list holds until the next one.
   */
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
    const allowed = new Set(this.reactions().map((r) => r.emoji));
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

  /** Redraw the audience section alone (its count changes every second in a busy room). */
  scheduleAudienceRender() {
    if (this.audienceQueued) return;
    this.audienceQueued = true;
    requestAnimationFrame(() => {
      this.audienceQueued = false;
      if (!this.renderQueued) this.renderAudienceInPlace(); // else the whole room redraws
    });
  }

  renderAudienceInPlace() {
    const section = this.container?.querySelector("[data-testid=audience]");
    if (!section || this.phase !== Phase.IN_ROOM) {
      this.render();
      return;
    }
    const refocus = keepFocus(this.container);
    const restore = this.audienceOpen ? this.audienceList?.keep() : null;
    section.replaceWith(this.renderAudience());
    if (restore) restore();
    else if (this.audienceOpen) this.audienceList?.draw();
    refocus();
    this.announceCount();
  }

  render() {
    if (!this.container) return;
    // The audience list is the same element before and after, and building the new body
    // already takes it out of the page: read its scroll offset first, put it back after.
    const restore = this.audienceOpen ? this.audienceList?.keep() : null;
    const refocus = keepFocus(this.container);
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
    if (restore) restore();
    else if (this.audienceOpen) this.audienceList?.draw(); // just opened
    refocus();
    if (this.phase === Phase.IN_ROOM) this.keepListening.start(this.state.title, this.app.siteName);
    else this.keepListening.stop();
    if (this.phase === Phase.IN_ROOM) {
      this.applyLevels();
      this.announceCount();
      // The controls are fixed at the bottom and their height varies (buttons wrap on a
      // phone): the page ends that much lower, so its last lines can be scrolled out from
      // under them.
      const controls = this.container.querySelector(".controls");
      if (controls) {
        this.container.style.setProperty("--controls-block-size", `${controls.offsetHeight}px`);
      }
    }
  }

  renderHeader(room) {
    return h("header", { class: "room-header" },
      h("h1", { dir: "auto", testid: "room-title" }, room.title),
      room.description ? h("p", { class: "muted", dir: "auto" }, room.description) : null,
      // Before joining there is no connection to speak of: "Not connected" above "Tap to
      // listen" reads as a fault to someone who has not tapped yet.
      this.phase === Phase.IN_ROOM || this.phase === Phase.JOINING
        ? this.renderConnection()
        : null,
      this.renderRelay());
  }

  /** The "listening over a relay" badge, while UDP is blocked and audio comes over HTTPS. */
  renderRelay() {
    const relay = this.session.relay;
    if (!relay) return null;
    return h("p", { class: "connection relay", testid: "relay-badge", role: "status",
      "data-state": this.session.relayState ?? "connecting", "data-decoder": relay.decoder ?? "",
      title: t("room.relay_explained") }, t("room.relay_badge"));
  }

  renderConnection() {
    const key = {
      [ConnectionState.IDLE]: "connection.idle",
      [ConnectionState.CONNECTING]: "connection.connecting",
      [ConnectionState.JOINED]: "connection.joined",
      [ConnectionState.RECONNECTING]: "connection.reconnecting",
      [ConnectionState.CLOSED]: "connection.closed",
    }[this.session.connState];
    return h("p", { class: `connection ${this.session.connState}`, testid: "connection-state",
      "data-state": this.session.connState, role: "status" }, t(key));
  }

  renderScheduled() {
    const isHost = this.app.user && this.info.host?.id === this.app.user.id;
    return [
      this.renderHeader(this.info),
      h("p", { testid: "scheduled-notice" }, t("room.scheduled_for", {
        when: this.info.scheduled_start ? formatDateTime(this.info.scheduled_start) : "",
      })),
      h("div", { class: "row" },
        isHost
          ? h("button", { type: "button", class: "primary", testid: `start-room-${this.info.id}`,
              onclick: () => this.session.start() }, t("lobby.start_now"))
          : null,
        h("a", { href: "/", testid: "back-to-lobby" }, t("room.back_to_lobby"))),
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
        t("lobby.hosted_by", { name: info.host?.display_name ?? "" }), t("common.separator"),
        t("lobby.listener_count", { count: info.listener_count ?? 0 })),
      h("section", { class: "panel prejoin" }, action),
      h("a", { href: "/", testid: "back-to-lobby" }, t("room.back_to_lobby")),
    ];
  }

  renderClosed() {
    const reason = this.session.closedReason || "room_not_found";
    return [
      h("section", { class: "panel", testid: "room-closed", "data-reason": reason },
        h("h1", {}, this.info ? this.info.title : t("room.unavailable")),
        h("p", {}, this.phase === Phase.MISSING ? errorText(reason) : t(`closed.${reason}`)),
        h("a", { href: "/", class: "button primary", testid: "back-to-lobby" },
          t("room.back_to_lobby"))),
    ];
  }

  /** On a phone one column; from 1024 px the stage and audience take the width, with the
   * room's title and state and the hand queue in a column beside them (style.css). */
  renderRoom() {
    const s = this.state;
    return [
      h("div", { class: "room-layout" },
        h("div", { class: "room-side", testid: "room-side" },
          this.renderHeader(s),
          isModerator(s) ? this.renderHandQueue() : null),
        h("div", { class: "room-main", testid: "room-main" },
          this.audioPool.blocked
            ? h("button", { type: "button", class: "primary big", testid: "tap-to-listen",
                onclick: () => {
                  this.audioPool.unlock();
                  this.scheduleRender();
                } }, t("room.tap_to_listen"))
            : null,
          h("section", { "aria-labelledby": "stage-heading", testid: "stage" },
            h("h2", { id: "stage-heading" }, t("room.stage")),
            h("ul", { class: "people stage" }, stage(s).map((p) => this.tile(p)))),
          this.renderAudience())),
      this.renderControls(),
    ];
  }

  /**
   * The audience: how many listen (the server's count, exact within a second), a few faces
   * (yourself, then the server's sample), and on request everyone, in a virtual list read
   * page by page as it scrolls.
   */
  renderAudience() {
    const s = this.state;
    const count = s.audience.count;
    // Others' raised hands are for moderators (who hold them in `participants`) to see.
    const faces = audienceFaces(s).map((p) => listenerView(s, p)).map((p) =>
      (p.hand_raised && p.user_id !== s.me && !isModerator(s) ? { ...p, hand_raised: false } : p));
    return h("section", { "aria-labelledby": "audience-heading", testid: "audience" },
      h("h2", { id: "audience-heading" }, t("room.audience")),
      h("p", { class: "audience-count", testid: "audience-count", "data-count": String(count) },
        t("room.listening", { count })),
      faces.length > 0
        ? h("ul", { class: "people audience", testid: "audience-faces" },
            faces.map((p) => this.tile(p)))
        : null,
      count > 0 || audience(s).length > 0
        ? h("button", { type: "button", class: "audience-toggle", testid: "audience-toggle",
            "aria-expanded": this.audienceOpen ? "true" : "false", "aria-controls": "audience-list",
            onclick: () => this.toggleAudience() },
            t(this.audienceOpen ? "room.hide_audience" : "room.show_audience"))
        : null,
      this.audienceOpen ? this.audienceListElement() : null);
  }

  toggleAudience() {
    this.audienceOpen = !this.audienceOpen;
    // Opening reads the list from its start again: pages read earlier are a moving list's past.
    if (this.audienceOpen) {
      this.session.refreshAudience();
      if (this.audienceList) this.audienceList.element.scrollTop = 0;
    }
    this.render();
  }

  /** The virtual list, updated with what is read so far; made once and kept across renders. */
  audienceListElement() {
    const s = this.state;
    this.audienceList ??= new VirtualList({
      rowHeight: AUDIENCE_ROW_PX,
      label: t("room.audience_list"),
      testid: "audience-list",
      id: "audience-list",
      renderRow: (p) => this.audienceRow(listenerView(this.state, p)),
      renderPlaceholder: () => [h("span", { class: "avatar small placeholder" }),
        h("span", { class: "name placeholder" })],
      onNearEnd: () => this.session.loadMoreAudience(),
    });
    this.audienceList.element.setAttribute("aria-label", t("room.audience_list"));
    this.audienceList.element.setAttribute("aria-busy",
      this.session.audienceLoading ? "true" : "false");
    this.audienceList.update(audience(s), audienceLength(s), audienceHasMore(s));
    return this.audienceList.element;
  }

  /** One row of the audience list: face, name, raised hand (for moderators), menu. */
  audienceRow(p) {
    const s = this.state;
    const isMe = p.user_id === s.me;
    const hand = p.hand_raised && (isMe || isModerator(s));
    return [h("div", { class: "audience-row", "data-user-id": p.user_id,
      testid: `listener-${p.user_id}` },
      avatar(p.user_id, p.display_name, "small"),
      h("span", { class: "name", dir: "auto" }, p.display_name,
        isMe ? h("span", { class: "muted" }, " ", t("room.you")) : null),
      hand
        ? h("span", { class: "hand-mark", testid: `listener-hand-${p.user_id}` },
            icon("hand"), h("span", { class: "visually-hidden" }, t("room.hand_raised")))
        : null,
      this.canModerate(p) ? this.personMenu(p, "listener") : null)];
  }

  /**
   * Tell screen readers the count when it changed, at most every COUNT_ANNOUNCE_MS; a change
   * within that time is told when it is up (the latest count, once).
   */
  announceCount() {
    const count = this.state?.audience.count;
    if (count === undefined) return;
    if (this.countAnnounced === null) {
      this.countAnnounced = count; // the welcome's: the "joined" notice already speaks
      this.countAnnouncedAt = Date.now();
      return;
    }
    if (count === this.countAnnounced || this.countTimer) return;
    const wait = this.countAnnouncedAt + COUNT_ANNOUNCE_MS - Date.now();
    this.countTimer = setTimeout(() => {
      this.countTimer = null;
      const now = this.state?.audience.count;
      if (now === undefined || now === this.countAnnounced) return;
      this.countAnnounced = now;
      this.countAnnouncedAt = Date.now();
      this.countLive.textContent = t("room.listening", { count: now });
    }, Math.max(0, wait));
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
                onclick: () => this.session.send("invite_to_speak", { user_id: p.user_id }) },
                t("room.invite")),
              h("button", { type: "button", testid: `dismiss-hand-${p.user_id}`,
                "aria-label": t("room.dismiss_hand_named", { name: p.display_name }),
                onclick: () => this.session.send("lower_hand", { user_id: p.user_id }) },
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
      this.canModerate(p) ? this.personMenu(p, "person") : null);
  }

  canModerate(p) {
    const mine = myRole(this.state);
    return p.user_id !== this.state.me && isModerator(this.state) && RANK[mine] > RANK[p.role];
  }

  /** `place`: "person" (stage and faces) or "listener" (the audience list), for its testid. */
  personMenu(p, place) {
    const id = p.user_id;
    const button = `${place}-menu-${id}`;
    const open = this.openMenu === button;
    const onStage = STAGE_ROLES.has(p.role);
    const act = (type, testid, key) =>
      h("li", {}, h("button", { type: "button", testid: `${testid}-${id}`,
        onclick: () => {
          this.session.send(type, { user_id: id });
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
        type: "button", class: "menu-button", testid: button,
        "aria-expanded": open ? "true" : "false",
        "aria-controls": `menu-${id}`,
        "aria-label": t("menu.label", { name: p.display_name }),
        onclick: () => {
          this.openMenu = open ? null : button;
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
            onclick: () => this.session.toggleMic(),
          }, icon(muted ? "mic-off" : "mic"), muted
            ? (me.muted_by_moderator ? t("room.muted_by_moderator") : t("room.unmute_me"))
            : t("room.mute_me"))
        : me?.is_guest
          ? h("span", { class: "muted", testid: "guest-listens" }, t("room.guests_listen"))
          : h("button", {
              type: "button", testid: "raise-hand",
              "aria-pressed": me?.hand_raised ? "true" : "false",
              onclick: () => this.session.send(me?.hand_raised ? "lower_hand" : "raise_hand"),
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
            onclick: () => this.session.send("set_accounts_only", { enabled: !s.accountsOnly }),
          }, t("room.accounts_only"))
        : null,
      myRole(s) === "host" && this.app.config?.federation
        ? h("button", {
            type: "button", testid: "interconnected",
            "aria-pressed": s.interconnected ? "true" : "false",
            onclick: () => this.session.send("set_interconnected", { enabled: !s.interconnected }),
          }, t("room.interconnected"))
        : null,
      isModerator(s)
        ? this.confirming === "end-room"
          ? h("button", { type: "button", class: "danger", testid: "confirm-end-room",
              onclick: () => this.session.send("end_room") }, t("room.confirm_end"))
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
        this.reactions().map(({ name, emoji }) => h("button", {
          type: "button", class: "reaction", testid: `reaction-${name}`,
          "aria-label": t(`reaction.${name}`),
          onclick: () => this.session.send("reaction", { emoji }),
        }, emoji))));
  }

  /** The server's reactions (/api/config), in the order it gives. */
  reactions() {
    return this.app.config?.reactions ?? [];
  }

  /** `rotate`: void every link shared so far and share the new one. */
  async share(rotate = false) {
    const own = new URL(roomPath(this.roomId), location.href).href;
    const url = await this.session.shareUrl(rotate, own);
    if (url) await shareLink(this.app, this.state.title, url);
  }

  keydown(event) {
    if (event.key === "Escape" && (this.openMenu || this.confirming)) this.closeMenu();
  }

  /** Close the person menu and give focus back to the button that opened it. */
  closeMenu() {
    const button = this.openMenu;
    this.openMenu = null;
    this.confirming = null;
    this.render();
    if (button) this.container?.querySelector(`[data-testid="${CSS.escape(button)}"]`)?.focus();
  }
}
