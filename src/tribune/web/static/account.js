// Sign up (/signup) and log in (/login), one module for both pages; and the few helpers
// the other pages share: errors in sentences, times in the viewer's own zone, a safe ?next=.
import { api, ApiError } from "/static/api.js";
import { header } from "/static/header.js";

// -- helpers shared with home.js and new.js ---------------------------------------------

const ISO_TIME = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})/g;
/** API field names as people would say them. */
const FIELDS = [
  [/\bscheduled_start (\S+) /g, (_, iso) => `the start time you chose (${formatTime(iso)}) `],
  [/\bscheduled_start\b/g, "the start time"],
  [/\bdisplay_name\b/g, "display name"],
  [/\ballow_guests\b/g, "the guests setting"],
];

/** ``value`` (a Date or an ISO string) as the viewer's clock and calendar show it. */
export function formatTime(value) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const options = {
    weekday: "short", month: "short", day: "numeric",
    hour: "numeric", minute: "2-digit", timeZoneName: "short",
  };
  if (date.getFullYear() !== new Date().getFullYear()) options.year = "numeric";
  return date.toLocaleString(undefined, options);
}

/** The viewer's time zone, e.g. "Europe/Paris" (or null if the browser will not say). */
export function timeZone() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || null; } catch { return null; }
}

/** A server message as a sentence: field names in words, times in the viewer's zone. */
export function sentence(text) {
  let s = String(text ?? "").trim();
  if (!s) return "Something went wrong.";
  for (const [pattern, words] of FIELDS) s = s.replace(pattern, words);
  s = s.replace(ISO_TIME, (iso) => formatTime(iso));
  s = s[0].toUpperCase() + s.slice(1);
  return /[.!?)]$/.test(s) ? s : `${s}.`;
}

/** Words for a failed call, for people (never a bare status code or stack). */
export function messageFor(err) {
  if (err instanceof ApiError) {
    const detail = err.problem && err.problem.detail;
    // api.js says "Please log in first" for any 401; a wrong password deserves its own words.
    let text = sentence(err.status === 401 && detail ? detail : err.message);
    const wait = err.problem && err.problem.retry_after;
    if (err.status === 429 && wait) {
      const seconds = Math.max(1, Math.ceil(wait));
      text += ` You can try again in ${seconds} second${seconds === 1 ? "" : "s"}.`;
    }
    return text;
  }
  return sentence(err && err.message ? err.message : String(err));
}

/** Where to go after logging in: ``?next=`` if it is a path on this site, else "/". */
export function nextPath(search = location.search) {
  const raw = new URLSearchParams(search).get("next");
  if (!raw || !raw.startsWith("/") || raw.startsWith("//")) return "/";
  if (/[\\\u0000-\u001f\u007f]/.test(raw)) return "/";
  let url;
  try { url = new URL(raw, location.origin); } catch { return "/"; }
  if (url.origin !== location.origin) return "/";
  if (url.pathname === "/login" || url.pathname === "/signup") return "/";
  return url.pathname + url.search + url.hash;
}

/** ``path`` with ``?next=`` set to ``next`` (left off when it is the home page). */
export function withNext(path, next) {
  return next && next !== "/" ? `${path}?next=${encodeURIComponent(next)}` : path;
}

// -- the sign-up and log-in pages --------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** What is wrong with a field's value, in words, or "" if nothing is. */
const CHECKS = {
  username(value, mode) {
    const name = value.trim();
    if (!name) return mode === "signup" ? "Choose a username." : "Enter your username.";
    if (mode === "signup" && !/^[A-Za-z0-9_]{3,30}$/.test(name)) {
      return "A username is 3 to 30 letters, digits or underscores (no spaces).";
    }
    return "";
  },
  password(value, mode) {
    if (!value) return mode === "signup" ? "Choose a password." : "Enter your password.";
    if (mode === "signup" && value.length < 8) {
      return `A password needs at least 8 characters; this one has ${value.length}.`;
    }
    if (value.length > 256) return "A password can have at most 256 characters.";
    return "";
  },
  display_name(value) {
    return value.trim().length > 64 ? "A display name can have at most 64 characters." : "";
  },
};

function setFieldError(input, message) {
  const out = $(`${input.id}-error`);
  if (out) out.textContent = message;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

function checkField(input, mode) {
  const check = CHECKS[input.name];
  const message = check ? check(input.value, mode) : "";
  setFieldError(input, message);
  return message;
}

async function accountPage(form) {
  const mode = form.dataset.mode; // "signup" or "login"
  const next = nextPath();
  const alert = $("form-error");
  const submit = form.querySelector('button[type="submit"]');
  const fields = [...form.querySelectorAll("input[name]")];

  // The other page keeps where we were going.
  const other = $("switch-account");
  if (other) other.href = withNext(other.pathname, next);

  const me = await header();
  for (const a of document.querySelectorAll('#site-header a[href^="/login"], #site-header a[href^="/signup"]')) {
    a.href = withNext(a.pathname, next);
  }
  if (me) {
    const notice = $("signed-in");
    const go = Object.assign(document.createElement("a"), { href: next, textContent: "Continue" });
    notice.replaceChildren(`You are logged in as ${me.user.display_name}. `, go);
    notice.hidden = false;
    form.hidden = true;
    if (other) other.closest("p").hidden = true;
    return;
  }

  const show = $("show-password");
  if (show) {
    show.addEventListener("change", () => {
      $("password").type = show.checked ? "text" : "password";
    });
  }
  for (const input of fields) {
    if (!CHECKS[input.name]) continue;
    // Say what is wrong when the form is sent, and stop saying it as soon as it is right.
    // (Not on leaving a field: the message would push the button away from under the
    // pointer that is pressing it.)
    input.addEventListener("input", () => {
      if (input.getAttribute("aria-invalid")) checkField(input, mode);
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    const wrong = fields.filter((input) => CHECKS[input.name] && checkField(input, mode));
    if (wrong.length) {
      wrong[0].focus();
      return;
    }
    const body = { username: $("username").value.trim(), password: $("password").value };
    if (mode === "signup") {
      const shown = $("display_name").value.trim();
      if (shown) body.display_name = shown;
    }
    const label = submit.textContent;
    submit.disabled = true;
    submit.textContent = mode === "signup" ? "Signing up…" : "Logging in…";
    try {
      await api("POST", mode === "signup" ? "/api/accounts" : "/api/session", { body });
    } catch (err) {
      submit.disabled = false;
      submit.textContent = label;
      alert.textContent = messageFor(err);
      if (mode === "signup" && err.status === 409) $("username").setAttribute("aria-invalid", "true");
      return;
    }
    location.assign(next);
  });
}

const accountForm = document.getElementById("account-form");
if (accountForm) {
  accountPage(accountForm).catch((err) => {
    const alert = $("form-error");
    if (alert) alert.textContent = messageFor(err);
  });
}
