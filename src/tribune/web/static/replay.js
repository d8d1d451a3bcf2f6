// The replay of an ended Space: play it (hls.js, or Safari's own HLS), seek, change the
// speed, make a clip of up to 5 minutes, play it, share a link to it and download it.
import { ApiError, api, describe } from "/static/api.js";
import { header } from "/static/header.js";

const MAX_CLIP_S = 300;
const ARROW_STEP_S = 5;
const PAGE_STEP_S = 60;
const SKIP_S = 15;

const $ = (id) => document.getElementById(id);
const spaceId = decodeURIComponent(location.pathname.split("/")[2] || "");
const audio = $("audio");
const seek = $("seek");
const startField = $("clip-start");
const endField = $("clip-end");

audio.preservesPitch = true; // 1.5x and 2x speed up the words, not the voices' pitch
if ("webkitPreservesPitch" in audio) audio.webkitPreservesPitch = true;

let hls = null;
let space = null;
let whole = null; // { url, text, duration } of the whole Space's playlist
// What the player has loaded: the whole Space, or a clip of it starting at ``offset``
// seconds into the Space (a clip's own time runs from 0).
let source = null;
let speed = 1;
let dragging = false;
let retries = 0;

window.tribune = { audio, get hls() { return hls; } };

// ---------------------------------------------------------------- times

/** 0:07, 12:05, 1:02:03; with ``tenths`` a fraction shows as 0:03.4. */
function clock(seconds, { tenths = false } = {}) {
  let t = Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
  t = tenths ? Math.round(t * 10) / 10 : Math.floor(t);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = t - h * 3600 - m * 60;
  const whole = Math.floor(s + 1e-9);
  let ss = String(whole).padStart(2, "0");
  if (tenths && s - whole > 0.05) ss += `.${Math.round((s - whole) * 10) % 10}`;
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** A typed time: "1:05", "1:05.5", "1:02:03" or plain seconds ("65"); null if empty,
 * NaN if it is not a time. */
function parseClock(text) {
  const t = text.trim().replace(",", ".");
  if (!t) return null;
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  let m = /^(\d+):(\d{1,2}(?:\.\d+)?)$/.exec(t);
  if (m && Number(m[2]) < 60) return Number(m[1]) * 60 + Number(m[2]);
  m = /^(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$/.exec(t);
  if (m && Number(m[2]) < 60 && Number(m[3]) < 60) {
    return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  }
  return NaN;
}

/** "7 seconds", "12 minutes", "1 hour 5 minutes". */
function lasted(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  if (s < 60) return plural(s, "second");
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (!h) return plural(m, "minute");
  return m ? `${plural(h, "hour")} ${plural(m, "minute")}` : plural(h, "hour");
}

function when(iso) {
  const time = document.createElement("time");
  time.dateTime = iso;
  time.textContent = new Intl.DateTimeFormat(undefined, {
    weekday: "short", year: "numeric", month: "short", day: "numeric",
    hour: "numeric", minute: "2-digit", timeZoneName: "short",
  }).format(new Date(iso));
  return time;
}

/** Seconds as a URL parameter: at most 3 decimals, no trailing zeros. */
const param = (seconds) => String(Math.round(seconds * 1000) / 1000);

// ---------------------------------------------------------------- messages

function showError(message, ...extra) {
  const box = $("error");
  box.replaceChildren();
  if (message) box.append(message, ...extra);
}

function notice(...content) {
  const box = $("status");
  box.replaceChildren(...content.map((c) => {
    if (typeof c !== "string") return c;
    return Object.assign(document.createElement("p"), { textContent: c });
  }));
  box.hidden = content.length === 0;
}

function link(href, text, className) {
  const a = Object.assign(document.createElement("a"), { href, textContent: text });
  if (className) a.className = className;
  return a;
}

function paragraph(...content) {
  const p = document.createElement("p");
  p.append(...content);
  return p;
}

function clipError(message) {
  $("clip-error").textContent = message || "";
}

function clipStatus(message) {
  $("clip-status").textContent = message || "";
}

// ---------------------------------------------------------------- playlists

/** GET a playlist's text; rejects with an ApiError whose message is for people. */
async function fetchPlaylist(url) {
  let res;
  try {
    res = await fetch(url, { credentials: "same-origin" });
  } catch {
    throw new ApiError(0, null, describe(0, null));
  }
  if (!res.ok) {
    const type = res.headers.get("Content-Type") || "";
    const problem = type.includes("json") ? await res.json().catch(() => null) : null;
    throw new ApiError(res.status, problem, describe(res.status, problem));
  }
  return res.text();
}

/** The media entries of a playlist: uri, start (s into the playlist), duration, pdt (ms). */
function entries(text) {
  const out = [];
  let at = 0;
  let duration = null;
  let pdt = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#EXTINF:")) duration = parseFloat(line.slice(8));
    else if (line.startsWith("#EXT-X-PROGRAM-DATE-TIME:")) pdt = Date.parse(line.slice(25));
    else if (line && !line.startsWith("#") && duration !== null) {
      out.push({ uri: line, start: at, duration, pdt });
      at += duration;
      duration = null;
      pdt = null;
    }
  }
  return out;
}

const lengthOf = (text) => entries(text).reduce((sum, e) => sum + e.duration, 0);

/** Where a clip playlist starts in the whole Space: clips begin on a part boundary (up to
 * 0.34 s before the asked start), found from the first entry's date in the same file. */
function clipOffset(clipText, asked) {
  const first = entries(clipText)[0];
  const same = first && entries(whole.text).find((e) => e.uri === first.uri);
  if (!same || !Number.isFinite(first.pdt) || !Number.isFinite(same.pdt)) return asked;
  const offset = same.start + (first.pdt - same.pdt) / 1000;
  return Math.abs(offset - asked) < 0.5 ? offset : asked;
}

const clipUrl = (start, end) =>
  `/replay/${encodeURIComponent(spaceId)}/clip.m3u8?start=${param(start)}&end=${param(end)}`;
const downloadUrl = (start, end) =>
  `/replay/${encodeURIComponent(spaceId)}/download.m4a?start=${param(start)}&end=${param(end)}`;

// ---------------------------------------------------------------- the player

/** Load ``next`` ({kind, url, duration, offset}) and start at ``at`` seconds into it. */
function load(next, at = 0, autoplay = false) {
  if (hls) {
    hls.destroy();
    hls = null;
  }
  source = next;
  retries = 0;
  seek.max = String(next.duration);
  render(at);
  $("play").disabled = false;
  const isClip = next.kind === "clip";
  $("clip-mode").hidden = !isClip;
  $("player-heading").textContent = isClip ? "Listen to the clip" : "Listen";
  if (isClip) {
    $("clip-mode-text").textContent =
      `In the player: the clip ${clock(next.start, { tenths: true })}–` +
      `${clock(next.end, { tenths: true })} (${lasted(next.duration)}).`;
  }
  if (window.Hls && window.Hls.isSupported()) {
    hls = new window.Hls({ startPosition: at, enableWorker: true });
    hls.on(window.Hls.Events.ERROR, onHlsError);
    hls.loadSource(next.url);
    hls.attachMedia(audio);
  } else if (audio.canPlayType("application/vnd.apple.mpegurl")) {
    audio.src = next.url; // Safari plays HLS itself
    if (at) audio.addEventListener("loadedmetadata", () => { audio.currentTime = at; }, { once: true });
  } else {
    $("play").disabled = true;
    showError("This browser cannot play the replay. You can still download it below.");
    return;
  }
  applySpeed();
  if (autoplay) play();
}

function onHlsError(_event, data) {
  if (!data.fatal) return;
  const { ErrorTypes } = window.Hls;
  if (data.type === ErrorTypes.NETWORK_ERROR && retries < 4) {
    retries += 1;
    $("player-status").textContent = "The connection dropped; trying again…";
    setTimeout(() => hls && hls.startLoad(), 1000 * 2 ** (retries - 1));
  } else if (data.type === ErrorTypes.MEDIA_ERROR && retries < 2) {
    retries += 1;
    hls.recoverMediaError();
  } else {
    const status = data.response && data.response.code;
    showError(
      status === 0 || data.type === ErrorTypes.NETWORK_ERROR
        ? "The recording could not be loaded. Check your connection and reload the page."
        : "The recording could not be played in this browser. You can still download it below.",
    );
    $("player-status").textContent = "";
  }
}

async function play() {
  try {
    await audio.play();
  } catch (err) {
    if (err.name === "AbortError") return; // a new source replaced this one: fine
    showError(err.name === "NotAllowedError"
      ? "The browser blocked playback. Press Play to start listening."
      : "The recording could not be played. Reload the page to try again.");
  }
}

function togglePlay() {
  if (audio.paused || audio.ended) play();
  else audio.pause();
}

/** Seconds into what is loaded. */
function position() {
  return Number.isFinite(audio.currentTime) ? audio.currentTime : 0;
}

/** Seconds into the whole Space (a clip's time plus where it starts). */
function spacePosition() {
  return (source ? source.offset : 0) + position();
}

function seekTo(seconds) {
  if (!source) return;
  const t = Math.min(Math.max(0, seconds), source.duration);
  audio.currentTime = t;
  render(t);
}

/** Show ``at`` (default: the media's time) on the slider and the clock. */
function render(at) {
  if (!source) return;
  const t = at === undefined ? position() : at;
  const total = source.duration;
  if (!dragging) seek.value = String(t);
  $("position").textContent = clock(t);
  $("duration").textContent = clock(total);
  seek.setAttribute("aria-valuetext", `${clock(t)} of ${clock(total)}`);
}

function renderPlaying() {
  const paused = audio.paused || audio.ended;
  $("play").textContent = paused ? "▶ Play" : "❚❚ Pause";
}

function applySpeed() {
  audio.defaultPlaybackRate = speed; // kept when a new source loads
  audio.playbackRate = speed;
  audio.preservesPitch = true;
}

function wirePlayer() {
  $("play").addEventListener("click", togglePlay);
  $("back").addEventListener("click", () => seekTo(position() - SKIP_S));
  $("forward").addEventListener("click", () => seekTo(position() + SKIP_S));
  $("whole").addEventListener("click", () => {
    const at = spacePosition();
    load({ kind: "space", url: whole.url, duration: whole.duration, offset: 0 }, at, !audio.paused);
  });

  seek.addEventListener("pointerdown", () => { dragging = true; });
  for (const type of ["pointerup", "pointercancel"]) {
    seek.addEventListener(type, () => { dragging = false; });
  }
  seek.addEventListener("input", () => {
    const t = Number(seek.value);
    render(t);
    if (!dragging) seekTo(t);
  });
  seek.addEventListener("change", () => {
    dragging = false;
    seekTo(Number(seek.value));
  });
  seek.addEventListener("keydown", (event) => {
    const steps = {
      ArrowRight: ARROW_STEP_S, ArrowUp: ARROW_STEP_S,
      ArrowLeft: -ARROW_STEP_S, ArrowDown: -ARROW_STEP_S,
      PageUp: PAGE_STEP_S, PageDown: -PAGE_STEP_S,
    };
    if (event.key in steps) seekTo(position() + steps[event.key]);
    else if (event.key === "Home") seekTo(0);
    else if (event.key === "End") seekTo(source ? source.duration : 0);
    else return;
    event.preventDefault();
  });

  for (const radio of document.querySelectorAll('input[name="speed"]')) {
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      speed = Number(radio.value);
      applySpeed();
    });
  }

  audio.addEventListener("timeupdate", () => render());
  audio.addEventListener("durationchange", () => {
    if (source && Number.isFinite(audio.duration) && audio.duration > 0) {
      source.duration = audio.duration;
      seek.max = String(audio.duration);
      render();
    }
  });
  audio.addEventListener("loadedmetadata", applySpeed);
  for (const type of ["play", "pause", "ended"]) audio.addEventListener(type, renderPlaying);
  audio.addEventListener("error", () => {
    if (hls || !source) return; // hls.js reports its own errors (onHlsError)
    showError("The recording could not be played in this browser. You can still download it below.");
  });
  audio.addEventListener("waiting", () => { $("player-status").textContent = "Loading…"; });
  audio.addEventListener("playing", () => {
    $("player-status").textContent = "";
    showError("");
  });
  audio.addEventListener("ended", () => {
    $("player-status").textContent = source && source.kind === "clip"
      ? "The clip has ended." : "The Space has ended. Press Play to hear it again.";
  });
}

// ---------------------------------------------------------------- clips

/** The clip in the fields: {start, end} or {error, field}. */
function readClip() {
  const start = parseClock(startField.value);
  const end = parseClock(endField.value);
  const example = "for example 1:05";
  if (start === null) {
    return { error: `Set where the clip starts: press “Start here” while listening, or type a time (${example}).`, field: startField };
  }
  if (Number.isNaN(start)) {
    return { error: `“${startField.value.trim()}” is not a time. Type the start as minutes:seconds, ${example}.`, field: startField };
  }
  if (end === null) {
    return { error: `Set where the clip ends: press “End here” while listening, or type a time (${example}).`, field: endField };
  }
  if (Number.isNaN(end)) {
    return { error: `“${endField.value.trim()}” is not a time. Type the end as minutes:seconds, ${example}.`, field: endField };
  }
  if (end <= start) {
    return {
      error: `The clip has to end after it starts: it ends at ${clock(end, { tenths: true })}, ` +
        `before its start at ${clock(start, { tenths: true })}.`,
      field: endField,
    };
  }
  if (end - start > MAX_CLIP_S + 1e-6) {
    return {
      error: `A clip can be at most 5 minutes long; this one is ${clock(end - start)}. ` +
        "Move the start and the end closer together.",
      field: endField,
    };
  }
  return { start, end };
}

function shareUrl(clip) {
  const url = new URL(`/spaces/${encodeURIComponent(spaceId)}/replay`, location.origin);
  url.searchParams.set("start", param(clip.start));
  url.searchParams.set("end", param(clip.end));
  return url.href;
}

/** Reflect the fields: the clip's length, its link, which field is wrong. ``loud`` also
 * says what is wrong (after an action, or when a field is left). */
function updateClip({ loud = false } = {}) {
  const clip = readClip();
  for (const field of [startField, endField]) field.removeAttribute("aria-invalid");
  const ok = !clip.error;
  $("copy-link").disabled = !ok;
  $("copied").textContent = "";
  if (ok) {
    $("clip-length").textContent =
      `Clip ${clock(clip.start, { tenths: true })} to ${clock(clip.end, { tenths: true })}, ` +
      `${lasted(clip.end - clip.start)} long.`;
    $("share-link").value = shareUrl(clip);
    clipError("");
    const here = new URL(location.href);
    here.searchParams.set("start", param(clip.start));
    here.searchParams.set("end", param(clip.end));
    history.replaceState(null, "", here.pathname + here.search);
    return clip;
  }
  $("clip-length").textContent = "";
  $("share-link").value = "";
  if (loud) {
    clip.field.setAttribute("aria-invalid", "true");
    clipError(clip.error);
  }
  return null;
}

/** The clip in the fields, checked here and then by Tribune; null (and a message) if not. */
async function checkedClip() {
  clipStatus("");
  const clip = updateClip({ loud: true });
  if (!clip) return null;
  try {
    const text = await fetchPlaylist(clipUrl(clip.start, clip.end));
    return { ...clip, text };
  } catch (err) {
    clipError(`That clip cannot be made: ${err.message}`);
    return null;
  }
}

async function playClip() {
  const button = $("play-clip");
  button.disabled = true;
  try {
    const clip = await checkedClip();
    if (!clip) return;
    load({
      kind: "clip",
      url: clipUrl(clip.start, clip.end),
      duration: lengthOf(clip.text),
      offset: clipOffset(clip.text, clip.start),
      start: clip.start,
      end: clip.end,
    }, 0, true);
  } finally {
    button.disabled = false;
  }
}

async function downloadClip() {
  const button = $("download-clip");
  button.disabled = true;
  clipStatus("Preparing the clip…");
  try {
    const clip = await checkedClip();
    if (!clip) {
      clipStatus("");
      return;
    }
    const a = link(downloadUrl(clip.start, clip.end), "download");
    a.download = `tribune-${spaceId}-${param(clip.start)}-${param(clip.end)}s.m4a`;
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    clipStatus("Your download has started.");
  } finally {
    button.disabled = false;
  }
}

function setEdge(field) {
  if (!source) return;
  let t = spacePosition();
  if (whole) t = Math.min(t, Math.floor(whole.duration * 10) / 10);
  field.value = clock(t, { tenths: true });
  updateClip({ loud: Boolean(startField.value.trim() && endField.value.trim()) });
  clipStatus("");
}

async function copyLink() {
  const input = $("share-link");
  if (!input.value) return;
  try {
    await navigator.clipboard.writeText(input.value);
    $("copied").textContent = "Link copied.";
  } catch {
    input.focus();
    input.select();
    $("copied").textContent = "Copying was not allowed here: the link is selected, copy it with Ctrl+C (⌘C on a Mac).";
  }
}

function wireClips() {
  $("start-here").addEventListener("click", () => setEdge(startField));
  $("end-here").addEventListener("click", () => setEdge(endField));
  for (const field of [startField, endField]) {
    field.addEventListener("input", () => { updateClip(); clipStatus(""); });
    field.addEventListener("change", () => {
      // Say what is wrong once both are filled in (not while someone is still typing).
      updateClip({ loud: Boolean(startField.value.trim() && endField.value.trim()) });
    });
  }
  $("play-clip").addEventListener("click", () => playClip().catch(unexpected));
  $("download-clip").addEventListener("click", () => downloadClip().catch(unexpected));
  $("copy-link").addEventListener("click", () => copyLink().catch(unexpected));
  $("share-link").addEventListener("focus", (e) => e.target.select());
}

// ---------------------------------------------------------------- the page

function renderSpace() {
  $("title").textContent = space.title;
  document.title = `${space.title} · Replay · Tribune`;
  const meta = $("meta");
  meta.replaceChildren();
  const bits = [];
  if (space.host) bits.push([`Hosted by ${space.host.display_name}`]);
  if (space.started_at) bits.push([space.ended_at ? "Recorded " : "Started ", when(space.started_at)]);
  else if (space.scheduled_start) bits.push(["Scheduled for ", when(space.scheduled_start)]);
  if (space.started_at && space.ended_at) {
    bits.push([`lasted ${lasted((Date.parse(space.ended_at) - Date.parse(space.started_at)) / 1000)}`]);
  }
  bits.forEach((bit, i) => {
    const span = document.createElement("span");
    span.append(...bit);
    meta.append(...(i ? [" · ", span] : [span]));
  });
}

let watching = null;

/** A Space not over yet: check now and then, and open the replay when it ends. */
function watchForEnd() {
  if (watching) return;
  watching = setInterval(async () => {
    try {
      const state = await api("GET", `/api/spaces/${encodeURIComponent(spaceId)}/state`);
      showError("");
      if (state.state === "ended") {
        clearInterval(watching);
        watching = null;
        start().catch(unexpected);
      }
    } catch (err) {
      showError(`Could not check whether the Space has ended (${err.message}); trying again.`);
    }
  }, 5_000);
}

async function openReplay() {
  const url = space.urls.replay || `/replay/${encodeURIComponent(spaceId)}/index.m3u8`;
  let text;
  try {
    text = await fetchPlaylist(url);
  } catch (err) {
    if (err.status === 404) {
      notice("This Space ended without a recording, so there is nothing to replay.",
        paragraph(link("/", "Find other Spaces")));
    } else if (err.status === 401) {
      const next = encodeURIComponent(location.pathname + location.search);
      notice("The host kept this replay for people with an account.",
        paragraph(link(`/login?next=${next}`, "Log in to listen"), " or ",
          link(`/signup?next=${next}`, "sign up")));
    } else if (err.status === 409) {
      notice(err.message);
    } else {
      showError(`The replay could not be opened: ${err.message}`, " ", retryButton());
    }
    return;
  }
  whole = { url, text, duration: lengthOf(text) };
  $("download-all").href = space.urls.download || `/replay/${encodeURIComponent(spaceId)}/download.m4a`;
  $("download-all").download = `tribune-${spaceId}.m4a`;
  $("player").hidden = false;
  $("clips").hidden = false;

  // A shared link (?start=&end=) opens with its clip selected, ready at its start.
  const params = new URLSearchParams(location.search);
  let at = 0;
  if (params.has("start") || params.has("end")) {
    const s = Number(params.get("start"));
    const e = Number(params.get("end"));
    if (params.has("start") && Number.isFinite(s)) startField.value = clock(s, { tenths: true });
    if (params.has("end") && Number.isFinite(e)) endField.value = clock(e, { tenths: true });
    const clip = updateClip({ loud: true });
    if (clip) at = Math.min(clip.start, whole.duration);
  }
  load({ kind: "space", url, duration: whole.duration, offset: 0 }, at);
}

/** For what should never happen: say it on the page, not only in the console. */
function unexpected(err) {
  showError(`Something went wrong on this page (${err && err.message ? err.message : err}). Reload it to try again.`);
}

function retryButton() {
  const button = Object.assign(document.createElement("button"), {
    type: "button", className: "secondary", textContent: "Try again",
  });
  button.addEventListener("click", () => { showError(""); start().catch(unexpected); });
  return button;
}

async function start() {
  notice();
  try {
    space = await api("GET", `/api/spaces/${encodeURIComponent(spaceId)}`);
  } catch (err) {
    if (err.status === 404) {
      $("title").textContent = "No such Space";
      document.title = "No such Space · Tribune";
      notice("There is no Space at this address. Check the link you followed.",
        paragraph(link("/", "See what is live on Tribune")));
    } else {
      $("title").textContent = "Replay";
      showError(`This Space could not be loaded: ${err.message}`, " ", retryButton());
    }
    return;
  }
  renderSpace();
  const page = `/spaces/${encodeURIComponent(spaceId)}`;
  if (space.state === "live") {
    notice("This Space is live right now and not over yet: its replay opens when it ends.",
      paragraph(link(page, "Listen live", "button")));
    watchForEnd();
  } else if (space.state === "scheduled") {
    notice(
      paragraph("This Space has not started yet",
        ...(space.scheduled_start ? [": it is scheduled for ", when(space.scheduled_start)] : []),
        ". Its replay opens after it ends."),
      paragraph(link(page, "Go to the Space")),
    );
    watchForEnd();
  } else if (space.state === "cancelled") {
    notice("This Space was cancelled before it started, so there is nothing to replay.",
      paragraph(link("/", "Find other Spaces")));
  } else {
    await openReplay();
  }
}

wirePlayer();
wireClips();

header().catch((err) => showError(err.message)); // it shows API trouble itself
if (!spaceId) {
  $("title").textContent = "No such Space";
  notice("This address does not name a Space.", paragraph(link("/", "Go to Tribune's home page")));
} else {
  start().catch(unexpected);
}
