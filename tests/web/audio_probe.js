// Injected into test pages (context.add_init_script) by tests/web and bench/join_to_audio.py.
// It listens to what the page plays: every <audio> element with a srcObject (the client's
// receive slots) gets an AnalyserNode on a MediaStreamSource built from that stream, and a
// timer looks for the dominant tone in each. Nothing here is part of the client.
//
//   __audioProbe.tones()             -> [{slot, freq, db, snr}] strong tones now, per slot
//   __audioProbe.firstTone(f, tol)   -> performance.now() when f +- tol was first heard, or null
//   __audioProbe.lastTone(f, tol)    -> performance.now() when f +- tol was last heard, or null
//   __audioProbe.joinClickAt         -> performance.now() of the first click on join-button
//   __audioProbe.firstAudioAt        -> performance.now() of the first non-silent analysis
(() => {
  const FFT_SIZE = Number(globalThis.__audioProbeFftSize) || 8192;
  const TICK_MS = 20;
  const MIN_DB = -75; // weaker peaks are not a tone
  const MIN_SNR_DB = 25; // peak over the median of the band
  const LOW_HZ = 100;
  const HIGH_HZ = 4000;

  const probe = {
    joinClickAt: null,
    firstAudioAt: null,
    history: [], // {t, slot, freq}
    slots: new Map(), // element -> {stream, analyser, source}
    ctx: null,
  };

  document.addEventListener("click", (event) => {
    if (probe.joinClickAt === null && event.target.closest?.("[data-testid=join-button]")) {
      probe.joinClickAt = performance.now();
    }
  }, true);

  function attach() {
    for (const el of document.querySelectorAll("audio")) {
      const stream = el.srcObject;
      const slot = probe.slots.get(el);
      if (!stream || stream.getAudioTracks().length === 0) continue;
      if (slot && slot.stream === stream) continue;
      if (slot) slot.source.disconnect();
      probe.ctx ??= new AudioContext();
      if (probe.ctx.state === "suspended") probe.ctx.resume();
      const analyser = probe.ctx.createAnalyser();
      analyser.fftSize = FFT_SIZE;
      analyser.smoothingTimeConstant = 0;
      const source = probe.ctx.createMediaStreamSource(stream);
      source.connect(analyser);
      probe.slots.set(el, { stream, analyser, source, data: new Float32Array(FFT_SIZE / 2) });
    }
  }

  function peak(slot) {
    const { analyser, data } = slot;
    analyser.getFloatFrequencyData(data);
    const binHz = probe.ctx.sampleRate / FFT_SIZE;
    const lo = Math.ceil(LOW_HZ / binHz);
    const hi = Math.min(data.length - 2, Math.floor(HIGH_HZ / binHz));
    let best = lo;
    const band = [];
    for (let i = lo; i <= hi; i++) {
      const v = Number.isFinite(data[i]) ? data[i] : -200;
      band.push(v);
      if (v > (Number.isFinite(data[best]) ? data[best] : -200)) best = i;
    }
    const db = Number.isFinite(data[best]) ? data[best] : -200;
    band.sort((a, b) => a - b);
    const median = band[band.length >> 1];
    // Parabolic interpolation over the log magnitudes of the peak and its neighbours.
    const a = data[best - 1], b = data[best], c = data[best + 1];
    let offset = 0;
    if ([a, b, c].every(Number.isFinite) && a - 2 * b + c !== 0) {
      offset = Math.max(-0.5, Math.min(0.5, (0.5 * (a - c)) / (a - 2 * b + c)));
    }
    return { freq: (best + offset) * binHz, db, snr: db - median };
  }

  function tick() {
    attach();
    const now = performance.now();
    let index = 0;
    for (const slot of probe.slots.values()) {
      const p = peak(slot);
      if (p.db > -120 && probe.firstAudioAt === null) probe.firstAudioAt = now;
      if (p.db > MIN_DB && p.snr > MIN_SNR_DB) {
        probe.history.push({ t: now, slot: index, freq: p.freq });
      }
      index += 1;
    }
    if (probe.history.length > 5000) probe.history.splice(0, 2500);
  }

  probe.tones = () => {
    attach();
    return [...probe.slots.values()].map((slot, i) => ({ slot: i, ...peak(slot) }))
      .filter((p) => p.db > MIN_DB && p.snr > MIN_SNR_DB);
  };
  probe.firstTone = (freq, tol) =>
    probe.history.find((h) => Math.abs(h.freq - freq) <= tol)?.t ?? null;
  probe.lastTone = (freq, tol) =>
    probe.history.findLast((h) => Math.abs(h.freq - freq) <= tol)?.t ?? null;

  setInterval(tick, TICK_MS);
  globalThis.__audioProbe = probe;
})();
