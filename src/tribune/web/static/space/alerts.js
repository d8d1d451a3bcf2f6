// Errors in words, in a role="alert" region; and a polite status line for everything else.
import { $, h } from "/static/space/dom.js";

let shownKey = null;

/**
 * Show an error a person can act on. ``err`` is an ApiError (its message is already
 * written for people), an Error, or a string. ``key`` lets a later clear(key) remove only
 * this message (e.g. a connection problem that has gone away).
 */
export function showError(err, key = "general") {
  if (!err || err.name === "AbortError") return;
  const text = typeof err === "string" ? err : err.message || String(err);
  const region = $("alert");
  const close = h("button", {
    type: "button", className: "link-button", "aria-label": "Dismiss this message",
    onclick: () => clearError(),
  }, "Dismiss");
  // The region stays in the page (empty when there is nothing to say), so that screen
  // readers announce what is put into it.
  region.replaceChildren(h("p", {}, text), close);
  shownKey = key;
}

/** Clear the message (only if it is ``key``'s, when given). */
export function clearError(key) {
  if (key !== undefined && key !== shownKey) return;
  const region = $("alert");
  region.replaceChildren();
  shownKey = null;
}

/** Wrap an async action: errors go to the alert region, never to the console. */
export function guarded(action, key) {
  return async (...args) => {
    try {
      return await action(...args);
    } catch (err) {
      showError(err, key);
      return undefined;
    }
  };
}

/** Something people should hear about without it being an error (aria-live polite). */
export function announce(text) {
  const region = $("announcer");
  region.textContent = "";
  // A fresh text node after a tick makes screen readers read repeated messages too.
  setTimeout(() => { region.textContent = text; }, 50);
}
