// Speaking: the microphone published to the stage over WHIP, the others heard through
// the mix-minus the server sends back (everyone but you), mute, and a level meter.
import { publish } from "/static/whip.js";
import { ApiError, describe } from "/static/api.js";

/** Words for getUserMedia's failures: what happened and what to do about it. */
export function micProblem(err) {
  switch (err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Your browser is blocking the microphone for this site, so you can't speak yet. "
        + "To allow it: click the icon at the left of the address bar (a lock or sliders), "
        + "set Microphone to Allow, then press \u201cJoin the stage\u201d again. "
        + "On a phone, allow the microphone for your browser in the system settings too.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Plug one in (or pick one in your system's sound settings) and try again.";
    case "NotReadableError":
    case "AbortError":
      return "Your microphone is busy or unavailable: another app may be using it. Close that app and try again.";
    default:
      return `The microphone could not be started (${err.message || err.name}).`;
  }
}

export class MicError extends Error {
  constructor(cause) {
    super(micProblem(cause));
    this.name = "MicError";
    this.cause = cause;
    this.denied = cause.name === "NotAllowedError" || cause.name === "SecurityError";
  }
}

export class Mic extends EventTarget {
  constructor({ spaceId, output }) {
    super();
    this.spaceId = spaceId;
    this.output = output; // <audio> playing the mix-minus
    this.session = null;
    this.stream = null;
    this.state = "off"; // off | starting | on
    this.muted = false;
    this._meter = null;
  }

  get on() { return this.state === "on"; }
  get remote() { return this.session ? this.session.remote : null; }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("change", { detail: { state } }));
  }

  /** Ask for the microphone, publish it, and play what comes back. */
  async start({ csrf, muted = false }) {
    if (this.state !== "off") return;
    this.setState("starting");
    try {
      if (!navigator.mediaDevices?.getUserMedia) {
        throw new MicError(Object.assign(new Error("this page is not on a secure (https) address"), { name: "SecurityError" }));
      }
      try {
        this.stream = await navigator.mediaDevices.getUserMedia({
          audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
        });
      } catch (err) {
        throw new MicError(err);
      }
      this.muted = muted;
      this.stream.getAudioTracks().forEach((t) => { t.enabled = !muted; });
      try {
        this.session = await publish(`/api/spaces/${this.spaceId}/whip`, { stream: this.stream, csrf });
      } catch (err) {
        if (err.name !== "WhipError") throw new ApiError(-1, null, `Could not join the stage: ${err.message}`);
        throw new ApiError(err.status, err.problem,
          err.status ? `Could not join the stage: ${describe(err.status, err.problem)}` : describe(0, null));
      }
      const pc = this.session.pc;
      pc.addEventListener("connectionstatechange", () => {
        if (this.session?.pc === pc && (pc.connectionState === "failed" || pc.connectionState === "closed")) {
          this.dispatchEvent(new CustomEvent("dropped", { detail: pc.connectionState }));
        }
      });
      this.output.srcObject = this.session.remote;
      this.output.play().catch(() => {}); // a track arrives a moment later: autoplay picks it up
      this.startMeter();
      this.setState("on");
    } catch (err) {
      this.release();
      this.setState("off");
      throw err;
    }
  }

  setMuted(muted) {
    this.muted = muted;
    this.stream?.getAudioTracks().forEach((t) => { t.enabled = !muted; });
    this.dispatchEvent(new CustomEvent("change", { detail: { state: this.state } }));
  }

  /**
   * Stop speaking. ``server: true`` ends the WHIP session on the server (DELETE); false
   * when the server has ended it already (demoted, removed, the Space ended).
   */
  async stop({ server = true } = {}) {
    const session = this.session;
    this.session = null;
    this.releaseLocal();
    this.setState("off");
    if (session) await (server ? session.stop() : session.close());
  }

  release() {
    const session = this.session;
    this.session = null;
    session?.close();
    this.releaseLocal();
  }

  releaseLocal() {
    this.stopMeter();
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
    if (this.output.srcObject) {
      this.output.pause();
      this.output.srcObject = null;
    }
  }

  /** A level meter on the microphone itself, so people see that they are heard. */
  startMeter() {
    try {
      const ctx = new AudioContext();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 1024;
      ctx.createMediaStreamSource(this.stream).connect(analyser);
      const samples = new Float32Array(analyser.fftSize);
      const timer = setInterval(() => {
        analyser.getFloatTimeDomainData(samples);
        let sum = 0;
        for (const v of samples) sum += v * v;
        const rms = this.muted ? 0 : Math.sqrt(sum / samples.length);
        this.dispatchEvent(new CustomEvent("level", { detail: rms }));
      }, 100);
      ctx.resume().catch(() => {});
      this._meter = { ctx, timer };
    } catch {
      this._meter = null; // no meter is fine; speaking still works
    }
  }

  stopMeter() {
    if (!this._meter) return;
    clearInterval(this._meter.timer);
    this._meter.ctx.close().catch(() => {});
    this._meter = null;
  }
}
