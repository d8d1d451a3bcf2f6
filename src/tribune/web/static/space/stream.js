// Live audio as ONE long HTTP response (GET urls.stream): the server sends the raw fMP4
// fragments (moof+mdat, one 0.34 s LL-HLS part each) the moment each is made, after the
// last two parts already made; the body ends when the Space ends. We fetch the init
// section (urls.init), then append whatever bytes arrive, in order, to a MediaSource
// SourceBuffer (it finds the box boundaries itself: fetch() chunks need not be parts).
//
// One request per listener instead of a playlist and a part every 0.34 s, and about a
// second from microphone to ear: playback starts 0.4 s behind the newest audio and is
// kept there (a little faster when behind, a jump when far behind).
//
// Events: "ready" (audio is buffered and the position is placed at the live edge),
// "end" (the body ended cleanly: the Space is probably over; buffered audio plays out and
// the element fires "ended"), "error" (detail: a StreamError; the caller reconnects).

export const STREAM_TYPE = 'audio/mp4; codecs="mp4a.40.2"';

const START_BUFFER_S = 0.3; // start once this much is buffered
const TARGET_S = 0.4; // play this far behind the newest buffered audio
const MAX_TARGET_S = 1.0; // the target grows after underruns, up to this
const DRIFT_S = 0.5; // on average this much further behind than the target: 3 % faster
const DRIFT_RATE = 1.03;
const CATCH_UP_S = 1.5; // further behind than this: 8 % faster
const CATCH_UP_RATE = 1.08;
const SETTLED_S = 0.25; // back at normal speed once on average this close to the target
const JUMP_S = 3.0; // further behind than this: jump to the live edge
const BACK_BUFFER_S = 10; // keep this much already played audio
const TRIM_EVERY_S = 5; // trim once this much more than BACK_BUFFER_S has built up
const TICK_MS = 250;

/** Whether this browser can play the stream (MediaSource with AAC-LC in MP4). */
export function streamSupported() {
  const MS = window.MediaSource;
  return Boolean(MS && typeof MS.isTypeSupported === "function" && MS.isTypeSupported(STREAM_TYPE));
}

/**
 * Why the stream stopped. ``kind``: "http" (``status`` is the HTTP status), "network"
 * (the connection failed or was cut), "media" (the bytes could not be played).
 */
export class StreamError extends Error {
  constructor(message, { kind, status = null, started = false } = {}) {
    super(message);
    this.name = "StreamError";
    this.kind = kind;
    this.status = status;
    this.started = started; // had it started playing?
  }
}

export class StreamPlayer extends EventTarget {
  constructor({ audio, initUrl, streamUrl }) {
    super();
    this.audio = audio;
    this.initUrl = initUrl;
    this.streamUrl = streamUrl;
    this.started = false; // the position was placed at the live edge
    this.bodyEnded = false;
    this.bytes = 0;
    this.chunks = 0;
    this.underruns = 0;
    this.jumps = 0;
    this.target = TARGET_S;
    this.averageBehind = null; // how far behind, smoothed over a few seconds
    this._ops = []; // pending SourceBuffer operations, in order: {append} | {remove: [start, end]}
    this._abort = new AbortController();
    this._destroyed = false; // no more work or events (destroyed, or failed)
    this._torn = false; // destroy() ran
    this._mediaSource = null;
    this._sourceBuffer = null;
    this._url = null;
    this._timer = null;
    this._listeners = [];
  }

  /** The newest buffered audio (seconds on the element's clock), or null. */
  get liveEdge() {
    const b = this._buffered();
    return b && b.length ? b.end(b.length - 1) : null;
  }

  /** Seconds between the playing position and the newest audio we have. */
  get behind() {
    const edge = this.liveEdge;
    return edge === null ? null : Math.max(0, edge - this.audio.currentTime);
  }

  /** Attach to the element and start fetching. Errors come as "error" events. */
  start() {
    const ms = new MediaSource();
    this._mediaSource = ms;
    this._url = URL.createObjectURL(ms);
    this._on(this.audio, "waiting", () => this._onWaiting());
    this._on(this.audio, "error", () => {
      const err = this.audio.error;
      this._fail(new StreamError(`media error ${err?.code ?? "?"}: ${err?.message || "cannot play"}`, { kind: "media" }));
    });
    this.audio.src = this._url;
    this._timer = setInterval(() => this._tick(), TICK_MS);
    this._run().catch((err) => this._fail(err));
  }

  /** Stop fetching and let go of the element (which is left without a source). */
  destroy() {
    if (this._torn) return;
    this._torn = true;
    this._destroyed = true;
    this._abort.abort();
    clearInterval(this._timer);
    for (const [target, type, fn] of this._listeners) target.removeEventListener(type, fn);
    this._listeners = [];
    this._ops = [];
    if (this.audio.playbackRate !== 1) this.audio.playbackRate = 1;
    if (this._url && this.audio.src === this._url) {
      this.audio.removeAttribute("src");
      this.audio.load();
    }
    if (this._url) URL.revokeObjectURL(this._url);
    this._url = null;
    this._sourceBuffer = null;
    this._mediaSource = null;
  }

  // -- fetching -------------------------------------------------------------------------

  async _run() {
    const { signal } = this._abort;
    // Both requests at once: the stream's first bytes wait in its body until the init is in.
    const init = this._fetch(this.initUrl, "init section").then((res) => res.arrayBuffer());
    const stream = this._fetch(this.streamUrl, "stream");
    init.catch(() => {});
    stream.catch(() => {});
    await this._sourceOpen();
    if (this._destroyed) return;
    this._sourceBuffer = this._mediaSource.addSourceBuffer(STREAM_TYPE);
    this._on(this._sourceBuffer, "updateend", () => this._onUpdateEnd());
    this._on(this._sourceBuffer, "error", () => this._fail(new StreamError("the audio could not be decoded", { kind: "media" })));
    let initBytes;
    try {
      initBytes = await init;
    } catch (err) {
      throw this._wrap(err, "init section");
    }
    if (this._destroyed) return;
    this._push({ append: new Uint8Array(initBytes) });
    const res = await stream;
    if (this._destroyed) return;
    const reader = res.body.getReader();
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw this._wrap(err, "stream");
      }
      if (this._destroyed || signal.aborted) return;
      if (chunk.done) break;
      this.bytes += chunk.value.byteLength;
      this.chunks += 1;
      this._push({ append: chunk.value });
    }
    this.bodyEnded = true;
    this._push({ end: true });
  }

  async _fetch(url, what) {
    let res;
    try {
      res = await fetch(url, { signal: this._abort.signal, cache: "no-store", credentials: "same-origin" });
    } catch (err) {
      throw this._wrap(err, what);
    }
    if (!res.ok) {
      res.body?.cancel().catch(() => {});
      throw new StreamError(`${what}: HTTP ${res.status}`, { kind: "http", status: res.status });
    }
    return res;
  }

  _wrap(err, what) {
    if (err instanceof StreamError) return err;
    if (err?.name === "AbortError") return err;
    return new StreamError(`${what}: ${err?.message || "network error"}`, { kind: "network" });
  }

  _sourceOpen() {
    const ms = this._mediaSource;
    if (ms.readyState === "open") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => resolve();
      this._on(ms, "sourceopen", done);
      this._abort.signal.addEventListener("abort", done, { once: true });
    });
  }

  // -- the SourceBuffer -------------------------------------------------------------------

  _push(op) {
    if (this._destroyed) return;
    const last = this._ops[this._ops.length - 1];
    if (op.append && last?.append) {
      // Join small chunks: one append per burst, not one per fetch() chunk.
      const joined = new Uint8Array(last.append.byteLength + op.append.byteLength);
      joined.set(last.append, 0);
      joined.set(op.append, last.append.byteLength);
      last.append = joined;
    } else {
      this._ops.push(op);
    }
    this._pump();
  }

  _pump() {
    const sb = this._sourceBuffer;
    const ms = this._mediaSource;
    if (this._destroyed || !sb || sb.updating || !this._ops.length || ms.readyState !== "open") return;
    const op = this._ops[0];
    try {
      if (op.append) {
        sb.appendBuffer(op.append);
      } else if (op.remove) {
        sb.remove(op.remove[0], op.remove[1]);
      } else if (op.end) {
        this._ops.shift();
        ms.endOfStream();
        this.dispatchEvent(new CustomEvent("end"));
        return;
      }
      this._ops.shift();
    } catch (err) {
      if (err.name === "QuotaExceededError" && op.append) {
        // Full: drop more of what was already played, then try the append again.
        if (this._trim(2)) {
          this._pump();
          return;
        }
      }
      this._fail(new StreamError(`the audio could not be buffered: ${err.message}`, { kind: "media" }));
    }
  }

  _onUpdateEnd() {
    if (this._destroyed) return;
    if (!this.started) this._maybeStart();
    this._pump();
  }

  _buffered() {
    try {
      return this._sourceBuffer ? this._sourceBuffer.buffered : null;
    } catch {
      return null; // removed from its MediaSource
    }
  }

  /** Enough buffered: place the position TARGET_S behind the newest audio. */
  _maybeStart() {
    const b = this._buffered();
    if (!b || !b.length) return;
    const start = b.start(b.length - 1);
    const end = b.end(b.length - 1);
    if (end - start < START_BUFFER_S) return;
    this.started = true;
    this.audio.currentTime = Math.max(start, end - this.target);
    this.dispatchEvent(new CustomEvent("ready"));
  }

  /** Queue removing what was played more than BACK_BUFFER_S ago (``extra`` s more). */
  _trim(extra = 0) {
    const b = this._buffered();
    if (!b || !b.length) return false;
    const until = this.audio.currentTime - BACK_BUFFER_S + extra;
    const from = b.start(0);
    if (until <= from) return false;
    this._ops.unshift({ remove: [from, until] });
    return true;
  }

  // -- keeping up with the live edge ------------------------------------------------------

  _onWaiting() {
    // Ran out of audio while playing: the next parts came late. Play further behind.
    if (!this.started || this.bodyEnded || this.audio.seeking) return;
    this.underruns += 1;
    this.target = Math.min(MAX_TARGET_S, this.target + 0.1);
  }

  _tick() {
    if (this._destroyed || !this.started) return;
    const audio = this.audio;
    const b = this._buffered();
    if (!b || !b.length) return;
    const t = audio.currentTime;
    const edge = b.end(b.length - 1);
    let inside = false;
    for (let i = 0; i < b.length; i++) if (t >= b.start(i) && t < b.end(i)) inside = true;
    // Parts arrive every 0.34 s, so ``behind`` is a saw tooth: steer by its average. The
    // server's clock and the sound card's differ a little: without this the delay drifts.
    const behind = edge - t;
    const avg = this.averageBehind === null ? behind : this.averageBehind + 0.1 * (behind - this.averageBehind);
    this.averageBehind = avg;
    if (!this.bodyEnded) {
      if (!inside && t < b.start(b.length - 1)) {
        // In a hole (or before the first audio): go to where the audio is.
        this._jump(Math.max(b.start(b.length - 1), edge - this.target));
      } else if (behind > JUMP_S) {
        this._jump(edge - this.target);
      } else if (behind > CATCH_UP_S) {
        if (audio.playbackRate !== CATCH_UP_RATE) audio.playbackRate = CATCH_UP_RATE;
      } else if (audio.playbackRate === 1 && avg > this.target + DRIFT_S) {
        audio.playbackRate = DRIFT_RATE;
      } else if (audio.playbackRate !== 1 && avg <= this.target + SETTLED_S) {
        audio.playbackRate = 1;
      }
    }
    if (t - b.start(0) > BACK_BUFFER_S + TRIM_EVERY_S && !this._ops.some((op) => op.remove)) {
      if (this._trim()) this._pump();
    }
  }

  _jump(to) {
    this.jumps += 1;
    this.averageBehind = null;
    this.audio.playbackRate = 1;
    this.audio.currentTime = to;
  }

  // -- failing ----------------------------------------------------------------------------

  _fail(err) {
    if (this._destroyed || err?.name === "AbortError") return;
    const error = err instanceof StreamError ? err : new StreamError(String(err?.message || err), { kind: "media" });
    error.started = this.started;
    this._destroyed = true; // no more events from this one; the caller destroys it
    this._abort.abort();
    clearInterval(this._timer);
    this.dispatchEvent(new CustomEvent("error", { detail: error }));
  }

  _on(target, type, fn) {
    target.addEventListener(type, fn);
    this._listeners.push([target, type, fn]);
  }
}
