// The lobby: live rooms with their speakers and counts (busiest first, a page at a time),
// scheduled rooms, and the form to open or schedule a room.

import * as api from "../sdk/api.js";
import { h, replaceChildrenKeepingFocus } from "../dom.js";
import { errorText, formatDateTime, locale, t } from "../i18n.js";
import { avatar, limit, roomPath, shareLink } from "./common.js";
import { DateTimePicker } from "./date-picker.js";

const REFRESH_MS = 15000;
const SPEAKERS_SHOWN = 5;

export class LobbyView {
  constructor(app) {
    this.app = app;
    this.live = null;
    this.scheduled = null;
    this.more = { live: null, scheduled: null }; // the server's next_cursor for each list
    this.loadError = null;
    this.timer = null;
    this.container = null;
    this.createPanel = null; // {key, element}: the "Start a room" form, kept across refreshes
    this.remotePanel = null; // the "room on another server" form, kept across refreshes
  }

  mount(container) {
    this.container = container;
    this.render();
    this.load();
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") this.load();
    }, REFRESH_MS);
  }

  unmount() {
    clearInterval(this.timer);
  }

  async load() {
    try {
      const [live, scheduled] = await Promise.all([
        api.listRooms("live"),
        api.listRooms("scheduled"),
      ]);
      this.live = live.rooms;
      this.scheduled = scheduled.rooms;
      this.more = { live: live.next_cursor, scheduled: scheduled.next_cursor };
      this.loadError = null;
    } catch (err) {
      this.loadError = err.code;
    }
    this.render();
  }

  /** The next page of one list, appended; a room that moved up meanwhile is not shown twice. */
  async loadMore(status) {
    try {
      const page = await api.listRooms(status, this.more[status]);
      const shown = this[status];
      const ids = new Set(shown.map((room) => room.id));
      this[status] = shown.concat(page.rooms.filter((room) => !ids.has(room.id)));
      this.more[status] = page.next_cursor;
    } catch (err) {
      this.app.toast(errorText(err.code));
    }
    this.render();
  }

  render() {
    if (!this.container) return;
    replaceChildrenKeepingFocus(this.container,
      h("h1", { class: "visually-hidden" }, t("lobby.heading")),
      this.loadError
        ? h("p", { class: "notice", role: "alert", testid: "lobby-error" }, errorText(this.loadError))
        : null,
      // One column on a phone; on a wide screen the live rooms take the width and starting a
      // room and what is coming up sit beside them (style.css, .lobby).
      h("div", { class: "lobby" },
        this.renderCreate(),
        this.renderRemote(),
        h("section", { class: "lobby-live", "aria-labelledby": "live-heading",
          testid: "live-rooms" },
          h("h2", { id: "live-heading" }, t("lobby.live")),
          this.renderList(this.live, (room) => this.liveCard(room), "lobby.no_live"),
          this.moreButton("live")),
        h("section", { class: "lobby-scheduled", "aria-labelledby": "scheduled-heading",
          testid: "scheduled-rooms" },
          h("h2", { id: "scheduled-heading" }, t("lobby.scheduled")),
          this.renderList(this.scheduled, (room) => this.scheduledCard(room),
            "lobby.no_scheduled"),
          this.moreButton("scheduled"))),
    );
  }

  /** Signed-in users of a federating server open a room of another server by its address. */
  renderRemote() {
    const user = this.app.user;
    if (!this.app.config?.federation || !user || user.is_guest) return null;
    if (this.remotePanel) return this.remotePanel;
    const input = h("input", { id: "remote-room-input", testid: "remote-room-input",
      dir: "ltr", autocomplete: "off", spellcheck: "false", required: true,
      placeholder: "ROOM@server.example", "aria-describedby": "remote-room-hint" });
    const form = h("form", { class: "remote-room-form", testid: "remote-room-form",
      onsubmit: (event) => {
        event.preventDefault();
        const ref = input.value.trim();
        if (/^[A-Za-z0-9_-]{1,32}@[a-z0-9.-]{1,253}$/.test(ref)) {
          this.app.navigate(`/f/${encodeURIComponent(ref)}`);
        } else {
          this.app.toast(t("lobby.remote_hint"));
        }
      } },
      h("label", { for: "remote-room-input" }, t("lobby.remote_heading")),
      h("p", { class: "muted", id: "remote-room-hint" }, t("lobby.remote_hint")),
      input,
      h("button", { type: "submit", testid: "remote-room-go" }, t("lobby.remote_go")));
    this.remotePanel = h("section", { class: "panel", testid: "remote-room-panel" }, form);
    return this.remotePanel;
  }

  moreButton(status) {
    if (!this.more[status]) return null;
    return h("button", { type: "button", testid: `more-${status}`,
      onclick: () => this.loadMore(status) }, t("lobby.more"));
  }

  renderList(rooms, card, emptyKey) {
    if (rooms === null) return h("p", { class: "muted" }, t("common.loading"));
    if (rooms.length === 0) return h("p", { class: "muted" }, t(emptyKey));
    return h("ul", { class: "room-list" }, rooms.map((room) => h("li", {}, card(room))));
  }

  liveCard(room) {
    const speakers = room.speakers || [];
    const extra = speakers.length - SPEAKERS_SHOWN;
    return h("article", { class: "room-card", testid: `room-card-${room.id}` },
      h("h3", {},
        h("a", { href: roomPath(room.id), testid: `room-link-${room.id}`, dir: "auto" }, room.title)),
      room.visibility !== "open"
        ? h("span", { class: "badge" }, t(`visibility.${room.visibility}`))
        : null,
      h("ul", { class: "speaker-row", "aria-label": t("lobby.speakers") },
        speakers.slice(0, SPEAKERS_SHOWN).map((s) =>
          h("li", { class: "speaker-chip" }, avatar(s.user_id, s.display_name, "small"),
            h("span", { dir: "auto" }, s.display_name))),
        extra > 0 ? h("li", { class: "muted" }, t("lobby.more_speakers", { count: extra })) : null),
      h("p", { class: "counts muted", testid: `room-counts-${room.id}` },
        t("lobby.speaker_count", { count: room.speaker_count ?? speakers.length }),
        t("common.separator"),
        t("lobby.listener_count", { count: room.listener_count ?? 0 })),
    );
  }

  scheduledCard(room) {
    const isHost = this.app.user && room.host && room.host.id === this.app.user.id;
    return h("article", { class: "room-card", testid: `room-card-${room.id}` },
      h("h3", { dir: "auto" }, room.title),
      h("p", {},
        h("time", { datetime: room.scheduled_start }, formatDateTime(room.scheduled_start)),
        t("common.separator"),
        t("lobby.hosted_by", { name: room.host?.display_name ?? "" })),
      room.description ? h("p", { class: "muted", dir: "auto" }, room.description) : null,
      h("div", { class: "row" },
        h("button", {
          type: "button", testid: `share-${room.id}`,
          onclick: () => this.share(room),
        }, t("room.share")),
        isHost
          ? h("button", {
              type: "button", class: "primary", testid: `start-room-${room.id}`,
              onclick: () => this.start(room),
            }, t("lobby.start_now"))
          : null),
    );
  }

  /**
   * "Start a room": a primary button that opens the form, whose "Schedule for later" part is a
   * disclosure with the picker in the reader's calendar. Built once per person and language
   * and kept across the lobby's refreshes, so what someone is typing survives them.
   */
  renderCreate() {
    const user = this.app.user;
    if (!user || user.is_guest) {
      return h("section", { class: "panel", testid: "create-room-signin" },
        h("p", {}, t("lobby.sign_in_to_create")),
        h("button", { type: "button", class: "primary", testid: "create-signin",
          onclick: () => this.app.auth.open("signin") }, t("auth.signin")));
    }
    const key = `${user.id} ${locale()}`;
    if (this.createPanel?.key !== key) this.createPanel = { key, element: this.buildCreate() };
    return this.createPanel.element;
  }

  buildCreate() {
    const error = h("p", { class: "form-error", role: "alert", testid: "create-room-error" });
    const picker = new DateTimePicker({ testid: "schedule" });
    const submit = h("button", { type: "submit", class: "primary", testid: "create-room" },
      t("lobby.create_submit"));
    const schedule = h("details", { class: "schedule", testid: "schedule-details",
      ontoggle: () => {
        submit.textContent = t(schedule.open ? "lobby.schedule_submit" : "lobby.create_submit");
      } },
      h("summary", { testid: "schedule-open" }, t("lobby.schedule_optional")),
      picker.element);
    const form = h("form", { class: "stack", id: "create-room-form", hidden: true,
      onsubmit: (e) => this.create(e, error, schedule.open ? picker.value() : null) },
      h("label", { class: "field" }, h("span", {}, t("lobby.room_title")),
        h("input", { name: "title", required: true, dir: "auto",
          maxlength: limit(this.app, "title_max"),
          testid: "room-title-input" })),
      h("label", { class: "field" }, h("span", {}, t("lobby.room_description")),
        h("textarea", { name: "description", rows: "2", dir: "auto",
          maxlength: limit(this.app, "description_max"),
          testid: "room-description-input" })),
      h("fieldset", { class: "field" },
        h("legend", {}, t("lobby.visibility")),
        ["open", "social", "closed"].map((v) =>
          h("label", { class: "radio" },
            h("input", { type: "radio", name: "visibility", value: v, checked: v === "open",
              testid: `visibility-${v}` }),
            h("span", {}, t(`visibility.${v}`), " — ",
              h("span", { class: "muted" }, t(`visibility.${v}_hint`)))))),
      schedule,
      error,
      submit);
    const open = h("button", { type: "button", class: "primary big start-room",
      testid: "create-room-open", "aria-expanded": "false", "aria-controls": "create-room-form",
      onclick: () => {
        form.hidden = !form.hidden;
        open.setAttribute("aria-expanded", form.hidden ? "false" : "true");
        if (!form.hidden) form.querySelector("input[name=title]").focus();
      } }, h("span", { class: "plus", "aria-hidden": "true" }, "+"), t("lobby.create"));
    return h("section", { class: "panel create-room", testid: "create-room-panel" }, open, form);
  }

  async create(event, errorEl, scheduledStart) {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(event.target));
    const fields = {
      title: data.title.trim(),
      description: (data.description || "").trim(),
      visibility: data.visibility,
    };
    errorEl.textContent = "";
    if (scheduledStart) {
      if (scheduledStart.getTime() <= Date.now()) {
        errorEl.textContent = t("lobby.schedule_past");
        return;
      }
      // The picker gives the person's wall-clock time; the server takes an absolute instant.
      fields.scheduled_start = scheduledStart.toISOString();
    }
    try {
      const room = await api.createRoom(fields);
      if (room.status === "live") this.app.navigate(roomPath(room.id));
      else {
        this.app.announce(t("lobby.scheduled_done", { title: room.title }));
        this.createPanel = null; // a fresh, closed form for the next room
        await this.load();
      }
    } catch (err) {
      errorEl.textContent = errorText(err.code);
    }
  }

  async start(room) {
    try {
      await api.startRoom(room.id);
      this.app.navigate(roomPath(room.id));
    } catch (err) {
      this.app.toast(errorText(err.code));
    }
  }

  async share(room) {
    await shareLink(this.app, room.title, new URL(roomPath(room.id), location.href).href);
  }
}
