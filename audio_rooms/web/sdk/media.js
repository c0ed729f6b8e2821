// The participant's WebRTC transport to the SFU. The client offers: one sendonly transceiver for
// the microphone (empty until the participant is on stage, then replaceTrack, so going on stage
// needs no renegotiation) and `slots` recvonly transceivers onto which the SFU maps the loudest
// speakers. ICE candidates are gathered before the offer is sent (no trickle).

const GATHER_TIMEOUT_MS = 5000;
// Once every kind of candidate the configuration can produce has shown up (host always;
// server-reflexive with a STUN server, relayed with a TURN server), the offer goes out after
// this much quiet instead of waiting for gathering to "complete": Chromium declares that some
// 100-150 ms after its last host candidate, a tenth of the join-to-audio budget.
const GATHER_QUIET_MS = 40;

/**
 * Audio elements for the receive slots, made once per page and kept across reconnects: on
 * iOS Safari an element that was played inside a user gesture may play again later without
 * one, so they are created and unlocked in the "tap to listen" click.
 */
export class AudioPool {
  constructor(container) {
    this.container = container;
    this.elements = [];
    this.blocked = false;
    this.onBlocked = null;
    this.relay = null; // the relay's element (listen.js), apart from the slots WebRTC retries use
    this.relayContext = null;
  }

  ensure(count) {
    while (this.elements.length < count) {
      const el = document.createElement("audio");
      el.autoplay = true;
      el.muted = false;
      el.setAttribute("playsinline", "");
      el.dataset.testid = `remote-audio-${this.elements.length}`;
      this.container.append(el);
      this.elements.push(el);
    }
  }

  /** Call from a click handler: starts playback while the gesture still counts. */
  unlock() {
    this.blocked = false;
    for (const el of this.elements) {
      if (el.srcObject) this.play(el);
      else el.play().catch(() => {}); // an empty element rejects; the gesture still registers
    }
    if (this.relay?.srcObject) this.play(this.relay);
    this.relayContext?.resume().catch(() => {});
  }

  /** Play the relay's mix (a MediaStream from `context`) in an element of its own. */
  attachRelay(stream, context) {
    if (!this.relay) {
      this.relay = document.createElement("audio");
      this.relay.autoplay = true;
      this.relay.setAttribute("playsinline", "");
      this.relay.dataset.testid = "relay-audio";
      this.container.append(this.relay);
    }
    this.relayContext = context;
    this.relay.srcObject = stream;
    this.play(this.relay);
    if (context.state === "suspended" && !this.blocked) {
      // Started outside a click (seconds after joining): some browsers want a tap first.
      context.resume().then(() => {
        if (context.state === "suspended" && !this.blocked) {
          this.blocked = true;
          this.onBlocked?.();
        }
      }, () => {});
    }
  }

  detachRelay() {
    if (this.relay) this.relay.srcObject = null;
    this.relayContext = null;
  }

  attach(index, track) {
    this.ensure(index + 1);
    const el = this.elements[index];
    el.srcObject = new MediaStream([track]);
    this.play(el);
  }

  detachAll() {
    for (const el of this.elements) el.srcObject = null;
  }

  play(el) {
    el.play().catch((err) => {
      if (err && err.name === "NotAllowedError" && !this.blocked) {
        this.blocked = true;
        this.onBlocked?.();
      }
    });
  }
}

export class MediaSession {
  constructor({ iceServers, slots, audioPool, onStateChange }) {
    this.iceServers = iceServers || [];
    this.slots = slots;
    this.audioPool = audioPool;
    this.onStateChange = onStateChange;
    this.pc = null;
    this.micTransceiver = null;
    this.recvTransceivers = [];
    this.prepared = null; // {key, offer: Promise<sdp>} made before `welcome`
  }

  /**
   * Start building the peer connection and gathering candidates now (in the join click, while
   * the WebSocket joins), with the ICE servers and slots known so far. offer() uses it if the
   * welcome brings the same ones.
   */
  prepare() {
    const key = this.key();
    this.prepared = { key, offer: this.createOffer(null) };
    this.prepared.offer.catch(() => {}); // offer() reports failures
  }

  /** The complete offer SDP for the current ICE servers and slots, with `micTrack` on it. */
  async offer(micTrack) {
    const prepared = this.prepared;
    this.prepared = null;
    if (prepared && prepared.key === this.key()) {
      try {
        const sdp = await prepared.offer;
        if (micTrack) await this.setMicTrack(micTrack);
        return sdp;
      } catch (err) {
        console.warn("prepared offer failed, making another: %s", err);
      }
    }
    return this.createOffer(micTrack);
  }

  key() {
    return JSON.stringify([this.iceServers, this.slots]);
  }

  /** The current peer connection's state ("none" without one). */
  get state() {
    return this.pc ? this.pc.connectionState : "none";
  }

  /** Build a fresh peer connection and return the complete offer SDP. */
  async createOffer(micTrack) {
    this.close();
    this.everConnected = false;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    this.micTransceiver = pc.addTransceiver("audio", { direction: "sendonly" });
    if (micTrack) await this.micTransceiver.sender.replaceTrack(micTrack);
    this.recvTransceivers = [];
    for (let i = 0; i < this.slots; i++) {
      this.recvTransceivers.push(pc.addTransceiver("audio", { direction: "recvonly" }));
    }
    this.audioPool.ensure(this.slots);
    const recv = this.recvTransceivers;
    pc.ontrack = (event) => {
      const index = recv.indexOf(event.transceiver);
      if (index >= 0) this.audioPool.attach(index, event.track);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") this.everConnected = true;
      this.onStateChange?.(pc.connectionState);
    };
    const gathered = gatheringDone(pc, candidateKinds(this.iceServers));
    await pc.setLocalDescription(await pc.createOffer());
    await gathered;
    if (this.pc !== pc) throw new Error("peer connection replaced while gathering");
    return pc.localDescription.sdp;
  }

  async applyAnswer(sdp) {
    if (!this.pc) return;
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  /** Put the microphone on (or take it off) the send transceiver; no renegotiation. */
  async setMicTrack(track) {
    if (this.micTransceiver) await this.micTransceiver.sender.replaceTrack(track);
  }

  close() {
    if (this.pc) {
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.close();
    }
    this.pc = null;
    this.micTransceiver = null;
    this.recvTransceivers = [];
  }
}

/** The candidate types these ICE servers can give: host, plus srflx (STUN) and relay (TURN). */
function candidateKinds(iceServers) {
  const kinds = new Set(["host"]);
  for (const server of iceServers) {
    for (const url of [].concat(server.urls || [])) {
      if (/^stuns?:/.test(url)) kinds.add("srflx");
      if (/^turns?:/.test(url)) kinds.add("relay");
    }
  }
  return kinds;
}

/**
 * Resolves when the offer can go out with its candidates (no trickle): gathering completed, or
 * every expected kind of candidate arrived and none came for GATHER_QUIET_MS, or at the
 * timeout (a STUN server that never answers must not hold the join; host candidates go out).
 * Call before setLocalDescription so that no candidate is missed.
 */
function gatheringDone(pc, expected) {
  return new Promise((resolve) => {
    const seen = new Set();
    let quiet = null;
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      clearTimeout(quiet);
      pc.removeEventListener("icegatheringstatechange", check);
      pc.removeEventListener("icecandidate", candidate);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    function candidate(event) {
      if (!event.candidate) return done();
      if (event.candidate.type) seen.add(event.candidate.type);
      clearTimeout(quiet);
      if ([...expected].every((kind) => seen.has(kind))) quiet = setTimeout(done, GATHER_QUIET_MS);
    }
    pc.addEventListener("icegatheringstatechange", check);
    pc.addEventListener("icecandidate", candidate);
  });
}

/** The microphone, with the processing a voice chat wants. */
export class Microphone {
  constructor() {
    this.stream = null;
  }

  get track() {
    return this.stream ? this.stream.getAudioTracks()[0] : null;
  }

  async acquire() {
    if (this.track && this.track.readyState === "live") return this.track;
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    return this.track;
  }

  /** Muting disables the track at once, whatever the network round trip. */
  setEnabled(enabled) {
    if (this.track) this.track.enabled = enabled;
  }

  release() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
  }
}
