// Reactions: sent with one press, seen by everyone as they float up. The state document
// carries running totals, so what others sent is the difference from the last document;
// our own are shown at once and not twice.
import { h, setText } from "/static/space/dom.js";

export const REACTIONS = [
  ["heart", "❤️", "Heart"],
  ["laugh", "😂", "Laugh"],
  ["clap", "👏", "Clap"],
  ["fire", "🔥", "Fire"],
  ["hundred", "💯", "Hundred points"],
  ["wow", "😮", "Wow"],
  ["sad", "😢", "Sad"],
  ["raised_hand", "✋", "Raised hand"],
];
const EMOJI = Object.fromEntries(REACTIONS.map(([name, emoji]) => [name, emoji]));
const MAX_FLOATING = 40;
const MAX_PER_UPDATE = 6;
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

export class Reactions {
  /** ``send(name)`` posts a reaction and rejects with an ApiError. */
  constructor({ bar, stream, status, send, onError }) {
    this.bar = bar;
    this.stream = stream;
    this.status = status;
    this.send = send;
    this.onError = onError;
    this.counts = null;
    this.pending = {}; // ours, sent but not yet in a state document
    this.buttons = new Map();
    this.cooldown = null;
    this.enabled = false;
    for (const [name, emoji, label] of REACTIONS) {
      const count = h("span", { className: "reaction-count", "aria-hidden": "true" }, "0");
      const button = h("button", {
        type: "button", className: "reaction", dataset: { reaction: name },
        "aria-label": `React: ${label}`, title: label, disabled: true,
        onclick: () => this.press(name),
      }, h("span", { className: "reaction-emoji", "aria-hidden": "true" }, emoji), count);
      this.buttons.set(name, { button, count });
      bar.append(button);
    }
  }

  setEnabled(on) {
    this.enabled = on;
    for (const { button } of this.buttons.values()) {
      button.disabled = !on;
      // Resting after a 429 keeps the buttons focusable: aria-disabled, not disabled.
      if (this.cooldown) button.setAttribute("aria-disabled", "true");
      else button.removeAttribute("aria-disabled");
    }
  }

  async press(name) {
    if (!this.enabled || this.cooldown) return;
    this.pending[name] = (this.pending[name] || 0) + 1;
    this.float(name, true);
    try {
      await this.send(name);
    } catch (err) {
      this.pending[name] = Math.max(0, this.pending[name] - 1);
      if (err.status === 429) {
        const seconds = Math.max(1, Math.ceil(err.problem?.retry_after || 1));
        this.pause(seconds);
      } else {
        this.onError(err);
      }
    }
  }

  /** The server asked us to slow down: rest the buttons for a moment, and say so. */
  pause(seconds) {
    clearTimeout(this.cooldown);
    setText(this.status, "That's a lot of reactions at once. You can react again in a moment.");
    this.cooldown = setTimeout(() => {
      this.cooldown = null;
      setText(this.status, "");
      this.setEnabled(this.enabled);
    }, seconds * 1000);
    this.setEnabled(this.enabled);
  }

  /** Totals from a state document: float what others sent since the last one. */
  update(counts) {
    if (!counts) return;
    const first = this.counts === null;
    for (const [name, { count }] of this.buttons) {
      const now = counts[name] || 0;
      const before = first ? now : this.counts[name] || 0;
      let fresh = Math.max(0, now - before);
      const ours = Math.min(fresh, this.pending[name] || 0);
      this.pending[name] = (this.pending[name] || 0) - ours;
      fresh -= ours;
      for (let i = 0; i < Math.min(fresh, MAX_PER_UPDATE); i++) setTimeout(() => this.float(name), i * 120);
      setText(count, compact.format(now));
      this.buttons.get(name).button.dataset.count = String(now);
    }
    this.counts = { ...counts };
  }

  float(name, mine = false) {
    if (this.stream.childElementCount >= MAX_FLOATING) return;
    const bubble = h("span", { className: mine ? "floating mine" : "floating", dataset: { reaction: name } }, EMOJI[name]);
    bubble.style.setProperty("--x", `${Math.round(Math.random() * 80 + 10)}%`);
    bubble.style.setProperty("--drift", `${Math.round(Math.random() * 40 - 20)}px`);
    bubble.addEventListener("animationend", () => bubble.remove());
    setTimeout(() => bubble.remove(), 4000); // in case animations are off
    this.stream.append(bubble);
  }
}
