// The room as this client sees it: a pure reducer over the server's welcome snapshot and its
// ordered deltas. No DOM, no sockets: applyDelta() returns the new state plus notices (things a
// person should be told, as catalogue keys), so it can be tested by itself.
//
// A room may hold 10,000 listeners, so the state does not hold everyone (docs/protocol.md, "The
// audience"): `participants` is the stage, yourself, and for moderators the listeners whose hand
// is up or who are invited. The rest is `audience`: the server's `count` and `sample` (updated
// at most once a second by `audience` messages) and the pages of the full list this client has
// read so far (`listeners`, in join order, and the cursor `next` to read on; null at the end).

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
    interconnected: Boolean(room.interconnected),
    audience: audienceFromSnapshot(room, participants),
    ended: null,
  };
}

/**
 * The audience part of a snapshot. A server without the audience tier sent every listener in
 * `participants`; they are then the whole list, read to the end.
 */
function audienceFromSnapshot(room, participants) {
  const a = room.audience;
  if (!a) {
    const listeners = [...participants.values()].filter((p) => !STAGE_ROLES.has(p.role));
    return { count: listeners.length, sample: listeners.slice(0, 12), listeners, next: null };
  }
  return {
    count: Number(a.count) || 0,
    sample: [...(a.sample || [])],
    listeners: uniqueListeners([], a.page?.listeners || []),
    next: a.page?.next ?? null,
  };
}

/** `loaded` followed by those of `more` not in it yet (pages of a moving list may overlap). */
function uniqueListeners(loaded, more) {
  const seen = new Set(loaded.map((p) => p.user_id));
  const out = [...loaded];
  for (const p of more) {
    if (!seen.has(p.user_id) && !STAGE_ROLES.has(p.role)) {
      seen.add(p.user_id);
      out.push({ ...p });
    }
  }
  return out;
}

/** An `audience` message: the count and the sample, as the server counted them just now. */
export function applyAudience(state, msg) {
  return {
    ...state,
    audience: {
      ...state.audience,
      count: Number(msg.count) || 0,
      sample: [...(msg.sample || [])],
    },
  };
}

/**
 * An `audience_page` reply. `fresh`: it is the first page of a new reading (the list was just
 * opened again), so it replaces what was loaded instead of extending it. The count it carries
 * is as current as an `audience` message's.
 */
export function applyAudiencePage(state, msg, { fresh = false } = {}) {
  const before = fresh ? [] : state.audience.listeners;
  // A page read just before someone went on stage may still list them.
  const onStage = (p) => STAGE_ROLES.has(state.participants.get(p.user_id)?.role);
  return {
    ...state,
    audience: {
      ...state.audience,
      count: typeof msg.count === "number" ? msg.count : state.audience.count,
      listeners: uniqueListeners(before, (msg.listeners || []).filter((p) => !onStage(p))),
      next: msg.next ?? null,
    },
  };
}

/** Whether more of the audience list can be read (the last page read had a `next`). */
export function audienceHasMore(state) {
  return state.audience.next !== null;
}

/** How many rows the audience list spans: the count while pages remain, what was read after. */
export function audienceLength(state) {
  const a = state.audience;
  return a.next === null ? a.listeners.length : Math.max(a.count, a.listeners.length);
}

/** Someone is no longer a listener (left, removed, on stage): drop them from what is held. */
function withoutListener(audienceState, userId) {
  const drop = (list) => {
    const i = list.findIndex((p) => p.user_id === userId);
    return i < 0 ? list : [...list.slice(0, i), ...list.slice(i + 1)];
  };
  return {
    ...audienceState,
    sample: drop(audienceState.sample),
    listeners: drop(audienceState.listeners),
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
  // The count and faces are the snapshot's; pages read further than its first one stay, so an
  // open audience list does not jump back to the top.
  const held = state.audience;
  const audience = held.listeners.length > next.audience.listeners.length
    ? { ...next.audience, listeners: held.listeners.filter((p) => !next.participants.has(p.user_id)
        || !STAGE_ROLES.has(next.participants.get(p.user_id).role)), next: held.next }
    : next.audience;
  return { ...next, audience, ended: state.ended };
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

/** The audience list as far as it has been read, in join order. */
export function audience(state) {
  return state.audience.listeners;
}

/**
 * The faces shown under the count: yourself first when you listen, then the server's sample
 * in its order (people the moderators follow first, then the newest).
 */
export function audienceFaces(state) {
  const me = myself(state);
  const faces = me && !STAGE_ROLES.has(me.role) ? [me] : [];
  for (const p of state.audience.sample) {
    if (p.user_id !== state.me && !STAGE_ROLES.has(p.role)) faces.push(p);
  }
  return faces;
}

/**
 * A listener as this client should draw them: what `participants` holds (yourself; for
 * moderators, raised hands) is fresher than a page or sample entry read earlier.
 */
export function listenerView(state, p) {
  return state.participants.get(p.user_id) ?? p;
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

  // Listeners the moderators are told about (a raised hand, an invitation) come with their
  // details, since they are not among the participants held.
  const learn = (p) => {
    if (p && p.user_id && !next.participants.has(p.user_id)) {
      next.participants.set(p.user_id, { ...p });
    }
  };

  switch (msg.type) {
    case "participant_joined":
      next.participants.set(msg.participant.user_id, { ...msg.participant });
      break;
    case "participant_left":
      next.participants.delete(msg.user_id);
      next.handQueue = next.handQueue.filter((id) => id !== msg.user_id);
      next.audience = withoutListener(next.audience, msg.user_id);
      break;
    case "role_changed": {
      const held = next.participants.get(msg.user_id);
      const before = held?.role ?? "listener";
      if (!held && msg.participant) learn({ ...msg.participant, role: msg.role });
      // The name for the notice, from the participant or a page or the sample we hold.
      const known = held ?? msg.participant ?? next.audience.listeners
        .concat(next.audience.sample).find((p) => p.user_id === msg.user_id);
      patch(msg.user_id, { role: msg.role, hand_raised: false });
      next.handQueue = next.handQueue.filter((id) => id !== msg.user_id);
      if (STAGE_ROLES.has(msg.role)) {
        // On stage now: off the audience list and the faces (the count follows next tick).
        next.audience = withoutListener(next.audience, msg.user_id);
      } else if (!mine(msg.user_id)) {
        // Into the audience: off the stage. They are in the count and the pages from the
        // server's next tick; a list read to the end gets them at its end meanwhile.
        const p = next.participants.get(msg.user_id);
        next.participants.delete(msg.user_id);
        if (p && next.audience.next === null) {
          next.audience = { ...next.audience,
            listeners: uniqueListeners(next.audience.listeners, [p]) };
        }
      }
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
        notices.push({ key: `notice.role_${msg.role}`,
          params: { name: known?.display_name ?? "" } });
      }
      break;
    }
    case "hand_raised":
      if (moderating) learn(msg.participant);
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
      if (moderating) learn(msg.participant);
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
    case "participant_removed": {
      if (!mine(msg.user_id)) {
        const known = next.participants.get(msg.user_id) ?? next.audience.listeners
          .concat(next.audience.sample).find((p) => p.user_id === msg.user_id);
        // A listener nobody here has seen is not worth a sentence with a blank name.
        if (known) notices.push({ key: "notice.removed", params: { name: known.display_name } });
      }
      next.participants.delete(msg.user_id);
      next.handQueue = next.handQueue.filter((id) => id !== msg.user_id);
      next.audience = withoutListener(next.audience, msg.user_id);
      break;
    }
    case "interconnected_changed":
      next.interconnected = Boolean(msg.enabled);
      notices.push({ key: msg.enabled ? "notice.interconnected_on" : "notice.interconnected_off" });
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
