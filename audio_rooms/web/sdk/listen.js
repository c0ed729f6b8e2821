// Listening over the relay: where WebRTC gets no UDP path, the room's audio comes over a
// WebSocket on the page's own origin (/ws/rooms/{id}/listen, docs/protocol.md), as the Opus
// packets the SFU forwards. They are decoded here, with WebCodecs' AudioDecoder where the
// browser has it and else the vendored WebAssembly libopus (vendor/opus-decoder, loaded only
// then), and played through an AudioWorklet (listen-worklet.js) that buffers each speaker.

const HEADER_BYTES = 9; // version, speaker, seq (2), timestamp (4), level
const FRAME_VERSION = 1;
const RATE = 48000;
const PING_INTERVAL_MS = 20000;
const RECONNECT_MS = [500, 1000, 2000, 4000, 8000];
// Closes after which a new listen socket would be refused the same way, or must not be opened.
const FINAL_CLOSES = new Set([4001, 4003, 4004, 4009, 4010, 4011]);
// The worklet sits beside this module wherever the SDK is served from; the decoder is the
// server's vendored copy, loaded only where the browser has no WebCodecs Opus.
const WORKLET_URL = new URL("./listen-worklet.js", import.meta.url).href;
const WASM_DECODER_URL = "/vendor/opus-decoder/opus-decoder.min.js";

/** Whether this browser can decode Opus with WebCodecs (else the WebAssembly decoder). */
export async function webCodecsOpus() {
  if (typeof globalThis.AudioDecoder !== "function") return false;
  try {
    const support = await AudioDecoder.isConfigSupported(
      { codec: "opus", sampleRate: RATE, numberOfChannels: 1 });
    return Boolean(support.supported);
  } catch {
    return false;
  }
}

let wasmModule = null;

/** The vendored decoder's module (a classic script that sets globalThis["opus-decoder"]). */
function loadWasmDecoder() {
  wasmModule ??= new Promise((resolve, reject) => {
    if (globalThis["opus-decoder"]) return resolve(globalThis["opus-decoder"]);
    const script = document.createElement("script");
    script.src = WASM_DECODER_URL;
    script.charset = "utf-8";
    script.onload = () => resolve(globalThis["opus-decoder"]);
    script.onerror = () => {
      wasmModule = null;
      reject(new Error("could not load the Opus decoder"));
    };
    document.head.append(script);
  });
  return wasmModule;
}

/** One speaker's decoder: `decode(payload, timestamp)`; decoded frames go to `output`. */
class WebCodecsDecoder {
  constructor(output) {
    this.decoder = new AudioDecoder({
      output: (data) => {
        const samples = new Float32Array(data.numberOfFrames);
        data.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
        data.close();
        output(samples);
      },
      error: (err) => console.warn("relay: decoder error: %s", err),
    });
    this.decoder.configure({ codec: "opus", sampleRate: RATE, numberOfChannels: 1 });
  }

  decode(payload, timestamp) {
    if (this.decoder.state !== "configured") return;
    this.decoder.decode(new EncodedAudioChunk({
      type: "key", timestamp: Math.round((timestamp * 1e6) / RATE), data: payload,
    }));
  }

  close() {
    if (this.decoder.state !== "closed") this.decoder.close();
  }
}

class WasmDecoder {
  constructor(module, output) {
    this.output = output;
    this.decoder = new module.OpusDecoder({
      channels: 1, streamCount: 1, coupledStreamCount: 0, channelMappingTable: [0],
    });
    this.ready = this.decoder.ready;
  }

  decode(payload) {
    const { channelData, samplesDecoded } = this.decoder.decodeFrame(payload);
    if (samplesDecoded > 0) this.output(channelData[0].slice(0, samplesDecoded));
  }

  close() {
    this.decoder.free();
  }
}

/**
 * The relay path for one room. start() resolves once audio can play; `onState(state)` is told
 * "connecting", "listening" and "closed" (with the close code when the server refused).
 * `decoder` is "webcodecs" or "wasm" once known (tests and the badge's title read it).
 */
export class RelayListener {
  constructor({ roomId, token, audioPool, onState }) {
    this.roomId = roomId;
    this.token = token;
    this.audioPool = audioPool;
    this.onState = onState;
    this.ws = null;
    this.ctx = null;
    this.node = null;
    this.decoders = new Map(); // speaker number -> decoder
    this.lastSeq = new Map(); // speaker number -> last sequence number
    this.decoder = null;
    this.wasm = null;
    this.stopped = false;
    this.attempt = 0;
    this.frames = 0;
    this.pingTimer = null;
    this.retryTimer = null;
  }

  async start() {
    this.decoder = (await webCodecsOpus()) ? "webcodecs" : "wasm";
    if (this.decoder === "wasm") this.wasm = await loadWasmDecoder();
    this.ctx = new AudioContext({ sampleRate: RATE, latencyHint: "playback" });
    await this.ctx.audioWorklet.addModule(WORKLET_URL);
    if (this.stopped) return this.closeAudio();
    this.node = new AudioWorkletNode(this.ctx, "relay-mixer",
      { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1] });
    // Played through an <audio> element like WebRTC's slots, so the page's one "tap to
    // listen" unlock covers it (and iOS plays it with the ringer switch off).
    const destination = this.ctx.createMediaStreamDestination();
    this.node.connect(destination);
    this.audioPool.attachRelay(destination.stream, this.ctx);
    this.ctx.resume().catch(() => {});
    this.connect();
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws/rooms/${encodeURIComponent(this.roomId)}/listen`;
  }

  connect() {
    if (this.stopped) return;
    this.onState?.("connecting");
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify(
      this.token ? { type: "listen", token: this.token } : { type: "listen" }));
    ws.onmessage = (event) => {
      if (typeof event.data === "string") return this.text(event.data);
      this.frame(new Uint8Array(event.data));
    };
    ws.onclose = (event) => {
      clearInterval(this.pingTimer);
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      this.resetSpeakers();
      if (FINAL_CLOSES.has(event.code)) {
        this.onState?.("closed", event.code);
        return;
      }
      const delay = RECONNECT_MS[Math.min(this.attempt, RECONNECT_MS.length - 1)];
      this.attempt += 1;
      this.retryTimer = setTimeout(() => this.connect(), delay);
    };
  }

  text(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    if (msg.type === "listening") {
      this.attempt = 0;
      this.onState?.("listening");
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => {
        if (this.ws?.readyState === WebSocket.OPEN) this.ws.send('{"type":"ping"}');
      }, PING_INTERVAL_MS);
    } else if (msg.type === "error") {
      console.warn("relay: %s (%s)", msg.code, msg.message);
    }
  }

  frame(bytes) {
    if (bytes.length <= HEADER_BYTES || bytes[0] !== FRAME_VERSION || !this.node) return;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const speaker = bytes[1];
    const seq = view.getUint16(2);
    const timestamp = view.getUint32(4);
    const payload = bytes.subarray(HEADER_BYTES);
    const last = this.lastSeq.get(speaker);
    // A jump backwards or far ahead is a new stream on this number: start its decoder afresh.
    if (last !== undefined && ((seq - last) & 0xffff) > 3000) this.dropSpeaker(speaker);
    this.lastSeq.set(speaker, seq);
    let decoder = this.decoders.get(speaker);
    if (!decoder) {
      const output = (samples) => this.node?.port.postMessage(
        { speaker, samples }, [samples.buffer]);
      decoder = this.decoder === "webcodecs" ? new WebCodecsDecoder(output)
        : new WasmDecoder(this.wasm, output);
      this.decoders.set(speaker, decoder);
    }
    this.frames += 1;
    try {
      decoder.decode(payload, timestamp);
    } catch (err) {
      console.warn("relay: could not decode a frame: %s", err);
    }
  }

  dropSpeaker(speaker) {
    this.decoders.get(speaker)?.close();
    this.decoders.delete(speaker);
    this.lastSeq.delete(speaker);
  }

  resetSpeakers() {
    for (const speaker of [...this.decoders.keys()]) this.dropSpeaker(speaker);
    this.node?.port.postMessage({ reset: true });
  }

  stop() {
    this.stopped = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.retryTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
    this.resetSpeakers();
    this.closeAudio();
  }

  closeAudio() {
    this.audioPool.detachRelay();
    this.node?.disconnect();
    this.node = null;
    this.ctx?.close().catch(() => {});
    this.ctx = null;
  }
}
