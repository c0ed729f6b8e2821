// The relay's player, on the audio thread: one adaptive jitter buffer per speaker, mixed into
// one mono output. listen.js posts decoded 48 kHz frames as {speaker, samples}; frames arrive
// in order (TCP) but in bursts, and some are missing (the server skips audio for a socket that
// falls behind). Each speaker starts playing once TARGET_MIN is buffered; an underrun conceals
// one frame by repeating the last one, fading, then waits for the buffer to refill and plays
// later from then on (the target grows, up to TARGET_MAX); a buffer that grows far past its
// target (a burst after a stall) is cut back so latency does not stay high.

const RATE = 48000;
const TARGET_MIN = 0.15 * RATE;
const TARGET_MAX = 0.3 * RATE;
const TARGET_STEP = 0.02 * RATE;
const EXCESS = 0.15 * RATE; // more than target + this buffered: drop down to the target
const CONCEAL = 960; // samples of concealment after an underrun (one 20 ms frame)
const IDLE_FRAMES = 2 * RATE; // a speaker silent this long is forgotten

class Stream {
  constructor() {
    this.chunks = [];
    this.offset = 0; // into chunks[0]
    this.queued = 0;
    this.target = TARGET_MIN;
    this.playing = false;
    this.last = null; // the last chunk played, for concealment
    this.concealed = 0;
    this.idle = 0;
  }

  push(samples) {
    this.chunks.push(samples);
    this.queued += samples.length;
    this.idle = 0;
    if (this.queued > this.target + EXCESS) this.drop(this.queued - this.target);
  }

  drop(n) {
    while (n > 0 && this.chunks.length) {
      const left = this.chunks[0].length - this.offset;
      const take = Math.min(left, n);
      this.offset += take;
      this.queued -= take;
      n -= take;
      if (this.offset >= this.chunks[0].length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
  }

  /** Add this stream's next `out.length` samples into `out`. */
  mixInto(out) {
    if (!this.playing) {
      if (this.queued >= this.target) this.playing = true;
      else return this.conceal(out, 0);
    }
    let i = 0;
    while (i < out.length && this.chunks.length) {
      const chunk = this.chunks[0];
      const n = Math.min(out.length - i, chunk.length - this.offset);
      for (let k = 0; k < n; k++) out[i + k] += chunk[this.offset + k];
      i += n;
      this.offset += n;
      this.queued -= n;
      if (this.offset >= chunk.length) {
        this.last = chunk;
        this.chunks.shift();
        this.offset = 0;
      }
    }
    if (i < out.length) {
      // Underrun: wait for more, and play later from now on.
      this.playing = false;
      this.target = Math.min(TARGET_MAX, this.target + TARGET_STEP);
      this.conceal(out, i);
    } else {
      this.concealed = 0;
    }
  }

  conceal(out, from) {
    if (!this.last) return;
    for (let i = from; i < out.length && this.concealed < CONCEAL; i++, this.concealed++) {
      const fade = 1 - this.concealed / CONCEAL;
      out[i] += this.last[this.concealed % this.last.length] * fade * 0.5;
    }
  }
}

class RelayMixer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.streams = new Map();
    this.port.onmessage = (event) => {
      const { speaker, samples, reset } = event.data;
      if (reset) {
        this.streams.clear();
        return;
      }
      let stream = this.streams.get(speaker);
      if (!stream) this.streams.set(speaker, (stream = new Stream()));
      stream.push(samples);
    };
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    if (!out) return true;
    for (const [speaker, stream] of this.streams) {
      stream.mixInto(out);
      if (stream.queued === 0) {
        stream.idle += out.length;
        if (stream.idle > IDLE_FRAMES) this.streams.delete(speaker);
      }
    }
    for (let i = 0; i < out.length; i++) out[i] = Math.max(-1, Math.min(1, out[i]));
    return true;
  }
}

registerProcessor("relay-mixer", RelayMixer);
