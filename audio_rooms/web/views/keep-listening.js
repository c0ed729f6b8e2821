// What a listener on a phone needs to keep hearing a room with the phone in a pocket: the screen
// kept awake while the page is in front (Screen Wake Lock; the browser drops the lock whenever
// the page is hidden, so it is asked for again on coming back), the room on the lock screen
// with play/pause and leave (Media Session, which also tells the platform this page is playing
// media and may keep it running with the screen locked where that is allowed), and a lost
// network picked up at once when it comes back instead of at the next backoff step.
//
// Every API here is optional: where a browser lacks one, listening works as before.

export class KeepListening {
  /**
   * `handlers`: play() and pause() (the lock screen's buttons), leave(), and reconnect() (the
   * network or the page came back while the connection waits to retry).
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.active = false;
    this.lock = null;
    this.onVisible = () => {
      if (document.visibilityState !== "visible" || !this.active) return;
      this.acquire();
      this.handlers.reconnect();
    };
    this.onOnline = () => {
      if (this.active) this.handlers.reconnect();
    };
  }

  /** Start (or update, when already started) for a room called `title` on site `site`. */
  start(title, site) {
    if (title !== this.title || site !== this.site || !this.active) {
      [this.title, this.site] = [title, site];
      this.setMetadata(title, site);
    }
    if (this.active) return;
    this.active = true;
    document.addEventListener("visibilitychange", this.onVisible);
    addEventListener("online", this.onOnline);
    this.acquire();
    this.setHandlers(true);
  }

  stop() {
    if (!this.active) return;
    this.active = false;
    document.removeEventListener("visibilitychange", this.onVisible);
    removeEventListener("online", this.onOnline);
    this.lock?.release().catch(() => {});
    this.lock = null;
    this.setHandlers(false);
    if ("mediaSession" in navigator) {
      navigator.mediaSession.metadata = null;
      navigator.mediaSession.playbackState = "none";
    }
  }

  /** Whether the screen is being kept awake now (for tests and the curious). */
  get screenKeptAwake() {
    return Boolean(this.lock && !this.lock.released);
  }

  async acquire() {
    if (!("wakeLock" in navigator) || document.visibilityState !== "visible") return;
    if (this.screenKeptAwake) return;
    try {
      const lock = await navigator.wakeLock.request("screen");
      if (!this.active) {
        lock.release().catch(() => {});
        return;
      }
      this.lock = lock;
    } catch (err) {
      // Refused (battery saver, a permissions policy): the screen dims as usual.
      console.info("screen wake lock refused: %s", err.name);
    }
  }

  setMetadata(title, site) {
    if (!("mediaSession" in navigator) || typeof MediaMetadata === "undefined") return;
    navigator.mediaSession.metadata = new MediaMetadata({
      title,
      artist: site,
      artwork: [
        { src: "/icon-512.png", sizes: "512x512", type: "image/png" },
        { src: "/icon-192.png", sizes: "192x192", type: "image/png" },
      ],
    });
    navigator.mediaSession.playbackState = "playing";
  }

  setHandlers(on) {
    if (!("mediaSession" in navigator)) return;
    const actions = {
      play: () => {
        this.handlers.play();
        navigator.mediaSession.playbackState = "playing";
      },
      pause: () => {
        this.handlers.pause();
        navigator.mediaSession.playbackState = "paused";
      },
      stop: () => this.handlers.leave(),
      hangup: () => this.handlers.leave(),
    };
    for (const [action, handler] of Object.entries(actions)) {
      try {
        navigator.mediaSession.setActionHandler(action, on ? handler : null);
      } catch {
        // An action this browser does not know (hangup is recent).
      }
    }
  }
}
