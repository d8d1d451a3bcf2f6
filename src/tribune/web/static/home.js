// Home: who is live now (refreshed every 5 s, in place), what is coming up (with "remind
// me"), and the recordings of Spaces that have ended.
import { api } from "/static/api.js";
import { header } from "/static/header.js";
import { formatTime, messageFor } from "/static/account.js";

const LIVE_EVERY_MS = 5_000;
const OTHERS_EVERY_MS = 30_000;
const STAGE_NAMES_SHOWN = 4;

const $ = (id) => document.getElementById(id);
const numbers = new Intl.NumberFormat();
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const lists = new Intl.ListFormat(undefined, { style: "long", type: "conjunction" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

let me = null;

// -- small DOM helpers --------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** Write text only when it changed (no needless DOM work, nothing for the eye to catch). */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function listenerCount(n) {
  return n >= 100_000 ? compact.format(n) : numbers.format(n);
}

function spaceHref(space) {
  return `/spaces/${encodeURIComponent(space.id)}`;
}

function hostLine(space) {
  return space.host ? `Hosted by ${space.host.display_name}` : "The host has left the stage";
}

function stageLine(space) {
  const others = space.stage.filter((m) => m.role !== "host");
  if (!others.length) return "Only the host is on stage";
  const shown = others.slice(0, STAGE_NAMES_SHOWN).map(
    (m) => (m.role === "cohost" ? `${m.display_name} (co-host)` : m.display_name),
  );
  if (others.length > shown.length) shown.push(`${others.length - shown.length} more`);
  return `On stage with ${lists.format(shown)}`;
}

function fromNow(date) {
  const minutes = Math.round((date.getTime() - Date.now()) / 60_000);
  if (minutes <= 0) return "any moment now";
  if (minutes < 60) return relative.format(minutes, "minute");
  const hours = Math.round(minutes / 60);
  if (hours < 36) return relative.format(hours, "hour");
  return relative.format(Math.round(hours / 24), "day");
}

function duration(space) {
  if (!space.started_at || !space.ended_at) return "";
  const minutes = Math.round((new Date(space.ended_at) - new Date(space.started_at)) / 60_000);
  if (minutes < 1) return "under a minute";
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// -- errors: one alert for the page, one line per part that failed ------------------------

const problems = new Map();

function report(part, err) {
  if (err) problems.set(part, err);
  else problems.delete(part);
  setText($("home-error"), [...problems.values()].join(" "));
}

/** Keep ``list`` in the order of ``spaces``, reusing each Space's card (keyed by id). */
function reconcile(list, cards, spaces, make, emptyText) {
  list.setAttribute("aria-busy", "false");
  const wanted = spaces.map((space) => {
    let card = cards.get(space.id);
    if (card) card.update(space);
    else cards.set(space.id, (card = make(space)));
    return card.li;
  });
  const ids = new Set(spaces.map((s) => s.id));
  for (const id of [...cards.keys()]) if (!ids.has(id)) cards.delete(id);
  if (!wanted.length) {
    const empty = list.querySelector(":scope > .empty");
    if (!empty || empty.textContent !== emptyText || list.children.length !== 1) {
      list.replaceChildren(el("li", { className: "empty muted", textContent: emptyText }));
    }
    return;
  }
  const current = [...list.children];
  if (current.length === wanted.length && current.every((node, i) => node === wanted[i])) return;
  // Moving nodes drops keyboard focus: put it back where it was.
  const focused = list.contains(document.activeElement) ? document.activeElement : null;
  list.replaceChildren(...wanted);
  if (focused && focused.isConnected) focused.focus({ preventScroll: true });
}

function failedToLoad(list) {
  list.setAttribute("aria-busy", "false");
  if (!list.querySelector(":scope > .card")) {
    list.replaceChildren(el("li", { className: "empty muted", textContent: "Not available right now." }));
  }
}

// -- live now -------------------------------------------------------------------------------

const liveCards = new Map();

function liveCard(space) {
  const title = el("a", { href: spaceHref(space) });
  const host = el("p", { className: "space-host" });
  const stage = el("p", { className: "space-stage muted" });
  const description = el("p", { className: "space-description muted" });
  const count = el("span", { className: "count" });
  const listeners = el("p", { className: "listeners" }, count, " ", el("span", { className: "count-label", textContent: "listening" }));
  const li = el(
    "li", { className: "card space live-card" },
    el("div", { className: "space-info" }, el("h3", { className: "space-title" }, title), host, stage, description),
    listeners,
  );
  li.dataset.spaceId = space.id;
  function update(s) {
    setText(title, s.title);
    setText(host, hostLine(s));
    setText(stage, stageLine(s));
    setText(description, s.description || "");
    description.hidden = !s.description;
    setText(count, listenerCount(s.listeners.concurrent));
    count.dataset.value = String(s.listeners.concurrent);
  }
  update(space);
  return { li, update };
}

async function refreshLive() {
  const list = $("live");
  try {
    const { spaces } = await api("GET", "/api/spaces?state=live&limit=50");
    reconcile(list, liveCards, spaces, liveCard, "Nobody is live right now.");
    report("live", null);
  } catch (err) {
    failedToLoad(list);
    report("live", `Live Spaces could not be updated: ${messageFor(err)}`);
  }
}

// -- upcoming -------------------------------------------------------------------------------

const upcomingCards = new Map();
/** Space id -> the signed-in viewer's relation to it (``viewer`` of GET /api/spaces/{id}). */
const viewers = new Map();

function reminderCount(n) {
  if (!n) return "";
  return n === 1 ? "1 person will be reminded" : `${numbers.format(n)} people will be reminded`;
}

function upcomingCard(space) {
  const title = el("a", { href: spaceHref(space) });
  const host = el("p", { className: "space-host" });
  const time = el("time");
  const soon = el("span", { className: "muted" });
  const when = el("p", { className: "space-when" }, "Starts ", time, " · ", soon);
  const description = el("p", { className: "space-description muted" });
  const reminded = el("span", { className: "reminders muted" });
  const actions = el("div", { className: "card-actions" });
  const mine = el("span", { className: "badge mine", textContent: "Your Space", hidden: true });
  const error = el("p", { className: "error card-error" });
  error.setAttribute("role", "alert");
  const li = el(
    "li", { className: "card space upcoming-card" },
    el("h3", { className: "space-title" }, title, " ", mine), host, when, description, actions, error,
  );
  li.dataset.spaceId = space.id;

  let remind = null;
  let busy = false;
  if (me) {
    remind = el("button", { type: "button", className: "remind secondary", textContent: "Remind me" });
    remind.setAttribute("aria-pressed", "false");
    remind.setAttribute("aria-describedby", `when-${space.id}`);
    when.id = `when-${space.id}`;
    remind.addEventListener("click", async () => {
      if (busy) return;
      busy = true;
      remind.setAttribute("aria-busy", "true");
      const on = remind.getAttribute("aria-pressed") !== "true";
      setText(error, "");
      try {
        try {
          await api(on ? "PUT" : "DELETE", `/api/spaces/${encodeURIComponent(space.id)}/reminder`);
        } catch (err) {
          // Already off (say, from another tab) is what was asked for; anything else is not.
          if (on || err.status !== 404) throw err;
        }
        const fresh = await api("GET", `/api/spaces/${encodeURIComponent(space.id)}`);
        viewers.set(space.id, fresh.viewer);
        update(fresh);
        if (fresh.state !== "scheduled") refreshOthers();
      } catch (err) {
        setText(error, messageFor(err));
        if (err.status === 404 || err.status === 409) refreshOthers();
      } finally {
        busy = false;
        remind.removeAttribute("aria-busy");
      }
    });
    actions.append(remind, reminded);
  } else {
    const login = el("a", { href: "/login?next=%2F", textContent: "Log in to get a reminder" });
    actions.append(login, reminded);
  }

  function update(s) {
    setText(title, s.title);
    setText(host, hostLine(s));
    const start = new Date(s.scheduled_start);
    time.dateTime = s.scheduled_start;
    setText(time, formatTime(start));
    setText(soon, fromNow(start));
    setText(description, s.description || "");
    description.hidden = !s.description;
    setText(reminded, reminderCount(s.reminders));
    const viewer = s.viewer || viewers.get(s.id);
    if (remind && viewer) remind.setAttribute("aria-pressed", String(Boolean(viewer.reminded)));
    mine.hidden = !(viewer && viewer.role === "host");
  }
  update(space);
  return { li, update };
}

/** The viewer's relation to Spaces not seen before (the listing does not carry it). */
async function loadViewers(spaces) {
  const unknown = spaces.filter((s) => !viewers.has(s.id));
  const results = await Promise.allSettled(
    unknown.map((s) => api("GET", `/api/spaces/${encodeURIComponent(s.id)}`)),
  );
  let failure = null;
  results.forEach((result, i) => {
    if (result.status === "fulfilled") viewers.set(unknown[i].id, result.value.viewer);
    else if (result.reason.status !== 404) failure = result.reason;
  });
  if (failure) throw failure;
}

async function refreshUpcoming() {
  const list = $("upcoming");
  try {
    const { spaces } = await api("GET", "/api/spaces?state=upcoming&limit=50");
    if (me) await loadViewers(spaces);
    reconcile(list, upcomingCards, spaces, upcomingCard, "Nothing is scheduled yet.");
    report("upcoming", null);
  } catch (err) {
    failedToLoad(list);
    report("upcoming", `Upcoming Spaces could not be loaded: ${messageFor(err)}`);
  }
}

// -- recordings -----------------------------------------------------------------------------

const recordingCards = new Map();

function recordingCard(space) {
  const title = el("a", { href: spaceHref(space) });
  const host = el("p", { className: "space-host" });
  const time = el("time");
  const facts = el("span");
  const when = el("p", { className: "space-when muted" }, "Ended ", time, facts);
  const play = el("a", { className: "button secondary", href: `${spaceHref(space)}/replay`, textContent: "▶ Play the recording" });
  const li = el(
    "li", { className: "card space recording-card" },
    el("h3", { className: "space-title" }, title), host, when, el("div", { className: "card-actions" }, play),
  );
  li.dataset.spaceId = space.id;
  function update(s) {
    setText(title, s.title);
    setText(host, hostLine(s));
    time.dateTime = s.ended_at || "";
    setText(time, s.ended_at ? formatTime(s.ended_at) : "");
    const parts = [duration(s), s.listeners.total ? `${numbers.format(s.listeners.total)} listened` : ""];
    setText(facts, parts.filter(Boolean).map((p) => ` · ${p}`).join(""));
    play.setAttribute("aria-label", `Play the recording of ${s.title}`);
  }
  update(space);
  return { li, update };
}

async function refreshRecordings() {
  const list = $("recordings");
  try {
    const { spaces } = await api("GET", "/api/spaces?state=ended&limit=20");
    reconcile(list, recordingCards, spaces, recordingCard, "No recordings yet.");
    report("recordings", null);
  } catch (err) {
    failedToLoad(list);
    report("recordings", `Recordings could not be loaded: ${messageFor(err)}`);
  }
}

function refreshOthers() {
  return Promise.all([refreshUpcoming(), refreshRecordings()]);
}

// -- polling ----------------------------------------------------------------------------------

/** Run ``task`` now and every ``ms`` after it finishes; rest while the tab is hidden. */
function every(ms, task) {
  let timer = null;
  let running = false;
  let missed = false;
  async function run() {
    if (running) return;
    running = true;
    clearTimeout(timer);
    try { await task(); } finally { running = false; }
    if (document.hidden) missed = true;
    else timer = setTimeout(run, ms);
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && missed) {
      missed = false;
      run();
    }
  });
  return run();
}

function startButtons() {
  const start = $("start");
  if (me) {
    start.replaceChildren(
      el("a", { className: "button", href: "/new", textContent: "Start a Space" }),
      el("a", { className: "button secondary", href: "/new?when=later", textContent: "Schedule one" }),
    );
  } else {
    start.replaceChildren(
      el("a", { className: "button", href: "/signup", textContent: "Sign up to host a Space" }),
    );
  }
}

async function main() {
  me = await header();
  startButtons();
  every(LIVE_EVERY_MS, refreshLive);
  every(OTHERS_EVERY_MS, refreshOthers);
}

main().catch((err) => report("page", messageFor(err)));
