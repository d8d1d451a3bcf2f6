// Running a Space (host and co-hosts): go live, end, the queue of people asking to speak,
// and invitations by username. Moderation of people on stage lives on their stage cards.
import { api } from "/static/api.js";
import { $, h, relativeTime, setText, show } from "/static/space/dom.js";

/** Ask before something that cannot be undone. Resolves true when confirmed. */
export function confirmAction({ title, body, confirm }) {
  const dialog = $("confirm");
  setText($("confirm-title"), title);
  setText($("confirm-body"), body);
  setText($("confirm-yes"), confirm);
  dialog.returnValue = "";
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (opener?.isConnected) opener.focus();
      resolve(dialog.returnValue === "confirm");
    }, { once: true });
    dialog.showModal();
  });
}

export class HostPanel {
  constructor({ spaceId, onError, onChanged }) {
    this.spaceId = spaceId;
    this.onError = onError;
    this.onChanged = onChanged; // after an action: refresh the room at once
    this.root = $("host-panel");
    this.requests = [];
    this.loadedFor = -1;
    this.loading = null;
    this.role = null;
    $("go-live").addEventListener("click", () => this.lifecycle("start"));
    $("cancel-space").addEventListener("click", () => this.lifecycle("cancel"));
    $("end-space").addEventListener("click", () => this.lifecycle("end"));
    $("invite-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.invite();
    });
  }

  get base() { return `/api/spaces/${this.spaceId}`; }

  async lifecycle(action) {
    const asks = {
      end: ["End this Space for everyone?", "Everyone stops hearing it and the stage closes. The recording stays as a replay.", "End the Space"],
      cancel: ["Cancel this Space?", "It will not take place, and people waiting for it are told so.", "Cancel the Space"],
    };
    if (asks[action]) {
      const [title, body, confirm] = asks[action];
      if (!(await confirmAction({ title, body, confirm }))) return;
    }
    const button = $({ start: "go-live", end: "end-space", cancel: "cancel-space" }[action]);
    button.disabled = true;
    try {
      await api("POST", `${this.base}/${action}`);
      this.onChanged();
    } catch (err) {
      this.onError(err);
    } finally {
      button.disabled = false;
    }
  }

  /** Show what this person may do: the host runs the lifecycle; host and co-hosts the stage. */
  render({ myRole, doc }) {
    const moderator = myRole === "host" || myRole === "cohost";
    const open = doc && (doc.state === "live" || doc.state === "scheduled");
    show(this.root, Boolean(moderator && open));
    if (!moderator || !open) {
      this.role = null;
      return;
    }
    const host = myRole === "host";
    show($("go-live"), host && doc.state === "scheduled");
    show($("cancel-space"), host && doc.state === "scheduled");
    show($("end-space"), host && doc.state === "live");
    const cohostOption = $("invite-role").querySelector('option[value="cohost"]');
    cohostOption.hidden = !host;
    cohostOption.disabled = !host;
    if (!host) $("invite-role").value = "speaker";
    if (this.role !== myRole || doc.requests_pending !== this.requests.length) {
      this.role = myRole;
      this.loadRequests();
    }
  }

  /** The queue, from the API (the state document only counts it). */
  async loadRequests() {
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = (async () => {
      try {
        this.requests = await api("GET", `${this.base}/requests`);
        this.renderRequests();
      } catch (err) {
        if (err.status !== 403) this.onError(err); // 403: no longer a host; the page catches up
      }
    })();
    await this.loading;
    this.loading = null;
    if (this.again) {
      this.again = false;
      await this.loadRequests();
    }
  }

  renderRequests() {
    const list = $("requests");
    const count = this.requests.length;
    setText($("requests-count"), String(count));
    const hadFocus = list.contains(document.activeElement);
    if (!count) {
      list.replaceChildren(h("li", { className: "muted empty" }, "Nobody is asking to speak right now."));
    } else {
      list.replaceChildren(...this.requests.map((r) => {
        const answer = (accept) => async (event) => {
          event.currentTarget.disabled = true;
          try {
            await api("POST", `${this.base}/requests/${encodeURIComponent(r.user_id)}/${accept ? "accept" : "deny"}`);
            this.requests = this.requests.filter((x) => x.user_id !== r.user_id);
            this.renderRequests();
            this.onChanged();
          } catch (err) {
            event.currentTarget.disabled = false;
            this.onError(err);
            this.loadRequests();
          }
        };
        return h("li", { className: "request", dataset: { userId: r.user_id } },
          h("span", { className: "request-who" },
            h("strong", {}, r.display_name),
            h("span", { className: "muted" }, ` asked ${relativeTime(r.requested_at)}`)),
          h("span", { className: "request-actions" },
            h("button", { type: "button", "aria-label": `Accept: ${r.display_name}`, onclick: answer(true) }, "Accept"),
            h("button", { type: "button", className: "secondary", "aria-label": `Deny: ${r.display_name}`, onclick: answer(false) }, "Deny")));
      }));
    }
    if (hadFocus && !list.contains(document.activeElement)) {
      (list.querySelector("button") || $("requests-h")).focus();
    }
  }

  async invite() {
    const input = $("invite-username");
    const username = input.value.trim().replace(/^@/, "");
    const status = $("invite-status");
    if (!username) {
      setText(status, "Type the username of the person to invite.");
      input.focus();
      return;
    }
    const role = $("invite-role").value;
    const submit = $("invite-form").querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      await api("POST", `${this.base}/invitations`, { body: { username, role } });
      setText(status, `Invited @${username} ${role === "cohost" ? "to co-host" : "to speak"}. They'll see it on this Space's page.`);
      input.value = "";
    } catch (err) {
      setText(status, "");
      this.onError(err);
    } finally {
      submit.disabled = false;
    }
  }
}
