// "Speak": the part of the page about this person's own place in the Space. Asking to
// speak, answering an invitation, and once on stage the microphone: join, mute, leave.
// The body is rebuilt only when the situation changes (so focus stays put); within one
// situation only the live bits (mute label, level meter) are updated.
import { $, h, setText, show, ROLE_LABELS } from "/static/space/dom.js";

export class SpeakPanel {
  /** ``actions``: request, withdraw, acceptInvite, declineInvite, joinStage, toggleMute, leaveStage, micOff. */
  constructor(actions) {
    this.actions = actions;
    this.root = $("you");
    this.body = $("you-body");
    this.mode = null;
    this.parts = {};
    // Not a live region itself: the page announces these through its announcer.
    this.notice = h("p", { className: "notice you-notice", hidden: true });
    this.root.insertBefore(this.notice, this.body);
  }

  /** A message about what just happened to this person (moved off stage, and so on). */
  say(text) {
    setText(this.notice, text || "");
    this.notice.hidden = !text;
  }

  button(label, action, { cls, id } = {}) {
    return h("button", {
      type: "button", className: cls, id,
      onclick: async (event) => {
        const b = event.currentTarget;
        b.disabled = true;
        try { await this.actions[action](); } finally { if (b.isConnected) b.disabled = false; }
      },
    }, label);
  }

  /**
   * ``view``: {mode, role, member, micState, micMuted, loginHref, invitation, live}.
   * Modes: hidden, guest, removed, listener, pending, invited, stage, stage-live.
   */
  render(view) {
    show(this.root, view.mode !== "hidden");
    const key = [view.mode, view.role, view.invitation, view.live, view.micState].join("|");
    if (key !== this.mode) {
      const hadFocus = this.root.contains(document.activeElement);
      this.mode = key;
      this.build(view);
      if (hadFocus && !this.root.contains(document.activeElement)) {
        (this.body.querySelector("button, a") || $("you-h")).focus();
      }
    }
    this.refresh(view);
  }

  build(view) {
    const p = (text, cls) => h("p", { className: cls }, text);
    let parts = [];
    this.parts = {};
    switch (view.mode) {
      case "guest":
        parts = [p("Want to speak? Log in, then ask the host to bring you on stage."),
          h("a", { className: "button secondary", href: view.loginHref }, "Log in to request to speak")];
        break;
      case "removed":
        parts = [p("A host removed you from this Space, so you can't listen or speak here any more.")];
        break;
      case "listener":
        parts = view.live || view.scheduled
          ? [p("Have something to say? Ask the hosts to bring you on stage."), this.button("Request to speak", "request")]
          : [];
        break;
      case "pending":
        parts = [p("You asked to speak. A host will bring you on stage or answer soon."),
          this.button("Withdraw my request", "withdraw", { cls: "secondary" })];
        break;
      case "invited":
        parts = [p(view.invitation === "cohost" ? "The host invited you to co-host this Space." : "A host invited you to speak in this Space."),
          h("div", { className: "row" },
            this.button("Accept invitation", "acceptInvite"),
            this.button("Decline", "declineInvite", { cls: "secondary" }))];
        break;
      case "stage": {
        const role = ROLE_LABELS[view.role].toLowerCase();
        const leave = view.role === "host" ? null : this.button("Leave the stage", "leaveStage", { cls: "secondary" });
        if (!view.live) {
          parts = [p(`You're on stage as ${role === "host" ? "the host" : `a ${role}`}. The stage opens when the Space goes live.`), leave];
        } else if (view.micState === "starting") {
          parts = [p("Connecting your microphone…", "status")];
        } else {
          parts = [p(view.role === "host"
            ? "You're the host. Join the stage with your microphone to speak."
            : `You're on stage as a ${role}. Join with your microphone when you're ready.`),
          h("div", { className: "row" }, this.button("Join the stage", "joinStage", { id: "join-stage", cls: "icon-mic" }), leave)];
        }
        break;
      }
      case "stage-live": {
        const meter = h("span", { className: "meter", role: "meter", "aria-label": "Your microphone level", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" },
          h("span", { className: "meter-bar" }));
        const mute = this.button("Mute", "toggleMute", { id: "mute-self" });
        const leave = view.role === "host"
          ? this.button("Turn off microphone", "micOff", { cls: "secondary" })
          : this.button("Leave the stage", "leaveStage", { cls: "secondary" });
        const line = h("p", { className: "mic-status", id: "mic-status" });
        this.parts = { meter, mute, line };
        parts = [line, h("div", { className: "row mic-row" }, mute, meter, leave)];
        break;
      }
      default:
        parts = [];
    }
    this.body.replaceChildren(...parts.filter(Boolean));
  }

  refresh(view) {
    const { mute, meter, line } = this.parts;
    if (!mute) return;
    const selfMuted = view.micMuted;
    setText(mute, selfMuted ? "Unmute" : "Mute");
    mute.dataset.muted = String(selfMuted);
    mute.classList.toggle("secondary", !selfMuted);
    mute.classList.toggle("icon-mic", selfMuted);
    mute.classList.toggle("icon-muted", !selfMuted);
    let text = "You're live on stage: everyone hears you. You hear the others here, not yourself.";
    if (view.member?.host_muted) text = "A host muted you. They can unmute you; until then nobody hears you.";
    else if (selfMuted) text = "You're muted. Unmute to speak.";
    setText(line, text);
    line.dataset.state = view.member?.host_muted ? "host-muted" : selfMuted ? "muted" : "live";
    meter.hidden = false;
  }

  level(rms) {
    const { meter } = this.parts;
    if (!meter) return;
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const pct = Math.round(Math.max(0, Math.min(1, (db + 60) / 50)) * 100);
    meter.firstChild.style.width = `${pct}%`;
    meter.setAttribute("aria-valuenow", String(pct));
  }
}
