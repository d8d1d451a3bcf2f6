// The Space page, for everyone: listeners play it, speakers talk on its stage, hosts run
// it. One shared room-state document (polled about once a second) drives what everyone
// sees; people on stage also get live events (SSE) so their page changes at once.
//
// Modules: space/room.js (state), player.js (listening), stage.js (who is on stage),
// reactions.js, speaker.js (the "Speak" panel), mic.js (WHIP), host.js (running it),
// events.js (SSE), share.js, alerts.js, dom.js.
import { api } from "/static/api.js";
import { header } from "/static/header.js";
import { clearError, showError, announce } from "/static/space/alerts.js";
import { $, h, setText, show, localTime, relativeTime, csrfCookie, ON_STAGE, jitter } from "/static/space/dom.js";
import { LiveEvents } from "/static/space/events.js";
import { HostPanel, confirmAction } from "/static/space/host.js";
import { Mic } from "/static/space/mic.js";
import { Player } from "/static/space/player.js";
import { Reactions } from "/static/space/reactions.js";
import { Room } from "/static/space/room.js";
import { setUpShare } from "/static/space/share.js";
import { SpeakPanel } from "/static/space/speaker.js";
import { StageView } from "/static/space/stage.js";

const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const spaceId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const audio = $("audio");
const stageAudio = $("stage-audio");

const room = new Room(spaceId);
const player = new Player({ spaceId, audio });
const mic = new Mic({ spaceId, output: stageAudio });

const app = {
  me: null, // {user, csrf_token} when signed in
  viewer: null, // this person's standing, from GET /api/spaces/{id}
  removed: false,
  armed: false, // "Play when it starts" was pressed
  resumeAfterStage: false, // was listening before speaking: listen again after
  leftReason: null, // why we last left the stage, from the live events
  leaving: false, // we are leaving the stage ourselves
  role: null, // our role as last rendered
  micRetries: 0,
  ready: false, // we know who this is (the header has asked)
};

const meId = () => app.me?.user.id ?? null;

function myRole() {
  if (app.removed) return "removed";
  if (!app.me) return "guest";
  return room.member(meId())?.role ?? "listener";
}

// -- actions ----------------------------------------------------------------------------

const base = `/api/spaces/${spaceId}`;

async function run(action, { refresh = true } = {}) {
  try {
    const result = await action();
    if (refresh) room.refresh();
    return result;
  } catch (err) {
    showError(err);
    if (refresh) room.refresh();
    return undefined;
  }
}

function loadViewer() {
  // One at a time; a call while one is out asks again once it is back.
  if (app.viewerLoad) {
    app.viewerAgain = true;
    return app.viewerLoad;
  }
  app.viewerLoad = fetchViewer().finally(() => {
    app.viewerLoad = null;
    if (app.viewerAgain) {
      app.viewerAgain = false;
      loadViewer();
    }
  });
  return app.viewerLoad;
}

async function fetchViewer() {
  if (!app.me) return;
  const before = app.viewer;
  try {
    const info = await room.loadInfo();
    app.viewer = info.viewer;
    if (info.viewer?.removed) onRemoved();
    else if (before?.request_pending && !info.viewer?.request_pending && !ON_STAGE.has(info.viewer?.role) && !app.withdrew) {
      speak.say("A host didn't bring you on stage this time. You can ask again later.");
    }
    app.withdrew = false;
    render();
  } catch (err) {
    showError(err);
  }
}

const actions = {
  request: () => run(async () => {
    await api("POST", `${base}/requests`);
    app.viewer = { ...(app.viewer || {}), request_pending: true };
    speak.say("");
    announce("Request sent. A host will answer soon.");
    render();
  }),
  withdraw: () => run(async () => {
    await api("DELETE", `${base}/requests/me`);
    app.withdrew = true;
    app.viewer = { ...(app.viewer || {}), request_pending: false };
    render();
  }),
  acceptInvite: () => run(async () => {
    await api("POST", `${base}/invitations/me/accept`);
    app.viewer = { ...(app.viewer || {}), invitation: null, request_pending: false };
    await loadViewer();
  }),
  declineInvite: () => run(async () => {
    await api("POST", `${base}/invitations/me/decline`);
    app.viewer = { ...(app.viewer || {}), invitation: null };
    render();
  }),
  joinStage: () => joinStage(),
  toggleMute: () => toggleMute(),
  leaveStage: () => leaveStage(),
  micOff: () => micOff(),
};

async function joinStage() {
  clearError();
  const member = room.member(meId());
  const listening = player.playing;
  try {
    await mic.start({ csrf: app.me?.csrf_token || csrfCookie(), muted: Boolean(member?.self_muted) });
  } catch (err) {
    showError(err, "mic");
    render();
    return;
  }
  app.micRetries = 0;
  tabs?.postMessage("mic-on"); // our other tabs on this Space: this one speaks now
  app.resumeAfterStage = app.resumeAfterStage || listening;
  // On stage you hear the others directly, in real time, and never yourself.
  if (listening) player.stop("You're on stage: you hear the others directly.");
  speak.say("");
  announce("You're on stage with your microphone.");
  render();
}

async function toggleMute() {
  const muting = !mic.muted;
  if (muting) {
    mic.setMuted(true); // silence at once; then tell everyone
    render();
    await run(() => api("POST", `${base}/members/me/mute`));
  } else {
    const done = await run(async () => { await api("POST", `${base}/members/me/unmute`); return true; });
    if (done) mic.setMuted(false);
  }
  render();
}

async function leaveStage() {
  app.leaving = true;
  const micWasOn = mic.state !== "off";
  try {
    await mic.stop(); // end the WHIP session first, so the server does not cut it under us
    await api("POST", `${base}/members/me/leave`);
    app.leftReason = "left";
    room.refresh();
    // Someone who was hearing the stage keeps hearing the Space, now as a listener.
    if (micWasOn) app.resumeAfterStage = true;
    afterStage();
  } catch (err) {
    showError(err);
  } finally {
    app.leaving = false;
  }
  render();
}

async function micOff() {
  await mic.stop();
  afterStage();
  render();
}

/** Back to listening after speaking, if that is what the person was doing before. */
function afterStage() {
  if (app.resumeAfterStage && room.state === "live" && !app.removed) {
    app.resumeAfterStage = false;
    player.play().catch((err) => showError(err));
  }
}

async function moderate(action, member) {
  if (action === "remove") {
    const ok = await confirmAction({
      title: `Remove ${member.display_name}?`,
      body: "They leave the stage and this Space, and cannot come back to it.",
      confirm: "Remove",
    });
    if (!ok) return;
  }
  await run(() => api("POST", `${base}/members/${encodeURIComponent(member.user_id)}/${action}`));
}

function onRemoved() {
  if (app.removed) return;
  app.removed = true;
  if (mic.state !== "off") mic.stop({ server: false });
  player.close("You were removed from this Space.");
  speak.say("");
  announce("A host removed you from this Space.");
  render();
}

// -- live events (people on stage) --------------------------------------------------------

const events = new LiveEvents(spaceId, {
  wanted: () => Boolean(app.me) && !app.removed && ON_STAGE.has(myRole()) && !room.over,
  onEvent(type, data) {
    const mine = data && data.user_id === meId();
    if (mine && type === "stage.left") app.leftReason = data.reason;
    if (mine && type === "member.removed") {
      onRemoved();
      return;
    }
    room.apply(type, data);
    if (type.startsWith("request.")) hostPanel.loadRequests();
  },
});

// -- rendering ----------------------------------------------------------------------------

const stageView = new StageView($("stage"), { act: moderate });
const speak = new SpeakPanel(actions);
const hostPanel = new HostPanel({ spaceId, onError: (err) => showError(err), onChanged: () => room.refresh() });
const reactions = new Reactions({
  bar: $("reactions"),
  stream: $("reaction-stream"),
  status: $("reaction-status"),
  onError: (err) => showError(err),
  async send(name) {
    const body = { reaction: name };
    // A listener token when we have one (no session look-up); guests join for one.
    const joined = player.joined || (app.me ? null : await player.ensureJoined());
    try {
      return await api("POST", `${base}/reactions`, joined ? { body, token: joined.listener_token } : { body });
    } catch (err) {
      if (err.status !== 401 || !joined) throw err;
      player.joined = null; // the token expired (hours of listening): join again, once
      const fresh = app.me ? null : await player.ensureJoined();
      return api("POST", `${base}/reactions`, fresh ? { body, token: fresh.listener_token } : { body });
    }
  },
});

/** Role changes: say what happened, and put the microphone and player right. */
function onRoleChange(before, after) {
  if (before === null || before === after) return;
  const wasOn = ON_STAGE.has(before);
  const isOn = ON_STAGE.has(after);
  if (!wasOn && isOn) {
    app.viewer = { ...(app.viewer || {}), request_pending: false, invitation: null };
    speak.say(room.state === "live" ? "You're on stage! Join with your microphone when you're ready." : "You're on stage.");
    announce("You're on stage.");
  } else if (wasOn && !isOn && after !== "removed") {
    const micWasOn = mic.state !== "off";
    if (micWasOn) mic.stop({ server: false }); // the server closed it already
    const reason = app.leftReason;
    app.leftReason = null;
    if (micWasOn) app.resumeAfterStage = true;
    if (reason === "left" || app.leaving) {
      speak.say("You left the stage.");
      afterStage();
    } else if (reason === "removed") {
      onRemoved();
    } else {
      speak.say("A host moved you to the audience. You can keep listening, and ask to speak again.");
      announce("A host moved you to the audience.");
      if (reason === "demoted") afterStage();
      // Without the event (the push channel was down) only the viewer tells a demotion
      // from a removal: ask before listening again.
      else loadViewer().then(() => afterStage());
    }
  } else if (wasOn && isOn) {
    const words = { cohost: "You're now a co-host.", speaker: before === "cohost" ? "You're a speaker now (no longer a co-host)." : "You're a speaker now.", host: "You're the host." };
    speak.say(words[after] || "");
    announce(words[after] || "");
  }
}

function render() {
  const doc = room.doc;
  if (!doc) return;
  const role = myRole();
  if (app.ready && app.role !== role) {
    const before = app.role;
    app.role = role;
    onRoleChange(before, role);
    if (myRole() !== role) return; // it changed again meanwhile, and that render drew it
  }
  const live = doc.state === "live";
  const scheduled = doc.state === "scheduled";
  const over = doc.state === "ended" || doc.state === "cancelled";

  // Head
  setText($("title"), doc.title);
  document.title = `${doc.title} · Tribune`;
  const badge = $("badge");
  setText(badge, { live: "Live", scheduled: "Scheduled", ended: "Ended", cancelled: "Cancelled" }[doc.state] || doc.state);
  badge.className = `badge${live ? " live" : ""}`;
  let when = "";
  if (scheduled && doc.scheduled_start) when = `Starting at ${localTime(doc.scheduled_start)} (${relativeTime(doc.scheduled_start)})`;
  else if (live && doc.started_at) when = `Started ${relativeTime(doc.started_at)}`;
  else if (over && doc.ended_at) when = `${doc.state === "ended" ? "Ended" : "Cancelled"} ${localTime(doc.ended_at)}`;
  setText($("when"), when);
  const hostMember = doc.stage.find((m) => m.role === "host") || room.info?.host;
  setText($("hosted-by"), hostMember ? `Hosted by ${hostMember.display_name}` : "");
  setText($("description"), doc.description || "");
  show($("description"), Boolean(doc.description));

  renderListen(doc, role);

  // Speak
  let mode = "hidden";
  const v = app.viewer || {};
  if (!over) {
    if (role === "removed") mode = "removed";
    else if (role === "guest") mode = live || scheduled ? "guest" : "hidden";
    else if (ON_STAGE.has(role)) mode = mic.state === "on" && live ? "stage-live" : "stage";
    else if (v.invitation) mode = "invited";
    else if (v.request_pending) mode = "pending";
    else mode = "listener";
  }
  speak.render({
    mode, role, live, scheduled, member: room.member(meId()), micState: mic.state, micMuted: mic.muted,
    invitation: v.invitation, loginHref: `/login?next=${encodeURIComponent(location.pathname)}`,
  });

  // Stage, reactions, host tools
  setText($("stage-h"), over ? "Speakers" : "On stage");
  stageView.render(doc.stage, { meId: meId(), myRole: role, live: live || scheduled });
  reactions.update(doc.reactions);
  reactions.setEnabled(live && role !== "removed");
  show($("reactions-section"), live);
  arrange(role);
  hostPanel.render({ myRole: role, doc });
  events.sync();
}

/**
 * Put first what this person is here to do: listeners listen; people on stage speak;
 * hosts speak and run the queue. Moved in the DOM (not with CSS order), so the keyboard
 * goes through the page in the order it is seen.
 */
function arrange(role) {
  const order = ON_STAGE.has(role)
    ? ["you", "host-panel", "stage-section", "listen", "reactions-section"]
    : ["listen", "you", "stage-section", "reactions-section", "host-panel"];
  const key = order.join();
  if (app.arranged === key) return;
  app.arranged = key;
  const anchor = $("alert");
  let after = anchor;
  for (const id of order) {
    const section = $(id);
    if (after.nextElementSibling !== section) after.after(section);
    after = section;
  }
}

function renderListen(doc, role) {
  const live = doc.state === "live";
  const scheduled = doc.state === "scheduled";
  const over = doc.state === "ended" || doc.state === "cancelled";
  const play = $("play");
  const status = $("status");

  // Live: who is listening now. Over: how many listened in all.
  const count = (over ? doc.listeners?.total : doc.listeners?.concurrent) ?? 0;
  setText($("count"), count < 100000 ? count.toLocaleString() : compact.format(count));
  setText($("count-label"), over ? "listened" : "listening");
  $("count").parentElement.classList.toggle("unknown", scheduled); // nobody listens yet
  $("count").title = `${count.toLocaleString()} ${over ? "listened" : "listening now"}`;
  renderReminder(doc);

  show(play, !over);
  show($("ended"), doc.state === "ended");
  if (over) {
    setText(status, doc.state === "ended" ? "This Space has ended." : "This Space was cancelled.");
    status.dataset.state = doc.state;
    $("replay-link").href = `/spaces/${encodeURIComponent(spaceId)}/replay`;
    return;
  }
  let label = "▶ Play";
  let pressed = null;
  let disabled = false;
  let text = player.status;
  if (role === "removed") {
    disabled = true;
    text = "You were removed from this Space.";
  } else if (mic.state !== "off") {
    disabled = true;
    text = "You're on stage, hearing the others directly.";
  } else if (scheduled) {
    label = "Play when it starts"; // a toggle: aria-pressed (and a tick) say it is on
    pressed = String(app.armed);
    text = app.armed
      ? "We'll start playing as soon as the host goes live. Keep this page open."
      : `This Space starts at ${localTime(doc.scheduled_start)}.`;
  } else if (live) {
    if (player.state === "queued") label = "Leave the line";
    else if (player.state === "joining") label = "Cancel";
    else if (player.playing) label = "❚❚ Pause";
    if (!text) text = "Live now. Press Play to listen.";
  }
  setText(play, label);
  play.disabled = disabled;
  show(play, mic.state === "off"); // a speaker hears the stage itself, not the broadcast
  if (pressed === null) play.removeAttribute("aria-pressed");
  else play.setAttribute("aria-pressed", pressed);
  play.dataset.state = scheduled ? (app.armed ? "armed" : "scheduled") : player.state;
  setText(status, text);
  status.dataset.state = player.state;
}

function renderReminder(doc) {
  const row = $("remind-row");
  const wanted = doc.state === "scheduled" && Boolean(app.me) && !app.removed;
  show(row, wanted);
  if (!wanted) return;
  const on = Boolean(app.viewer?.reminded);
  const button = $("remind");
  button.setAttribute("aria-pressed", String(on));
  setText(button, on ? "Reminder set" : "Remind me");
}

async function toggleReminder() {
  const on = !app.viewer?.reminded;
  const button = $("remind");
  button.disabled = true;
  try {
    await api(on ? "PUT" : "DELETE", `${base}/reminder`);
    app.viewer = { ...(app.viewer || {}), reminded: on };
    setText($("remind-status"), on ? "We'll notify you when it starts." : "Reminder removed.");
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
  render();
}

function onPlayPress() {
  clearError("play");
  const doc = room.doc;
  if (!doc) return;
  if (doc.state === "scheduled") {
    app.armed = !app.armed;
    room.armed = app.armed;
    if (app.armed) player.unlock();
    render();
    return;
  }
  if (player.state === "queued" || player.state === "joining" || player.playing) {
    player.stop(player.state === "queued" ? "You left the line." : "Paused.");
  } else {
    player.play().catch((err) => showError(err, "play"));
  }
  render();
}

function onStateDoc({ doc, previous }) {
  clearError("connection");
  if (doc.state === "live" && app.armed) {
    app.armed = false;
    room.armed = false;
    announce("The Space is live. Playing.");
    player.play().catch((err) => showError(err, "play"));
  }
  if ((doc.state === "ended" || doc.state === "cancelled") && previous?.state !== doc.state) {
    if (mic.state !== "off") mic.stop({ server: false });
    player.close(doc.state === "ended" ? "This Space has ended." : "This Space was cancelled.");
    events.close(); // (the status line, a live region, says that it ended)
  }
  // Signed-in listeners: the document cannot say that our request was answered with a no.
  if (app.viewer?.request_pending && previous && doc.requests_pending < previous.requests_pending) loadViewer();
  // Invitations: once the document lists who is invited, we know at once; until then the
  // viewer is asked now and then (scheduleViewerPoll).
  if (app.me && Array.isArray(doc.invited)) {
    const invited = doc.invited.includes(meId());
    if (invited !== Boolean(app.viewer?.invitation)) loadViewer();
  }
  mediaSession(doc);
  render();
}

function mediaSession(doc) {
  if (!("mediaSession" in navigator) || !window.MediaMetadata) return;
  const host = doc.stage.find((m) => m.role === "host");
  const artist = host ? `${host.display_name} · Tribune` : "Tribune";
  const meta = navigator.mediaSession.metadata;
  if (meta && meta.title === doc.title && meta.artist === artist) return;
  navigator.mediaSession.metadata = new MediaMetadata({ title: doc.title, artist, artwork: [{ src: "/static/favicon.svg", type: "image/svg+xml", sizes: "any" }] });
}

/** Signed-in listeners learn of invitations by asking now and then (the shared document
 * does not carry them); the bigger the room, the less often, so a crowd stays cheap. */
function scheduleViewerPoll() {
  const listeners = room.doc?.listeners?.concurrent ?? 0;
  const every = Math.min(60, Math.max(5, listeners / 20)) * 1000;
  setTimeout(async () => {
    if (app.me && !app.removed && !room.over && !room.missing && !ON_STAGE.has(myRole())) await loadViewer();
    if (!room.over && !room.missing) scheduleViewerPoll();
  }, jitter(every));
}

function onMissing() {
  setText($("title"), "There is no Space here");
  setText($("badge"), "Not found");
  show($("listen"), false);
  show($("you"), false);
  show($("host-panel"), false);
  document.querySelector(".stage-section").hidden = true;
  document.querySelector(".reactions-section").hidden = true;
  $("hosted-by").replaceChildren("The link may be mistyped, or the Space was deleted. ", h("a", { href: "/" }, "See what's live now"));
}

// -- wiring -------------------------------------------------------------------------------

// The same person in two tabs: the server keeps the newer WHIP session and ends the older;
// the older tab steps back instead of reconnecting (and kicking the newer one out).
const tabs = "BroadcastChannel" in window ? new BroadcastChannel(`tribune-space-${spaceId}`) : null;
tabs?.addEventListener("message", (event) => {
  if (event.data !== "mic-on" || mic.state === "off") return;
  mic.stop({ server: false });
  speak.say("You're speaking from another tab or window now.");
  render();
});

player.addEventListener("change", () => render());
player.addEventListener("gone", () => room.refresh());
player.addEventListener("refused", (event) => {
  if (app.me) loadViewer();
  else showError(event.detail, "play");
});
mic.addEventListener("change", () => render());
mic.addEventListener("level", (event) => speak.level(event.detail));
mic.addEventListener("dropped", () => {
  // Demoted or removed (the server closes our session), or the network: find out first.
  setTimeout(async () => {
    if (mic.state !== "on" || mic.session?.pc.connectionState === "connected") return;
    await loadViewer();
    if (!ON_STAGE.has(app.viewer?.role) || mic.state !== "on") return;
    await mic.stop({ server: false });
    if (app.micRetries >= 3) {
      showError("The connection to the stage dropped. Press “Join the stage” to try again.", "mic");
      render();
      return;
    }
    app.micRetries += 1;
    speak.say("The connection to the stage dropped. Reconnecting…");
    await joinStage();
  }, 1500);
});
room.addEventListener("change", (event) => onStateDoc(event.detail));
room.addEventListener("missing", onMissing);
room.addEventListener("trouble", (event) => showError(event.detail, "connection"));
room.addEventListener("recovered", () => clearError("connection"));
$("play").addEventListener("click", onPlayPress);
$("remind").addEventListener("click", toggleReminder);
if ("mediaSession" in navigator) {
  // Headset buttons and the lock screen: play and pause like the page's own button.
  const press = (want) => () => { if (player.playing !== want && room.state === "live") onPlayPress(); };
  try {
    navigator.mediaSession.setActionHandler("play", press(true));
    navigator.mediaSession.setActionHandler("pause", press(false));
  } catch {
    // an action this browser does not know: the page's button still works
  }
}
setUpShare({
  button: $("share"),
  status: $("share-status"),
  url: () => `${location.origin}/spaces/${encodeURIComponent(spaceId)}`,
  title: () => room.doc?.title || "A Space on Tribune",
});

window.tribune = {
  audio,
  stageAudio,
  room,
  player,
  get hls() { return player.hls; },
  get joined() { return player.joined; },
  get mic() { return mic; },
  get me() { return app.me; },
  get role() { return myRole(); },
  get ready() { return app.ready && room.doc !== null; },
};

async function boot() {
  room.start();
  try {
    app.me = await header();
  } catch (err) {
    showError(err);
  }
  if (app.me) {
    await loadViewer();
    scheduleViewerPoll();
  } else {
    room.loadInfo().catch(() => {}); // the host's name before the first document: nice, not needed
  }
  app.ready = true;
  app.role = room.doc ? myRole() : null;
  render();
}

boot();
