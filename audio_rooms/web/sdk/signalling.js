// One participant's WebSocket to /ws/rooms/{id}: join, typed messages, keep-alive, and
// reconnection that keeps the role (the server holds it for a grace period; each new socket
// joins again and receives a fresh snapshot).

export const ConnectionState = Object.freeze({
  IDLE: "idle",
  CONNECTING: "connecting",
  JOINED: "joined",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
});

/** Close codes after which reconnecting cannot succeed or would be wrong: the server's
 * `terminal_close_codes` from /api/config are used; these are for when it could not be read. */
export const TERMINAL_CLOSE_CODES = Object.freeze({
  4001: "not_authenticated",
  4003: "not_allowed_in",
  4004: "room_not_found",
  // Another tab or device of the same user took over; reconnecting would take it back and the
  // two would evict each other in a loop.
  4009: "replaced",
  4010: "room_ended",
  4011: "removed",
});

const PING_INTERVAL_MS = 20000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const MAX_BACKOFF_MS = 10000;

export class RoomConnection {
  /**
   * handlers: onState(state, detail), onMessage(msg) for every message the server sends, before
   * the handler of its kind, onWelcome(msg), onDelta(msg), onMediaAnswer(msg), onMediaFailed(msg),
   * onError(msg), onClosed(reason, refusal): `refusal` is the error code the server gave for
   * refusing the join (such as `banned` before a 4003), or null.
   */
  constructor(roomId, {
    token = null, invite = null, handlers = {}, WebSocketImpl = WebSocket,
    terminalCloseCodes = TERMINAL_CLOSE_CODES,
  }) {
    this.roomId = roomId;
    this.terminalCloseCodes = terminalCloseCodes;
    this.token = token;
    this.invite = invite;
    this.handlers = handlers;
    this.WebSocketImpl = WebSocketImpl;
    this.state = ConnectionState.IDLE;
    this.ws = null;
    this.attempt = 0;
    this.nextRef = 1;
    this.pingTimer = null;
    this.retryTimer = null;
    this.refusal = null; // the code of an error received before `welcome`: why the join failed
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws/rooms/${encodeURIComponent(this.roomId)}`;
  }

  connect() {
    if (this.state === ConnectionState.CLOSED) throw new Error("connection was closed");
    this.setState(this.attempt === 0 ? ConnectionState.CONNECTING : ConnectionState.RECONNECTING);
    const ws = new this.WebSocketImpl(this.url());
    this.ws = ws;
    this.refusal = null;
    ws.onopen = () => {
      const join = { type: "join" };
      if (this.token) join.token = this.token;
      if (this.invite) join.invite = this.invite;
      ws.send(JSON.stringify(join));
    };
    ws.onmessage = (event) => this.receive(ws, event.data);
    ws.onclose = (event) => this.closed(ws, event.code);
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn("room %s: unparseable message dropped", this.roomId);
      return;
    }
    this.handlers.onMessage?.(msg);
    switch (msg.type) {
      case "welcome":
        this.attempt = 0;
        this.setState(ConnectionState.JOINED);
        this.startPing();
        this.handlers.onWelcome?.(msg);
        break;
      case "media_answer":
        this.handlers.onMediaAnswer?.(msg);
        break;
      case "media_failed":
        // The server closed our media transport (it never connected, or the peer was lost).
        this.handlers.onMediaFailed?.(msg);
        break;
      case "error":
        // Before `welcome`, an error is the reason the join is refused; the close that follows
        // says whether to retry, and the room page shows the reason, so it is not toasted.
        if (this.state === ConnectionState.JOINED) this.handlers.onError?.(msg);
        else this.refusal = msg.code;
        break;
      case "pong":
      case "ack":
        // An ack carries the version its action produced, but the deltas themselves follow
        // separately; treating it as a delta would skip them as already seen.
        break;
      case "reconnect":
        // The node is draining: go to another one after the delay it asks for.
        this.reconnectAfter(Math.max(0, Number(msg.after_ms) || 0));
        break;
      default:
        this.handlers.onDelta?.(msg);
    }
  }

  /** Send an action; returns its ref, which the server echoes in an error about it. */
  send(type, fields = {}) {
    const ref = `c${this.nextRef++}`;
    if (this.ws && this.ws.readyState === 1 && this.state === ConnectionState.JOINED) {
      this.ws.send(JSON.stringify({ type, ref, ...fields }));
      return ref;
    }
    return null;
  }

  /** Messages that belong to the join handshake (media) go out as soon as joined. */
  sendRaw(msg) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(msg));
  }

  /** Leave on purpose: tell the server, then close without reconnecting. */
  leave() {
    this.send("leave");
    this.shutdown(1000);
  }

  /** Drop the socket and join again: a fresh snapshot and, from the caller, a fresh offer. */
  resync() {
    this.reconnectAfter(0);
  }

  reconnectAfter(delayMs) {
    const ws = this.ws;
    this.ws = null;
    this.stopPing();
    if (ws) {
      ws.onclose = null;
      ws.close(1000);
    }
    this.scheduleRetry(delayMs);
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.stopPing();
    if (this.state === ConnectionState.CLOSED) return;
    if (code in this.terminalCloseCodes) {
      this.shutdown(null);
      this.handlers.onClosed?.(this.terminalCloseCodes[code], this.refusal);
      return;
    }
    const delay = BACKOFF_MS[this.attempt] ?? MAX_BACKOFF_MS;
    // Jitter spreads a node's listeners out when it restarts, instead of all at once.
    this.scheduleRetry(delay * (0.75 + Math.random() * 0.5));
  }

  scheduleRetry(delayMs) {
    this.attempt += 1;
    this.setState(ConnectionState.RECONNECTING, { delayMs });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.state !== ConnectionState.CLOSED) this.connect();
    }, delayMs);
  }

  shutdown(code) {
    clearTimeout(this.retryTimer);
    this.stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      if (code !== null) ws.close(code);
    }
    this.setState(ConnectionState.CLOSED);
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => this.send("ping"), PING_INTERVAL_MS);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  setState(state, detail = {}) {
    this.state = state;
    this.handlers.onState?.(state, detail);
  }
}
