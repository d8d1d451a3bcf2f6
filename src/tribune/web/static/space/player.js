// The listener's player: join (waiting in line if the server says so), heartbeats, the
// audio, and recovery from stalls: back off with jitter, come back at the live edge, and
// say what is going on.
//
// The audio comes one of three ways (``player.delivery``): "stream", one long response
// carrying every part (stream.js; MediaSource), preferred when the join offers it and the
// browser can play it; "hls", LL-HLS with hls.js; "native", Safari's own HLS where there is
// no MediaSource. A stream that fails to start twice in a row (an edge without it, say)
// is not tried again: hls.js for the rest of the visit.
import { api, ApiError, describe } from "/static/api.js";
import { aboutSeconds, csrfCookie, jitter, sleep } from "/static/space/dom.js";
import { POW_PROBLEM, solveChallenge } from "/static/space/pow.js";
import { StreamPlayer, streamSupported } from "/static/space/stream.js";

const STALL_MS = 3000; // no progress this long while playing: a stall
const ATTEMPT_MS = 7000; // a reconnection that has not started playing by then failed
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 8000;
const STABLE_MS = 10000; // playing this long resets the backoff
const MAX_BEHIND_S = 4; // further than this behind the live edge: jump to it
const BACK_LIVE_MS = 4000; // how long "Back live" stays before it reads "Live"
const STREAM_FAILURES = 2; // streams failing to start in a row before using hls.js instead
const STREAM_END_GRACE_MS = 3000; // after the stream's body ended, time for the room to say so
const JOIN_FIRST_BACKOFF_MS = 1000; // joins without a Retry-After: 1 s, 2 s, 4 s ... (full jitter)
const JOIN_MAX_BACKOFF_MS = 30000;
const MAX_POW_REFUSALS = 4; // proofs of work refused in a row before giving up (Play retries)

/** ms to wait before the ``failures``-th retry: full jitter, 0 up to 1 s x 2^(n-1), <= 30 s. */
export function backoff(failures) {
  return Math.random() * Math.min(JOIN_MAX_BACKOFF_MS, JOIN_FIRST_BACKOFF_MS * 2 ** (failures - 1));
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), or null. */
export function retryAfterSeconds(header) {
  if (!header) return null;
  if (/^\d+$/.test(header.trim())) return Number(header);
  const when = Date.parse(header);
  return Number.isNaN(when) ? null : Math.max(0, (when - Date.now()) / 1000);
}

/** A tenth of a second of silence as a WAV file. */
function silentWav() {
  const rate = 8000;
  const samples = rate / 10;
  const view = new DataView(new ArrayBuffer(44 + samples));
  const text = (at, str) => [...str].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate, true); view.setUint16(32, 1, true); view.setUint16(34, 8, true);
  text(36, "data"); view.setUint32(40, samples, true);
  for (let i = 0; i < samples; i++) view.setUint8(44 + i, 128);
  return new Blob([view], { type: "audio/wav" });
}

export class Player extends EventTarget {
  constructor({ spaceId, audio }) {
    super();
    // The end of the playlist (ENDLIST): the Space has ended; stop asking for more.
    audio.addEventListener("ended", () => {
      if (!this.playing) return;
      this.stopHeartbeats();
      this.dispatchEvent(new CustomEvent("gone"));
    });
    this.spaceId = spaceId;
    this.audio = audio;
    this.state = "idle"; // idle | joining | queued | starting | playing | reconnecting | stopped
    this.joined = null;
    this.hls = null;
    this.stream = null; // the StreamPlayer while delivery is "stream"
    this.delivery = null; // "stream" | "hls" | "native" once attached
    this.streamFailures = 0; // streams in a row that failed before playing
    this.streamRefused = false; // gave up on the stream for this visit: hls.js
    this.queue = null; // {position, estimated_wait_s, retry_s} while waiting in line
    this.status = "";
    this.log = []; // [{t, state, status, delivery, ...}] for people debugging (and the tests)
    this.attempts = 0;
    this.recoveries = 0;
    this.wanted = false;
    this._abort = null;
    this._heartbeat = null;
    this._watchdog = null;
    this._lastTime = 0;
    this._lastProgress = 0;
    this._attemptStarted = 0;
    this._playingSince = 0;
    this._backLiveTimer = null;
    this._streamEndedAt = 0;
  }

  get playing() { return ["starting", "playing", "reconnecting"].includes(this.state); }

  setState(state, status) {
    this.state = state;
    if (status !== undefined) this.status = status;
    this.note({ state, status: this.status });
    this.dispatchEvent(new CustomEvent("change", { detail: { state, status: this.status } }));
  }

  /** Add to the log (for people debugging, and the tests): what happened, and how we listen. */
  note(entry) {
    this.log.push({ t: Math.round(performance.now()), state: this.state, status: this.status, delivery: this.delivery, ...entry });
    if (this.log.length > 200) this.log.shift();
  }

  /** The newest audio the player can reach (seconds on the element's clock), or null. */
  get liveEdge() {
    if (this.hls) return this.hls.liveSyncPosition ?? null;
    if (this.stream) return this.stream.liveEdge;
    return null;
  }

  // -- joining ------------------------------------------------------------------------

  /**
   * A listener token: solving a proof of work first if the Space is in attack mode (403
   * with a challenge), and waiting in line as long as the server asks (429/503).
   */
  ensureJoined(signal = undefined) {
    if (this.joined) return Promise.resolve(this.joined);
    // One join at a time, however many callers (Play, a reaction) ask at once.
    if (!this._joining) {
      this._joining = this.join(signal).finally(() => { this._joining = null; });
    }
    return this._joining;
  }

  /**
   * Join, for as long as it takes, without ever hurrying the server: after a Retry-After
   * (header, else the problem's ``retry_after``) wait that long plus a random extra of up
   * to a quarter of it; after a network error or a 429/5xx that says nothing, back off
   * exponentially with full jitter (a random wait up to 1 s, 2 s, 4 s ... 30 s), so a
   * crowd's retries spread out instead of arriving together.
   */
  async join(signal) {
    let failures = 0; // answers in a row that gave no Retry-After: the exponent of the backoff
    let ticket = null; // the waiting room's ticket: our place in line, sent back on each retry
    let pow = null; // a solved proof of work, for the next join only (each is single use)
    let powRefusals = 0; // proofs refused in a row (expired, used, the difficulty went up)
    const stopped = () => new DOMException("stopped", "AbortError");
    for (;;) {
      let res;
      const headers = { Accept: "application/json" };
      const csrf = csrfCookie();
      if (csrf) headers["X-CSRF-Token"] = csrf; // signed in: the cookie vouches for us
      let body;
      if (ticket || pow) {
        headers["Content-Type"] = "application/json";
        // A ticket has paid already: it never needs a proof of work.
        body = JSON.stringify(ticket ? { ticket } : { pow });
      }
      const sentPow = !ticket && pow !== null;
      pow = null;
      try {
        res = await fetch(`/api/spaces/${this.spaceId}/join`, {
          method: "POST", headers, body, credentials: "same-origin", signal,
        });
      } catch (err) {
        if (err.name === "AbortError") throw err;
        failures += 1;
        const wait = backoff(failures);
        this.setState("joining", `Tribune cannot be reached. Trying again in ${Math.max(1, Math.ceil(wait / 1000))} s…`);
        await sleep(wait, signal);
        if (signal?.aborted) throw stopped();
        continue;
      }
      const problem = res.status === 201 ? null : await res.json().catch(() => null);
      if (res.status === 201) {
        this.joined = await res.json();
        this.queue = null;
        // Joined for a reaction, not to listen: the status line has nothing more to say.
        if (!this.wanted && ["joining", "queued"].includes(this.state)) this.setState("idle", "");
        this.startHeartbeats();
        this.dispatchEvent(new CustomEvent("joined", { detail: this.joined }));
        return this.joined;
      }
      if (ticket && (res.status === 409 || res.status === 410)) {
        ticket = null; // used or expired: join the line again
        continue;
      }
      if (res.status === 403 && problem?.type === POW_PROBLEM && problem.challenge) {
        ticket = null;
        if (sentPow) powRefusals += 1;
        if (powRefusals > MAX_POW_REFUSALS) {
          throw new ApiError(403, problem, "Tribune could not check this browser's connection. Press Play to try again in a minute.");
        }
        if (powRefusals > 0) {
          // Refused again (it expired, or was made too easy for a raised difficulty):
          // solve anew, but never in a tight loop.
          const wait = backoff(powRefusals);
          this.setState("joining", `Checking your connection again in ${Math.max(1, Math.ceil(wait / 1000))} s…`);
          await sleep(wait, signal);
          if (signal?.aborted) throw stopped();
        }
        pow = await this.solve(problem.challenge, signal);
        if (pow === null) powRefusals += 1; // could not solve that one: ask for a new one
        continue;
      }
      if (res.status === 429 || res.status >= 500) {
        if (typeof problem?.ticket === "string") ticket = problem.ticket;
        const asked = retryAfterSeconds(res.headers.get("Retry-After"))
          ?? (Number.isFinite(problem?.retry_after) ? problem.retry_after : null);
        let wait;
        if (asked !== null) {
          failures = 0;
          // Never before Retry-After; a random extra spreads a crowd's retries apart.
          wait = asked * 1000 * (1 + 0.25 * Math.random());
        } else {
          failures += 1;
          wait = backoff(failures);
        }
        if (res.status === 429 || res.status === 503) {
          this.queue = {
            position: Number.isFinite(problem?.position) ? problem.position : null,
            estimated_wait_s: Number.isFinite(problem?.estimated_wait_s) ? problem.estimated_wait_s : null,
            retry_s: asked ?? wait / 1000,
          };
          this.setState("queued", this.queueText());
        } else {
          this.setState("joining", `Tribune is having trouble. Trying again in ${Math.max(1, Math.ceil(wait / 1000))} s…`);
        }
        this.note({ join: res.status, wait: Math.round(wait) });
        await sleep(wait, signal);
        if (signal?.aborted) throw stopped();
        continue;
      }
      throw new ApiError(res.status, problem, describe(res.status, problem));
    }
  }

  /** The answer to a join's proof-of-work challenge ("w:rand:n"), or null for a new one. */
  async solve(challenge, signal) {
    this.setState("joining", "Checking your connection… (a few seconds)");
    // Also ended by stop(), when the join was not started by Play (a guest's reaction).
    const solver = new AbortController();
    this._solver = solver;
    const quit = () => solver.abort();
    signal?.addEventListener("abort", quit, { once: true });
    try {
      const result = await solveChallenge(challenge, solver.signal);
      this.note({ pow: result.pow, bits: challenge.bits, hashes: result.hashes, ms: Math.round(result.ms), reason: result.reason });
      return result.pow;
    } finally {
      signal?.removeEventListener("abort", quit);
      if (this._solver === solver) this._solver = null;
    }
  }

  queueText() {
    const q = this.queue;
    if (q && q.position !== null) {
      const wait = q.estimated_wait_s !== null ? `, ${aboutSeconds(q.estimated_wait_s)}` : "";
      return `You're in line: position ${q.position.toLocaleString()}${wait}. You'll hear the Space as soon as it's your turn.`;
    }
    return `Lots of people are joining right now. Trying again in ${aboutSeconds(q ? q.retry_s : 2)}…`;
  }

  startHeartbeats() {
    clearTimeout(this._heartbeat);
    const every = (this.joined?.heartbeat_interval_s || 10) * 1000;
    this._heartbeat = setTimeout(() => this.heartbeat(), jitter(every, 0.1));
  }

  stopHeartbeats() { clearTimeout(this._heartbeat); this._heartbeat = null; }

  async heartbeat() {
    const joined = this.joined;
    if (!joined) return;
    let next = (joined.heartbeat_interval_s || 10) * 1000;
    try {
      const beat = await api("POST", joined.urls.heartbeat, { token: joined.listener_token });
      if (beat.listener_token) this.renew(beat.listener_token);
      if (beat.next_heartbeat_s) next = beat.next_heartbeat_s * 1000;
    } catch (err) {
      if (err.status === 401) { this.joined = null; return; } // expired: the next play rejoins
      if (err.status === 403) { this.dispatchEvent(new CustomEvent("refused", { detail: err })); return; }
      if (err.status === 409 || err.status === 404) { this.dispatchEvent(new CustomEvent("gone")); return; }
      next = 5000; // unreachable for now: try again sooner
    }
    if (this.joined === joined) this._heartbeat = setTimeout(() => this.heartbeat(), jitter(next, 0.1));
  }

  /** A fresh token from a heartbeat: the audio URLs carry the token in their paths. */
  renew(token) {
    const old = this.joined.listener_token;
    const urls = this.joined.urls;
    this.joined.listener_token = token;
    for (const key of ["playlist", "stream", "init"]) {
      if (urls[key]) urls[key] = urls[key].replace(old, token);
    }
  }

  // -- playing ------------------------------------------------------------------------

  /**
   * Start listening (from a click, or when a scheduled Space goes live after the person
   * asked for it). Resolves once playback is under way, rejects with an ApiError.
   */
  async play() {
    if (this.playing || this.state === "joining" || this.state === "queued") return;
    this.wanted = true;
    this._abort = new AbortController();
    const { signal } = this._abort;
    this.setState("joining", "Connecting…");
    try {
      await this.ensureJoined(signal);
    } catch (err) {
      if (err.name === "AbortError") return;
      this.wanted = false;
      this.setState("idle", "");
      throw err;
    }
    if (signal.aborted) return;
    if (!this._heartbeat) this.startHeartbeats(); // paused earlier: counted again
    this.attach();
    this.setState("starting", "Connecting…");
    this.startWatchdog();
    await this.startElement();
  }

  async startElement() {
    try {
      await this.audio.play();
    } catch (err) {
      if (err.name === "NotAllowedError") {
        // The browser wants a press first (autoplay rules): say so, keep everything ready.
        this.teardown();
        this.wanted = false;
        this.setState("idle", "Press Play to start listening.");
        this.dispatchEvent(new CustomEvent("needs-gesture"));
      }
      // AbortError: a newer load replaced this one; the watchdog carries on.
    }
  }

  /**
   * Called from a press that does not play yet ("Play when it starts"): some browsers
   * (Safari) only let an element play later if it played once during a press.
   */
  unlock() {
    if (this._unlocked || this.playing) return;
    this._unlocked = true;
    const url = URL.createObjectURL(silentWav());
    const audio = this.audio;
    audio.src = url;
    audio.play().catch(() => {}).finally(() => {
      if (audio.getAttribute("src") === url) {
        audio.pause();
        audio.removeAttribute("src");
        audio.load();
      }
      URL.revokeObjectURL(url);
    });
  }

  /** Stop listening (Pause on a live stream: coming back starts at the live edge). */
  stop(status = "Paused.") {
    this.wanted = false;
    this._abort?.abort();
    this._solver?.abort(); // also a proof of work for a join that Play did not start
    this.stopWatchdog();
    this.stopHeartbeats();
    this.teardown();
    this.audio.pause();
    this.audio.removeAttribute("src");
    this.audio.load();
    clearTimeout(this._backLiveTimer);
    this.queue = null;
    this.setState("idle", status);
  }

  /** Leave for good: the Space ended, or this person may not listen any more. */
  close(status) {
    this.stop(status);
    this.joined = null;
    this.setState("stopped", status);
  }

  attach() {
    const urls = this.joined.urls;
    const url = urls.playlist;
    const Hls = window.Hls;
    if (urls.stream && urls.init && !this.streamRefused && streamSupported()) {
      const stream = new StreamPlayer({ audio: this.audio, initUrl: urls.init, streamUrl: urls.stream });
      stream.addEventListener("error", (event) => this.onStreamError(stream, event.detail));
      stream.addEventListener("end", () => this.onStreamEnd(stream));
      this.stream = stream;
      this.delivery = "stream";
      stream.start();
    } else if (Hls && Hls.isSupported()) {
      const hls = new Hls({
        lowLatencyMode: true,
        backBufferLength: 10,
        maxLiveSyncPlaybackRate: 1.1, // drift back to the live edge by playing a little faster
      });
      hls.on(Hls.Events.ERROR, (_event, data) => this.onHlsError(hls, data));
      hls.loadSource(url);
      hls.attachMedia(this.audio);
      this.hls = hls;
      this.delivery = "hls";
    } else if (this.audio.canPlayType("application/vnd.apple.mpegurl")) {
      this.audio.src = url; // Safari plays LL-HLS by itself
      this.native = true;
      this.delivery = "native";
    } else {
      throw new ApiError(-1, null, "This browser cannot play live audio. Try a recent Chrome, Edge, Firefox or Safari.");
    }
    this.note({ attach: this.delivery });
    this._attemptStarted = performance.now();
    this._lastProgress = performance.now();
    this._lastTime = this.audio.currentTime;
  }

  teardown() {
    if (this.stream) {
      this.stream.destroy();
      this.stream = null;
    }
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.native) {
      this.native = false;
      this.audio.removeAttribute("src");
      this.audio.load();
    }
  }

  onHlsError(hls, data) {
    if (hls !== this.hls || !data.fatal) return; // hls.js retries the rest by itself
    const code = data.response?.code;
    if (code === 401) this.joined = null; // the token expired: join again
    if (code === 403 || code === 404) this.dispatchEvent(new CustomEvent("gone"));
    if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR && !this._mediaRecovered) {
      this._mediaRecovered = true;
      hls.recoverMediaError();
      return;
    }
    this.recover(`playback error: ${data.details}`);
  }

  /**
   * The stream stopped: a network error or a cut connection (reconnect, with backoff), a
   * refused token (401 from Tribune, 410 from an edge: join again, then reconnect), or a
   * refusal (403, 404: the room is asked whether the Space is still on; an edge without
   * the stream answers 404 too) or audio that cannot be played: after STREAM_FAILURES
   * such starts in a row, hls.js takes over for the rest of the visit.
   */
  onStreamError(stream, err) {
    if (stream !== this.stream) return;
    const status = err.status;
    this.note({ error: err.message, httpStatus: status, started: err.started });
    if (status === 403 || status === 404) this.dispatchEvent(new CustomEvent("gone"));
    if (status === 401 || status === 410) {
      this.joined = null; // the token expired: join again
    } else if (!err.started && err.kind !== "network") {
      this.streamFailed(err.message);
    }
    // Before it ever played, a refusal is not a lost connection: still "Connecting…".
    this.recover(`stream: ${err.message}`, { quiet: !err.started && err.kind !== "network" });
  }

  /** Another stream that did not get as far as playing: enough of them, and it is hls.js. */
  streamFailed(reason) {
    this.streamFailures += 1;
    if (this.streamFailures >= STREAM_FAILURES && !this.streamRefused) {
      this.streamRefused = true;
      this.note({ fallback: "hls", reason });
    }
  }

  /**
   * The stream's body ended: the server ends it when the Space ends. Ask the room (it
   * closes the player if so); the audio already here plays out, and if the Space goes on
   * after all (a proxy cut the response short), the watchdog reconnects.
   */
  onStreamEnd(stream) {
    if (stream !== this.stream) return;
    this._streamEndedAt = performance.now();
    this.note({ streamEnded: true });
    this.dispatchEvent(new CustomEvent("gone"));
  }

  startWatchdog() {
    this.stopWatchdog();
    this._watchdog = setInterval(() => this.tick(), 500);
  }

  stopWatchdog() { clearInterval(this._watchdog); this._watchdog = null; }

  tick() {
    if (!this.wanted || !this.playing) return;
    const now = performance.now();
    const t = this.audio.currentTime;
    if (t > this._lastTime + 0.05 && !this.audio.paused) {
      this._lastTime = t;
      this._lastProgress = now;
      if (this.state !== "playing") this.onPlaying();
      else if (this.attempts && now - this._playingSince > STABLE_MS) this.attempts = 0;
      this.keepNearLiveEdge();
      return;
    }
    if (this.audio.paused && this.state === "playing") {
      if (this.stream && this.stream.bodyEnded && this.audio.ended) {
        // The stream ended and its audio played out, yet the room has not closed the
        // player: give it a moment, then reconnect (if the Space goes on, that is right).
        if (now - this._streamEndedAt > STREAM_END_GRACE_MS) this.recover("the stream ended");
        return;
      }
      // Paused from outside (a headset button, the OS): that is the person's choice.
      this.stop();
      return;
    }
    if (this.state === "playing" && now - this._lastProgress > STALL_MS) this.recover("stalled");
    else if (this.state !== "playing" && this._attemptStarted && now - this._attemptStarted > ATTEMPT_MS) {
      if (this.delivery === "stream") this.streamFailed("no audio yet");
      this.recover("no audio yet");
    }
  }

  onPlaying() {
    const wasReconnecting = this.state === "reconnecting";
    this._playingSince = performance.now();
    this._mediaRecovered = false;
    if (this.delivery === "stream") this.streamFailures = 0;
    this.setState("playing", wasReconnecting ? "Back live." : "Live.");
    clearTimeout(this._backLiveTimer);
    if (wasReconnecting) {
      this._backLiveTimer = setTimeout(() => {
        if (this.state === "playing") this.setState("playing", "Live.");
      }, BACK_LIVE_MS);
    }
  }

  /** After a stall the player may be far behind: live audio is about now, so jump. */
  keepNearLiveEdge() {
    if (this.stream) return; // the stream keeps itself at the live edge (stream.js)
    const edge = this.hls ? this.hls.liveSyncPosition : null;
    if (edge && this.audio.currentTime < edge - MAX_BEHIND_S) this.audio.currentTime = edge;
  }

  /**
   * Rebuild the player after a pause that grows: 0.5 s, 1 s, 2 s ... 8 s, with jitter.
   * ``quiet``: before anything played, keep saying "Connecting…" (e.g. trying the next way
   * to listen) rather than "Reconnecting…".
   */
  async recover(reason, { quiet = false } = {}) {
    if (!this.wanted || this._recovering) return;
    quiet = quiet && this.state === "starting";
    this._recovering = true;
    this.reason = reason;
    this.note({ recover: reason });
    try {
      this.recoveries += 1;
      const base = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** this.attempts);
      this.attempts += 1;
      clearTimeout(this._backLiveTimer);
      if (!quiet) this.setState("reconnecting", "Reconnecting…");
      this.teardown();
      this._attemptStarted = 0; // the watchdog waits while we back off
      const signal = this._abort?.signal;
      await sleep(jitter(base, 0.25), signal);
      if (!this.wanted || signal?.aborted) return;
      try {
        await this.ensureJoined(signal);
      } catch (err) {
        if (err.name === "AbortError") return;
        // (A proof of work refused again and again is not a refusal of this person: retry.)
        const refused = err.status === 403 && err.problem?.type !== POW_PROBLEM;
        if (refused || err.status === 409 || err.status === 404) {
          this.dispatchEvent(new CustomEvent("gone"));
          this.dispatchEvent(new CustomEvent("refused", { detail: err }));
          return;
        }
        this._attemptStarted = performance.now() - ATTEMPT_MS; // try again after the next backoff
        return;
      }
      if (!this.wanted) return;
      if (!this._heartbeat) this.startHeartbeats(); // stopped when the audio ended
      if (!quiet && this.state !== "reconnecting") this.setState("reconnecting", "Reconnecting…");
      this.attach();
      this.startElement();
    } finally {
      this._recovering = false;
    }
  }
}
