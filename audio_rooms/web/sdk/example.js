// A minimal listening page built from the SDK alone (docs/sdk.md walks through it): join a
// room as a guest, show who is on stage and who speaks, hear them, leave.
import { connect, roomState } from "./index.js";

const $ = (id) => document.querySelector(`[data-testid='${id}']`);
const status = (text) => { $("status").textContent = text; };

const client = await connect();
const form = $("join-form");
form.room.value = new URLSearchParams(location.search).get("room") ?? "";
if (!form.room.value) {
  // No room in the address: offer the busiest live one.
  const { rooms } = await client.rooms("live");
  if (rooms.length) form.room.value = rooms[0].id;
}

if (client.user) {
  // Signed in already (the session cookie): no guest name needed.
  form.name.value = client.user.display_name;
  form.name.disabled = true;
}

let room = null;
let speaking = new Set();

function draw() {
  const state = room.state;
  $("room-title").textContent = state.title;
  $("listener-count").textContent = String(state.audience.count);
  $("stage").replaceChildren(...roomState.stage(state).map((p) => {
    const li = document.createElement("li");
    li.textContent = `${p.display_name} (${p.role})${p.self_muted || p.muted_by_moderator ? ", muted" : ""}`;
    li.dataset.testid = `speaker-${p.user_id}`;
    li.dataset.speaking = String(speaking.has(p.user_id));
    return li;
  }));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  form.querySelector("button").disabled = true;
  try {
    if (!client.user) await client.guest(form.name.value);
    status("Joining…");
    // Joined inside the click: the browser lets the room's audio play.
    room = await client.join(form.room.value);
  } catch (err) {
    status(`Could not join: ${err.code ?? err.message}`);
    form.querySelector("button").disabled = false;
    return;
  }
  form.hidden = true;
  $("room").hidden = false;
  status(`Joined as ${room.me.display_name}.`);
  room.on("state", draw);
  room.on("active_speakers", (msg) => {
    speaking = new Set(msg.speakers.filter((s) => s.level > 0).map((s) => s.user_id));
    draw();
  });
  const showMedia = (how) => { $("media").textContent = how; $("media").dataset.state = how; };
  showMedia(room.media);
  room.on("media", showMedia);
  room.on("autoplay_blocked", () => { $("play-button").hidden = false; });
  room.on("closed", ({ reason }) => status(`The room closed (${reason}).`));
  draw();
});

$("play-button").addEventListener("click", () => {
  room.listen();
  $("play-button").hidden = true;
});
$("leave-button").addEventListener("click", () => {
  room.leave();
  $("room").hidden = true;
});
