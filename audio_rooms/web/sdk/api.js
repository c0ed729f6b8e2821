// The REST API: one function per endpoint, JSON in and out, errors as ApiError with the
// server's stable `code`. The session lives in the HttpOnly `ar_session` cookie; the token
// returned in bodies is kept in memory only, for the WebSocket join when a cookie cannot be sent.

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message || code);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
  }
}

let sessionToken = null;
// A token handed in by useToken() (no cookie behind it) also goes in an Authorization header.
let bearer = false;

export function token() {
  return sessionToken;
}

/** Use a token obtained elsewhere (by your own server, say) instead of the session cookie. */
export function useToken(value) {
  sessionToken = value || null;
  bearer = Boolean(sessionToken);
}

async function request(method, path, body) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  };
  if (bearer && sessionToken) init.headers.Authorization = `Bearer ${sessionToken}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError("network_error", String(err), 0);
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    // A proxy's HTML error page, for instance: fall through to a status-based code.
  }
  if (!res.ok) {
    const code = data && typeof data.code === "string" ? data.code : statusCode(res.status);
    throw new ApiError(code, data && data.message, res.status);
  }
  if (data && typeof data.token === "string") {
    sessionToken = data.token;
    bearer = false; // the answer set the cookie too
  }
  return data;
}

function statusCode(status) {
  if (status === 401) return "not_authenticated";
  if (status === 403) return "not_permitted";
  if (status === 404) return "not_found";
  if (status === 429) return "rate_limited";
  if (status === 503) return "service_unavailable";
  return status >= 500 ? "internal_error" : "bad_request";
}

export const getConfig = () => request("GET", "/api/config");

/** Who this browser is signed in as, or null: `/api/auth/session` answers 200 either way, so a
 * signed-out visit logs no failed request in the console. */
export async function me() {
  return (await request("GET", "/api/auth/session")).user;
}

export const signUp = (fields) => request("POST", "/api/auth/signup", fields);
export const signIn = (fields) => request("POST", "/api/auth/signin", fields);
export const guest = (displayName) =>
  request("POST", "/api/auth/guest", { display_name: displayName });

export async function signOut() {
  try {
    await request("POST", "/api/auth/signout");
  } finally {
    sessionToken = null;
    bearer = false;
  }
}

/** One page of the lobby: `{rooms, next_cursor}` (null when there is no more). */
export async function listRooms(status, cursor = null) {
  const more = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
  return request("GET", `/api/rooms?status=${encodeURIComponent(status)}${more}`);
}

export const getRoom = async (id, invite = null) => (await request("GET",
  `/api/rooms/${enc(id)}${invite ? `?invite=${enc(invite)}` : ""}`)).room;
export const createRoom = async (fields) => (await request("POST", "/api/rooms", fields)).room;
export const startRoom = async (id) => (await request("POST", `/api/rooms/${enc(id)}/start`)).room;
export const inviteLink = async (id, rotate = false) =>
  (await request("POST", `/api/rooms/${enc(id)}/invite-link`, { rotate })).url;
export const follow = (userId) => request("POST", `/api/users/${enc(userId)}/follow`);
export const unfollow = (userId) => request("DELETE", `/api/users/${enc(userId)}/follow`);

const enc = encodeURIComponent;

// --- federation (docs/federation.md): rooms on other servers, through this one -------------

/** The servers this user lets their server join rooms of for them. */
export const consents = async () => (await request("GET", "/api/federation/consents")).servers;
export const giveConsent = async (server) =>
  (await request("PUT", `/api/federation/consents/${enc(server)}`)).servers;
export const withdrawConsent = async (server) =>
  (await request("DELETE", `/api/federation/consents/${enc(server)}`)).servers;
/** `ref` is `ROOM_ID@server`. Resolves with `{room: SNAPSHOT, ref}`. */
export const joinRemote = (ref) => request("POST", `/api/federation/rooms/${enc(ref)}/join`);
export const remoteRoom = (ref) => request("GET", `/api/federation/rooms/${enc(ref)}`);
export const remoteMedia = async (ref, sdp) =>
  (await request("POST", `/api/federation/rooms/${enc(ref)}/media`, { sdp })).sdp;
export const leaveRemote = (ref) => request("POST", `/api/federation/rooms/${enc(ref)}/leave`);
/** raise_hand, lower_hand, accept_invitation, decline_invitation, mute or unmute (yourself). */
export const actRemote = (ref, action) =>
  request("POST", `/api/federation/rooms/${enc(ref)}/act`, { action });
