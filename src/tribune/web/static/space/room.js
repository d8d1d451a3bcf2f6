// The room as this page knows it: the shared state document (polled about once a second,
// the same for everyone and cacheable), patched at once by live events for people on
// stage, plus what the API says about this viewer (signed-in people only).
import { api, ApiError, describe } from "/static/api.js";
import { jitter } from "/static/space/dom.js";

const POLL_MS = { live: 1000, scheduled: 2000 };
const MAX_BACKOFF_MS = 8000;

export class Room extends EventTarget {
  constructor(spaceId) {
    super();
    this.id = spaceId;
    this.doc = null; // the state document
    this.info = null; // GET /api/spaces/{id}: host, allow_guests, viewer
    this.missing = false;
    this.failures = 0;
    this.armed = false; // someone waits for the start: poll faster
    this._timer = null;
    this._inflight = null;
    this._etag = null;
    this._stopped = false;
  }

  get state() { return this.doc ? this.doc.state : null; }
  get over() { return this.state === "ended" || this.state === "cancelled"; }
  member(userId) { return (this.doc?.stage || []).find((m) => m.user_id === userId) || null; }

  start() { this.poll(); }

  stop() {
    this._stopped = true;
    clearTimeout(this._timer);
    this._inflight?.abort();
  }

  /** Poll now (after an event or an action of ours), dropping any answer in flight. */
  refresh() {
    if (this._stopped) return;
    this._inflight?.abort();
    clearTimeout(this._timer);
    this.poll();
  }

  async poll() {
    const ctrl = new AbortController();
    this._inflight = ctrl;
    try {
      // "no-cache": revalidate (ETag, usually a 304) instead of reusing a copy up to a
      // second old, so a change reaches this page within about one poll.
      const res = await fetch(`/api/spaces/${this.id}/state`, {
        cache: "no-cache", signal: ctrl.signal, headers: { Accept: "application/json" },
      });
      if (!res.ok) {
        const problem = await res.json().catch(() => null);
        throw new ApiError(res.status, problem, describe(res.status, problem));
      }
      const etag = res.headers.get("ETag");
      if (etag && etag === this._etag && this.doc) {
        await res.body?.cancel();
      } else {
        this._etag = etag;
        this.set(await res.json());
      }
      if (this.failures) this.dispatchEvent(new CustomEvent("recovered"));
      this.failures = 0;
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err instanceof ApiError && err.status === 404) {
        this.missing = true;
        this.dispatchEvent(new CustomEvent("missing", { detail: err }));
        return;
      }
      if (!(err instanceof ApiError)) err = new ApiError(0, null, describe(0, null));
      this.failures += 1;
      this.dispatchEvent(new CustomEvent("trouble", { detail: err }));
    } finally {
      if (this._inflight === ctrl) this._inflight = null;
    }
    if (this._stopped || this.over) return;
    this._timer = setTimeout(() => this.poll(), this.nextDelay());
  }

  nextDelay() {
    if (this.failures) return jitter(Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.failures - 1)));
    const base = this.armed ? 1000 : POLL_MS[this.state] || 2000;
    return jitter(base, 0.1);
  }

  /** A new document (from a poll, or patched from an event). */
  set(doc) {
    const previous = this.doc;
    this.doc = doc;
    this.dispatchEvent(new CustomEvent("change", { detail: { doc, previous } }));
  }

  /** Apply a live event (SSE) to the document at once; the next poll confirms it. */
  apply(type, data) {
    if (!this.doc) return;
    const doc = structuredClone(this.doc);
    const at = doc.stage.findIndex((m) => m.user_id === data.user_id);
    switch (type) {
      case "snapshot":
        this.set(data);
        return;
      case "stage.joined":
        if (at < 0) doc.stage.push({ ...data, level: 0 });
        break;
      case "stage.role":
      case "stage.muted":
        if (at >= 0) doc.stage[at] = { ...doc.stage[at], ...data };
        break;
      case "stage.left":
      case "member.removed":
        if (at >= 0) doc.stage.splice(at, 1);
        break;
      case "space.state":
        doc.state = data.new;
        break;
      case "space.updated":
        Object.assign(doc, data);
        break;
      case "request.created":
        doc.requests_pending += 1;
        break;
      case "request.withdrawn":
      case "request.denied":
      case "request.accepted":
        doc.requests_pending = Math.max(0, doc.requests_pending - 1);
        break;
      default:
        return;
    }
    this.set(doc);
    this.refresh();
  }

  /** Host, guest policy and (signed in) this viewer's standing: role, request, invitation. */
  async loadInfo() {
    this.info = await api("GET", `/api/spaces/${this.id}`);
    this.dispatchEvent(new CustomEvent("info", { detail: this.info }));
    return this.info;
  }
}
