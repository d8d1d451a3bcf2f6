// Live events for people on stage (Server-Sent Events). The state poll keeps running
// underneath, so a dropped stream costs speed, never correctness. Reconnection is ours,
// not EventSource's: after the server closes the stream (we left the stage, the Space
// ended) reconnecting would only be refused.
import { jitter } from "/static/space/dom.js";

export const EVENT_TYPES = [
  "snapshot", "space.state", "space.updated",
  "request.created", "request.withdrawn", "request.denied", "request.accepted",
  "invitation.created", "invitation.declined",
  "stage.joined", "stage.left", "stage.role", "stage.muted", "member.removed", "reaction",
];

export class LiveEvents {
  /** ``onEvent(type, data)``; ``wanted()`` says whether to (re)connect at all. */
  constructor(spaceId, { onEvent, wanted, onOpen }) {
    this.url = `/api/spaces/${spaceId}/events`;
    this.onEvent = onEvent;
    this.wanted = wanted;
    this.onOpen = onOpen;
    this.source = null;
    this.failures = 0;
    this.timer = null;
  }

  get connected() { return this.source !== null; }

  /** Connect if wanted and not connected; disconnect if not wanted. */
  sync() {
    if (this.wanted()) {
      if (!this.source && !this.timer) this.open();
    } else {
      this.close();
    }
  }

  open() {
    this.timer = null;
    const source = new EventSource(this.url);
    this.source = source;
    source.addEventListener("open", () => {
      this.failures = 0;
      this.onOpen?.();
    });
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (event) => {
        let data;
        try { data = JSON.parse(event.data); } catch { return; }
        this.onEvent(type, data);
      });
    }
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      source.close();
      this.source = null;
      this.failures += 1;
      if (!this.wanted()) return;
      // The poll tells us soon whether we still belong on the stream; try again gently.
      const wait = jitter(Math.min(15000, 1000 * 2 ** Math.min(this.failures, 4)));
      this.timer = setTimeout(() => { this.timer = null; this.sync(); }, wait);
    });
  }

  close() {
    clearTimeout(this.timer);
    this.timer = null;
    this.source?.close();
    this.source = null;
  }
}
