// The room as this client sees it: a pure reducer over the server's welcome snapshot and its
// ordered deltas. No DOM, no sockets: applyDelta() returns the new state plus notices (things a
// person should be told, as catalogue keys), so it can be tested by itself.

export const STAGE_ROLES = new Set(["host", "moderator", "speaker"]);
export const MODERATOR_ROLES = new Set(["host", "moderator"]);

/** State from a `welcome` message. */
export function fromWelcome(welcome) {
  const room = welcome.room;
  const participants = new Map();
  for (const p of room.participants || []) participants.set(p.user_id, { ...p });
  return {
    id: room.id,
    title: room.title,
    description: room.description || "",
    visibility: room.visibility,
    hostId: room.host_id,
    status: room.status,
    version: welcome.version ?? room.version ?? 0,
    me: welcome.you.user_id,
    meIsGuest: Boolean(welcome.you.is_guest),
    participants,
    handQueue: [...(room.hand_queue || [])],
    invited: Boolean(room.invited),
    accountsOnly: Boolean(room.accounts_only),
    ended: null,
  };
}

/**
 * State from a `snapshot` message: the server sends one when a role change shows you more (you
 * became a moderator, so you now see the hand queue and others' raised hands). It replaces the
 * room as drawn; who you are does not change. One older than the state held is stale.
 */
export function fromSnapshot(state, msg) {
  const version = msg.version ?? msg.room?.version;
  if (typeof version === "number" && version < state.version) return state;
  const next = fromWelcome({ room: msg.room, version, you: { user_id: state.me,
    is_guest: state.meIsGuest } });
  return { ...next, ended: state.ended };
}

export function myself(state) {
  return state.participants.get(state.me);
}

export function myRole(state) {
  return myself(state)?.role ?? "listener";
}

export function isModerator(state) {
  return MODERATOR_ROLES.has(myRole(state));
}

export function stage(state) {
  const order = { host: 0, moderator: 1, speaker: 2 };
  return [...state.participants.values()]
    .filter((p) => STAGE_ROLES.has(p.role))
    .sort((a, b) => order[a.role] - order[b.role]);
}

export function audience(state) {
  return [...state.participants.values()].filter((p) => !STAGE_ROLES.has(p.role));
}

/**
 * Apply one delta. Returns {state, notices}.
 *
 * Versions: one transition may produce several deltas that share its version (an accepted
 * invitation is a role change and a lowered hand), and deltas meant for moderators are not sent
 * to others, so a listener legitimately sees versions jump. The server delivers in order and
 * leaves out what the welcome snapshot already holds; so a delta below the current version is
 * stale (from before a resync) and ignored, and every other one is applied.
 */
export function applyDelta(state, msg) {
  if (typeof msg.version === "number" && msg.version < state.version) {
    return { state, notices: [] };
  }
  const next = {
    ...state,
    participants: new Map(state.participants),
    handQueue: [...state.handQueue],
    version: typeof msg.version === "number" ? msg.version : state.version,
  };
  const notices = [];
  const name = (id) => next.participants.get(id)?.display_name ?? "";
  const patch = (id, fields) => {
    const p = next.participants.get(id);
    if (p) next.participants.set(id, { ...p, ...fields });
  };
  const mine = (id) => id === next.me;
  const moderating = MODERATOR_ROLES.has(next.participants.get(next.me)?.role);

  switch (msg.type) {
    case "participant_joined":
      next.participants.set(msg.participant.user_id, { ...msg.participant });
      break;
    case "participant_left":
      next.participants.delete(msg.user_id);
      next.handQueue = next.handQueue.filter((id) => id !== msg.user_id);
      break;
    case "role_changed": {
      const before = next.participants.get(msg.user_id)?.role;
      patch(msg.user_id, { role: msg.role, hand_raised: false });
      next.handQueue = next.handQueue.filter((id) => id !== msg.user_id);
      if (mine(msg.user_id)) {
        next.invited = false;
        if (MODERATOR_ROLES.has(msg.role) && !MODERATOR_ROLES.has(before)) {
          // Non-moderators are sent an empty queue; raised hands are still visible on people,
          // so a new moderator starts from those (arrival order is not known to us).
          next.handQueue = [...next.participants.values()]
            .filter((p) => p.hand_raised)
            .map((p) => p.user_id);
        }
        if (msg.role !== before) notices.push({ key: `notice.you_are_${msg.role}`, urgent: true });
      } else if (msg.role !== before) {
        notices.push({ key: `notice.role_${msg.role}`, params: { name: name(msg.user_id) } });
      }
      break;
    }
    case "hand_raised":
      patch(msg.user_id, { hand_raised: true });
      if (moderating && !next.handQueue.includes(msg.user_id)) {
        next.handQueue.push(msg.user_id);
        notices.push({ key: "notice.hand_raised", params: { name: name(msg.user_id) } });
      }
      break;
    case "hand_lowered":
      patch(msg.user_id, { hand_raised: false });
      next.handQueue = next.handQueue.filter((id) => id !== msg.user_id);
      break;
    case "invited":
      if (mine(msg.user_id)) {
        next.invited = true;
        notices.push({ key: "notice.you_are_invited", params: { name: name(msg.by) }, urgent: true });
      } else {
        notices.push({ key: "notice.invited", params: { name: name(msg.user_id) } });
      }
      break;
    case "invitation_declined":
      if (mine(msg.user_id)) next.invited = false;
      else notices.push({ key: "notice.invitation_declined", params: { name: name(msg.user_id) } });
      break;
    case "mute_changed":
      patch(msg.user_id, {
        self_muted: Boolean(msg.self_muted),
        muted_by_moderator: Boolean(msg.muted_by_moderator),
      });
      if (mine(msg.user_id) && msg.by && msg.by !== next.me) {
        notices.push({
          key: msg.muted_by_moderator ? "notice.you_were_muted" : "notice.you_were_unmuted",
          urgent: true,
        });
      }
      break;
    case "participant_removed":
      if (!mine(msg.user_id)) {
        notices.push({ key: "notice.removed", params: { name: name(msg.user_id) } });
      }
      next.participants.delete(msg.user_id);
      next.handQueue = next.handQueue.filter((id) => id !== msg.user_id);
      break;
    case "accounts_only_changed":
      next.accountsOnly = Boolean(msg.enabled);
      notices.push({ key: msg.enabled ? "notice.accounts_only_on" : "notice.accounts_only_off" });
      break;
    case "invite_rotated":
      notices.push({ key: "notice.invite_rotated", params: { name: name(msg.by) } });
      break;
    case "room_ended":
      next.status = "ended";
      next.ended = msg.reason || "ended";
      notices.push({ key: "notice.room_ended", urgent: true });
      break;
    default:
      // Unknown but versioned deltas still advance the version: the server counted them.
      break;
  }
  return { state: next, notices };
}
