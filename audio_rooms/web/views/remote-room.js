// A room on another server, listened to through this one (docs/federation.md).
//
//   /f/<ROOM_ID>@<server>
//
// The user's browser talks only to its own server: it joins through it (with the user's
// consent for that server, asked for here when missing), gets a listen-only WebRTC answer from
// its SFU, and reads the room's stage and counts from it every two seconds.

import * as api from "../sdk/api.js";
import { AudioPool, MediaSession, Microphone } from "../sdk/media.js";
import { h } from "../dom.js";
import { errorText, t } from "../i18n.js";

const POLL_MS = 2000;
const ENDING = new Set(["banned", "removed", "room_ended", "room_not_found", "not_in_room"]);

export class RemoteRoomView {
  constructor(app, ref) {
    this.app = app;
    this.ref = ref;
    this.server = ref.slice(ref.lastIndexOf("@") + 1);
    this.room = null;
    this.error = null;
    this.phase = "idle"; // idle | joining | listening | left
    this.media = null;
    this.timer = null;
    this.container = null;
    this.you = null; // {role, may_speak, invited, hand_raised} in that room, from its server
    this.mic = null;
  }

  mount(container) {
    this.container = container;
    this.render();
  }

  unmount() {
    this.stop();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.media?.close();
    this.media = null;
    this.mic?.release();
    this.mic = null;
  }

  async join() {
    this.phase = "joining";
    this.error = null;
    this.render();
    try {
      this.room = (await api.joinRemote(this.ref)).room;
      this.audio = new AudioPool(this.container.querySelector("[data-testid=remote-audio]"));
      this.audio.unlock();
      const config = this.app.config || {};
      this.media = new MediaSession({
        iceServers: config.ice_servers, slots: config.slots || 3, audioPool: this.audio,
        onStateChange: (state) => { this.connection = state; this.render(); },
      });
      const answer = await api.remoteMedia(this.ref, await this.media.offer(null));
      await this.media.applyAnswer(answer);
      this.phase = "listening";
      this.timer = setInterval(() => this.poll(), POLL_MS);
    } catch (err) {
      this.fail(err.code || "network_error");
    }
    this.render();
  }

  async poll() {
    try {
      const state = await api.remoteRoom(this.ref);
      this.room = state.room;
      this.you = state.you || null;
    } catch (err) {
      if (ENDING.has(err.code)) this.fail(err.code);
    }
    this.render();
  }

  fail(code) {
    this.stop();
    this.error = code;
    this.phase = "idle";
  }

  /** Hands, invitations and the microphone: the other server decides, this one relays. */
  async act(action) {
    try {
      if (action === "unmute" || action === "accept_invitation") await this.openMic();
      await api.actRemote(this.ref, action);
      if (action === "mute") this.media?.setMicTrack(null);
      await this.poll();
    } catch (err) {
      this.app.toast(errorText(err.code || "network_error"));
    }
  }

  async openMic() {
    if (!this.mic) this.mic = new Microphone();
    const track = await this.mic.acquire();
    await this.media?.setMicTrack(track);
  }

  controls() {
    const you = this.you;
    if (this.phase !== "listening" || !you) return [];
    const button = (testid, action, key, cls = "") =>
      h("button", { type: "button", class: cls, testid, onclick: () => this.act(action) }, t(key));
    if (you.role === "listener") {
      if (you.invited) {
        return [button("accept-invitation", "accept_invitation", "room.accept", "primary"),
          button("decline-invitation", "decline_invitation", "room.decline")];
      }
      return [you.hand_raised
        ? button("lower-hand", "lower_hand", "room.lower_hand")
        : button("raise-hand", "raise_hand", "room.raise_hand")];
    }
    return [you.may_speak
      ? button("mic-toggle", "mute", "room.mute_me")
      : button("mic-toggle", "unmute", "room.unmute_me", "primary")];
  }

  async allow() {
    try {
      await api.giveConsent(this.server);
      await this.join();
    } catch (err) {
      this.fail(err.code || "network_error");
      this.render();
    }
  }

  async leave() {
    this.stop();
    this.phase = "left";
    try {
      await api.leaveRemote(this.ref);
    } catch {
      // Leaving is best effort: the other server drops us when refreshes stop.
    }
    this.app.navigate("/");
  }

  render() {
    if (!this.container) return;
    const room = this.room;
    const stage = room ? (room.participants || []) : [];
    const listeners = room?.audience?.count ?? 0;
    const audioBox = this.container.querySelector("[data-testid=remote-audio]")
      || h("div", { testid: "remote-audio", hidden: true });
    this.container.replaceChildren(
      h("section", { class: "panel remote-room", testid: "remote-room" },
        h("p", { class: "muted", testid: "remote-server" },
          t("remote.on_server", { server: this.server })),
        h("h1", { dir: "auto", testid: "remote-title" }, room?.title || this.ref),
        room
          ? h("p", { testid: "remote-counts" },
              t("remote.counts", { speakers: stage.length, listeners }))
          : null,
        stage.length
          ? h("ul", { class: "remote-stage", testid: "remote-stage" },
              ...stage.map((p) => h("li", { dir: "auto" }, p.display_name)))
          : null,
        this.error
          ? h("p", { class: "notice", role: "alert", testid: "remote-error" },
              errorText(this.error))
          : null,
        this.error === "federation_consent_missing"
          ? h("button", { type: "button", class: "primary", testid: "remote-allow",
              onclick: () => this.allow() }, t("remote.allow", { server: this.server }))
          : null,
        this.phase === "idle" && this.error !== "federation_consent_missing"
          && !ENDING.has(this.error)
          ? h("button", { type: "button", class: "primary", testid: "join-button",
              onclick: () => this.join() }, t("remote.listen"))
          : null,
        this.phase === "joining" ? h("p", { class: "muted" }, t("common.loading")) : null,
        this.phase === "listening"
          ? h("p", { class: "muted", testid: "remote-listening" }, t("remote.listening"))
          : null,
        ...this.controls(),
        this.phase === "listening"
          ? h("button", { type: "button", testid: "leave-button", onclick: () => this.leave() },
              t("room.leave"))
          : null,
        audioBox),
    );
  }
}
