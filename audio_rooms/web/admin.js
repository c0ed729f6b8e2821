// The admin page: lists from /api/admin/..., and its three actions (end a room, ban and unban
// an account). The server checks the administrator role on every request; this page only
// shows what it is given. Its words live here, in both languages: it has no other strings.

const WORDS = {
  en: {
    title: "Administration", rooms: "Live and scheduled rooms", users: "Accounts",
    room: "Room", status: "Status", host: "Host", people: "Speakers / listeners",
    handle: "Handle", name: "Name", role: "Role", created: "Created",
    end: "End", ban: "Ban", unban: "Unban", admin: "administrator", banned: "banned",
    live: "live", scheduled: "scheduled", none: "Nothing here.",
    loading: "Loading…", signin: "Sign in on the main page with an administrator's account first.",
    forbidden: "This page is for server administrators.", failed: "That did not work: ",
    confirmEnd: "End this room for everyone?", confirmBan: "Ban this account from the whole server?",
    other: "فارسی",
  },
  fa: {
    title: "مدیریت", rooms: "اتاق‌های زنده و زمان‌بندی‌شده", users: "حساب‌ها",
    room: "اتاق", status: "وضعیت", host: "میزبان", people: "سخنران / شنونده",
    handle: "شناسه", name: "نام", role: "نقش", created: "ساخته‌شده",
    end: "پایان", ban: "مسدود کردن", unban: "رفع مسدودی", admin: "مدیر", banned: "مسدود",
    live: "زنده", scheduled: "زمان‌بندی‌شده", none: "چیزی نیست.",
    loading: "در حال بارگذاری…", signin: "نخست در صفحهٔ اصلی با حساب مدیر وارد شوید.",
    forbidden: "این صفحه برای مدیران کارگزار است.", failed: "انجام نشد: ",
    confirmEnd: "این اتاق برای همه پایان یابد؟", confirmBan: "این حساب در کل کارگزار مسدود شود؟",
    other: "English",
  },
};

let myId = null; // the administrator using the page: no Ban button on their own row
let lang = localStorage.getItem("admin-locale") || (navigator.language.startsWith("fa") ? "fa" : "en");
const w = (key) => WORDS[lang][key];
const $ = (id) => document.getElementById(id);

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) throw Object.assign(new Error(data?.message || res.statusText), { status: res.status });
  return data;
}

function cell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? "";
  return td;
}

function button(label, testid, action, danger = false) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.testid = testid;
  if (danger) b.className = "danger";
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
      await load();
    } catch (err) {
      $("status").textContent = w("failed") + err.message;
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function fill(table, headings, rows) {
  const head = document.createElement("tr");
  for (const h of headings) {
    const th = document.createElement("th");
    th.textContent = h;
    head.append(th);
  }
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...(rows.length ? rows : [(() => {
    const tr = document.createElement("tr");
    const td = cell(w("none"));
    td.colSpan = headings.length;
    tr.append(td);
    return tr;
  })()]));
}

function roomRow(room) {
  const tr = document.createElement("tr");
  tr.dataset.testid = `room-${room.id}`;
  const people = room.status === "live" ? `${room.speakers} / ${room.listeners}` : (room.starts || "");
  const end = room.status === "live"
    ? button(w("end"), `end-${room.id}`, () => confirm(w("confirmEnd")) &&
      call("POST", `/api/admin/rooms/${encodeURIComponent(room.id)}/end`), true)
    : "";
  tr.append(cell(room.title), cell(w(room.status)), cell(room.host), cell(people), cell(end));
  return tr;
}

function userRow(user) {
  const tr = document.createElement("tr");
  tr.dataset.testid = `user-${user.handle}`;
  const badges = document.createElement("span");
  for (const [on, key] of [[user.admin, "admin"], [user.banned, "banned"]]) {
    if (!on) continue;
    const b = document.createElement("span");
    b.className = `badge ${key}`;
    b.textContent = w(key);
    badges.append(b, " ");
  }
  const path = `/api/admin/users/${encodeURIComponent(user.handle)}`;
  const act = myId && myId.split("@")[0] === user.handle ? "" : user.banned
    ? button(w("unban"), `unban-${user.handle}`, () => call("POST", `${path}/unban`))
    : button(w("ban"), `ban-${user.handle}`, () => confirm(w("confirmBan")) &&
      call("POST", `${path}/ban`, {}), true);
  tr.append(cell(user.handle), cell(user.display_name), cell(badges), cell(user.created), cell(act));
  return tr;
}

async function load() {
  try {
    const [{ user_id: me }, { rooms }, { users }] = await Promise.all([call("GET", "/api/admin/me"),
      call("GET", "/api/admin/rooms"), call("GET", "/api/admin/users")]);
    myId = me;
    fill($("rooms-section").querySelector("table"),
      [w("room"), w("status"), w("host"), w("people"), ""], rooms.map(roomRow));
    fill($("users-section").querySelector("table"),
      [w("handle"), w("name"), w("role"), w("created"), ""], users.map(userRow));
    $("rooms-section").hidden = $("users-section").hidden = false;
    $("status").textContent = "";
  } catch (err) {
    $("rooms-section").hidden = $("users-section").hidden = true;
    $("status").textContent = err.status === 401 ? w("signin") : err.status === 403 ? w("forbidden")
      : w("failed") + err.message;
  }
}

function render() {
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === "fa" ? "rtl" : "ltr";
  document.title = w("title");
  $("title").textContent = w("title");
  $("rooms-title").textContent = w("rooms");
  $("users-title").textContent = w("users");
  $("locale").textContent = w("other");
}

$("locale").addEventListener("click", () => {
  lang = lang === "fa" ? "en" : "fa";
  localStorage.setItem("admin-locale", lang);
  render();
  load();
});
render();
$("status").textContent = w("loading");
load();
setInterval(load, 10000);
