// Small DOM helpers shared by the Space page's modules.

export const $ = (id) => document.getElementById(id);

/**
 * Make an element: h("button", { className: "x", type: "button", onclick: fn,
 * "aria-label": "..." }, "text", child, ...). Keys with a dash, and role/for, become
 * attributes; the rest are properties. null/false children are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.includes("-") || key === "role" || key === "for") el.setAttribute(key, value === true ? "" : value);
    else el[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Set text only when it changed (no needless mutations, no re-announcements). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function show(el, visible) {
  if (el.hidden === !visible) return;
  el.hidden = !visible;
}

/** ms to wait: ``base`` with +/- ``spread`` (0..1) of random jitter. */
export function jitter(base, spread = 0.25) {
  return base * (1 - spread + 2 * spread * Math.random());
}

export const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
});

/** "about 40 s", "about 3 min" */
export function aboutSeconds(seconds) {
  const s = Math.max(1, Math.round(seconds));
  if (s < 90) return `about ${s} s`;
  const min = Math.round(s / 60);
  if (min < 90) return `about ${min} min`;
  return `about ${Math.round(min / 60)} h`;
}

/** The date and time in the viewer's own time zone, with the zone's name. */
export function localTime(iso) {
  const when = new Date(iso);
  return new Intl.DateTimeFormat(undefined, {
    weekday: "short", day: "numeric", month: "short", hour: "numeric", minute: "2-digit", timeZoneName: "short",
  }).format(when);
}

/** "in 5 minutes", "in 2 hours", "5 minutes ago" */
export function relativeTime(iso, now = Date.now()) {
  const diff = (new Date(iso).getTime() - now) / 1000;
  const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const abs = Math.abs(diff);
  if (abs < 60) return fmt.format(Math.round(diff), "second");
  if (abs < 3600) return fmt.format(Math.round(diff / 60), "minute");
  if (abs < 86400) return fmt.format(Math.round(diff / 3600), "hour");
  return fmt.format(Math.round(diff / 86400), "day");
}

export const ROLE_LABELS = { host: "Host", cohost: "Co-host", speaker: "Speaker", listener: "Listener", guest: "Guest" };
export const RANK = { host: 4, cohost: 3, speaker: 2, listener: 1, guest: 0 };
export const ON_STAGE = new Set(["host", "cohost", "speaker"]);

/** The CSRF token the API expects on cookie-authenticated writes (a readable cookie). */
export function csrfCookie() {
  const match = document.cookie.split("; ").find((c) => c.startsWith("tribune_csrf="));
  return match ? decodeURIComponent(match.slice("tribune_csrf=".length)) : null;
}
