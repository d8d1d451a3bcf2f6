// Start a Space now, or schedule it (up to 14 days ahead, picked in the viewer's own zone).
import { api, whoami } from "/static/api.js";
import { header } from "/static/header.js";
import { formatTime, messageFor, timeZone } from "/static/account.js";

const $ = (id) => document.getElementById(id);
const AHEAD_DAYS = 14;

/** A Date as a datetime-local value ("YYYY-MM-DDTHH:MM", the viewer's wall clock). */
function localValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`
    + `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local value read in the viewer's zone, as a Date (or null). */
function fromLocalValue(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map((x) => Number(x || 0));
  const date = new Date(y, mo - 1, d, h, mi, s);
  return Number.isNaN(date.getTime()) ? null : date;
}

function setFieldError(id, message) {
  const input = $(id);
  $(`${id}-error`).textContent = message;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

function scheduling() {
  return document.querySelector('input[name="when"]:checked').value === "later";
}

/** Show the date picker only when scheduling, with its bounds and the viewer's zone. */
function updateWhen() {
  const later = scheduling();
  $("schedule").hidden = !later;
  $("submit").textContent = later ? "Schedule the Space" : "Start the Space";
  if (!later) return;
  const now = new Date();
  $("start").min = localValue(now);
  $("start").max = localValue(new Date(now.getTime() + AHEAD_DAYS * 86_400_000));
  const zone = timeZone();
  $("start-hint").textContent = `In your time zone${zone ? ` (${zone})` : ""}. Up to ${AHEAD_DAYS} days ahead.`;
  if (!$("start").value) {
    // A sensible first suggestion: the next full hour, at least 30 minutes away.
    const soon = new Date(now.getTime() + 90 * 60_000);
    soon.setMinutes(0, 0, 0);
    $("start").value = localValue(soon);
  }
}

/** What is wrong with the form before asking the server, in words (or nothing). */
function check() {
  let first = null;
  const title = $("title").value.trim();
  const titleError = title ? "" : "Give your Space a title.";
  setFieldError("title", titleError);
  if (titleError) first = first || $("title");
  if (scheduling()) {
    const value = $("start").value;
    let startError = "";
    if (!value) startError = "Choose the day and time it starts.";
    else if (!fromLocalValue(value)) startError = "Enter a day and a time, for example tomorrow at 20:00.";
    setFieldError("start", startError);
    if (startError) first = first || $("start");
  } else {
    setFieldError("start", "");
  }
  return first;
}

async function main() {
  const me = await header();
  if (!me) {
    // header() also says null when it could not ask; tell that apart from "logged out".
    const again = await whoami();
    if (!again) {
      $("loading").hidden = true;
      $("gate").hidden = false;
      return;
    }
  }
  $("loading").hidden = true;
  const form = $("space-form");
  form.hidden = false;
  for (const radio of form.querySelectorAll('input[name="when"]')) {
    radio.addEventListener("change", updateWhen);
  }
  updateWhen();
  if (new URLSearchParams(location.search).get("when") === "later") {
    form.querySelector('input[name="when"][value="later"]').checked = true;
    updateWhen();
  }
  for (const id of ["title", "start"]) {
    $(id).addEventListener("input", () => { if ($(id).getAttribute("aria-invalid")) check(); });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("form-error").textContent = "";
    const wrong = check();
    if (wrong) {
      wrong.focus();
      return;
    }
    const body = {
      title: $("title").value.trim(),
      description: $("description").value.trim(),
      allow_guests: $("allow_guests").checked,
    };
    if (scheduling()) body.scheduled_start = fromLocalValue($("start").value).toISOString();
    const submit = $("submit");
    const label = submit.textContent;
    submit.disabled = true;
    submit.textContent = body.scheduled_start ? "Scheduling…" : "Starting…";
    let space;
    try {
      space = await api("POST", "/api/spaces", { body });
    } catch (err) {
      submit.disabled = false;
      submit.textContent = label;
      $("form-error").textContent = messageFor(err);
      if (err.status === 401) $("form-error").append(" ", loginLink());
      return;
    }
    if (space.scheduled_start && space.state === "scheduled") {
      submit.textContent = `Scheduled for ${formatTime(space.scheduled_start)}`;
    }
    location.assign(`/spaces/${encodeURIComponent(space.id)}`);
  });
}

function loginLink() {
  return Object.assign(document.createElement("a"), { href: "/login?next=%2Fnew", textContent: "Log in again" });
}

main().catch((err) => {
  $("loading").hidden = true;
  $("page-error").textContent = messageFor(err);
});
