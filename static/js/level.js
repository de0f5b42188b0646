// The microphone level meter of the lobby: how loud the microphone is, so a person sees
// that the right one works before joining. `levelOf` is pure (tests/js/level.test.js);
// `MicLevel` feeds a <meter> from a Web Audio analyser, ten times a second.

/**
 * The level of one block of 8-bit time-domain samples (128 is silence), 0..1: the RMS
 * amplitude on a square-root scale, so speech at a normal distance fills about half the meter.
 */
export function levelOf(samples) {
  if (!samples || !samples.length) return 0;
  let sum = 0;
  for (const s of samples) {
    const x = (s - 128) / 128;
    sum += x * x;
  }
  const rms = Math.sqrt(sum / samples.length);
  return Math.min(1, Math.sqrt(rms) * 1.4);
}

export class MicLevel {
  constructor(meter) {
    this.meter = meter;
    this.ctx = null;
    this.source = null;
    this.timer = null;
    this.track = null;
  }

  /** Show the level of `track` (a microphone track; null shows nothing). */
  attach(track) {
    if (track === this.track) return;
    this.stop();
    this.track = track;
    this.meter.value = 0;
    if (!track || typeof AudioContext !== "function") return;
    this.ctx = this.ctx || new AudioContext();
    // Browsers start an AudioContext suspended until the person interacts with the page.
    if (this.ctx.state === "suspended") {
      const resume = () => this.ctx && this.ctx.resume().catch(() => {});
      resume();
      document.addEventListener("pointerdown", resume, { once: true });
      document.addEventListener("keydown", resume, { once: true });
    }
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = 512;
    this.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
    this.source.connect(analyser);
    const buf = new Uint8Array(analyser.fftSize);
    this.timer = setInterval(() => {
      analyser.getByteTimeDomainData(buf);
      // A muted (disabled) track delivers silence, so the meter drops to zero by itself.
      this.meter.value = levelOf(buf);
    }, 100);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.source) this.source.disconnect();
    this.source = null;
    this.track = null;
  }

  /** Release the audio context too (leaving the lobby). */
  close() {
    this.stop();
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
  }
}
