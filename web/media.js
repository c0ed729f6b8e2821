// The participant's WebRTC transport to the SFU. The client offers: one sendonly transceiver for
// the microphone (empty until the participant is on stage, then replaceTrack, so going on stage
// needs no renegotiation) and `slots` recvonly transceivers onto which the SFU maps the loudest
// speakers. ICE candidates are gathered before the offer is sent (no trickle).

const GATHER_TIMEOUT_MS = 5000;

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
  }

  /** Build a fresh peer connection and return the complete offer SDP. */
  async createOffer(micTrack) {
    this.close();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    this.micTransceiver = pc.addTransceiver("audio", { direction: "sendonly" });
    if (micTrack) await this.micTransceiver.sender.replaceTrack(micTrack);
    this.recvTransceivers = [];
    for (let i = 0; i < this.slots; i++) {
      this.recvTransceivers.push(pc.addTransceiver("audio", { direction: "recvonly" }));
    }
    this.audioPool.ensure(this.slots);
    pc.ontrack = (event) => {
      const index = this.recvTransceivers.indexOf(event.transceiver);
      if (index >= 0) this.audioPool.attach(index, event.track);
    };
    pc.onconnectionstatechange = () => this.onStateChange?.(pc.connectionState);
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
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

function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    // A STUN server that never answers would hold the join forever; after the timeout the
    // candidates gathered so far (host ones at least) go out.
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
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
