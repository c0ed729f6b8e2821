// The embed page: the room's card, and listening as a guest in place. Speaking needs the full
// client ("Open in app"): this page never asks for the microphone (its Permissions-Policy
// forbids it). Its words live here, in both languages, so it loads no catalogue.

import * as api from "./sdk/api.js";
import { AudioPool } from "./sdk/media.js";
import { Phase, RoomSession } from "./sdk/room-session.js";

const WORDS = {
  fa: {
    listen: "گوش دادن", stop: "توقف", open: "باز کردن در برنامه برای صحبت",
    live: "زنده", scheduled: "زمان‌بندی‌شده", ended: "پایان یافته", missing: "این اتاق پیدا نشد.",
    listeners: (n) => `${n} شنونده`, host: (name) => `میزبان: ${name}`,
    joining: "در حال پیوستن…", listening: "در حال گوش دادن", closed: "اتاق بسته شد.",
    guest: "شنونده", failed: "پخش ممکن نشد؛ در برنامه باز کنید.",
  },
  en: {
    listen: "Listen", stop: "Stop", open: "Open in app to speak",
    live: "Live", scheduled: "Scheduled", ended: "Ended", missing: "This room was not found.",
    listeners: (n) => `${n} listening`, host: (name) => `Hosted by ${name}`,
    joining: "Joining…", listening: "Listening", closed: "The room has closed.",
    guest: "Listener", failed: "Could not play here; open it in the app.",
  },
};

const params = new URLSearchParams(location.search);
const lang = params.get("lang") === "en" || (!params.get("lang") &&
  !navigator.language.startsWith("fa")) ? "en" : "fa";
const w = WORDS[lang];
const digits = (n) => new Intl.NumberFormat(lang === "fa" ? "fa-IR" : "en-US").format(n);
const $ = (id) => document.getElementById(id);
const roomId = decodeURIComponent(location.pathname.split("/").pop() || "");

document.documentElement.lang = lang;
document.documentElement.dir = lang === "fa" ? "rtl" : "ltr";
$("open").href = `/r/${encodeURIComponent(roomId)}`;
$("open").textContent = w.open;

const audioPool = new AudioPool($("audio"));
let session = null;

function showInfo(info) {
  $("title").textContent = info.title;
  document.title = info.title;
  document.querySelector(".embed").dataset.status = info.status;
  const parts = [w[info.status] ?? info.status];
  if (info.host?.display_name) parts.push(w.host(info.host.display_name));
  if (info.status === "live") parts.push(w.listeners(digits(info.listener_count ?? 0)));
  $("meta").textContent = parts.join(" — ");
  $("stage").textContent = (info.speakers || []).map((p) => p.display_name).join(lang === "fa" ? "، " : ", ");
  $("listen").hidden = info.status !== "live";
  $("listen").textContent = w.listen;
}

function showSession() {
  const s = session;
  if (s.phase === Phase.IN_ROOM) {
    $("status").textContent = w.listening;
    const stage = [...(s.state?.participants?.values?.() ?? [])]
      .filter((p) => p.role && p.role !== "listener").map((p) => p.display_name);
    if (stage.length) $("stage").textContent = stage.join(lang === "fa" ? "، " : ", ");
    $("listen").textContent = w.stop;
  } else if (s.phase === Phase.JOINING) {
    $("status").textContent = w.joining;
  } else if (s.phase === Phase.CLOSED) {
    $("status").textContent = w.closed;
    $("listen").hidden = true;
  }
}

async function toggle() {
  if (session && session.phase !== Phase.CLOSED) {
    session.leave();
    session = null;
    $("status").textContent = "";
    $("listen").textContent = w.listen;
    return;
  }
  audioPool.ensure(1);
  audioPool.unlock();
  try {
    const config = await api.getConfig().catch(() => null);
    if (!api.token()) await api.guest(w.guest);
    session = new RoomSession(roomId, null, {
      config, audioPool,
      events: { changed: showSession, error: () => { $("status").textContent = w.failed; } },
    });
    await session.load();
    if (session.phase === Phase.PREJOIN) {
      audioPool.ensure(session.slots);
      session.join();
    }
  } catch {
    $("status").textContent = w.failed;
  }
}

$("listen").addEventListener("click", toggle);

api.getRoom(roomId).then(showInfo, () => {
  $("title").textContent = w.missing;
  $("open").hidden = true;
});
