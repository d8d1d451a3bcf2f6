// The stage: who is on it, in what role, muted or not, and who is talking right now (the
// state document's levels). Hosts and co-hosts get each person's controls here too.
// Cards are keyed by user id and updated in place, so an open menu or a focused button
// survives the once-a-second refresh.
import { h, setText, ROLE_LABELS, RANK } from "/static/space/dom.js";

const ORDER = { host: 0, cohost: 1, speaker: 2 };
const SPEAKING = 0.01; // RMS above this (about -40 dBFS) counts as talking

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

function hue(id) {
  let n = 0;
  for (const c of id) n = (n * 31 + c.charCodeAt(0)) % 360;
  return n;
}

/** 0..1 for the speaking ring, from a linear RMS level (-50 dBFS .. -10 dBFS). */
function loudness(level) {
  if (!level) return 0;
  const db = 20 * Math.log10(level);
  return Math.max(0, Math.min(1, (db + 50) / 40));
}

/** What ``actor`` may do to ``member`` (the permission table, as the page needs it). */
export function moderation(actorRole, member) {
  const outranks = RANK[actorRole] > RANK[member.role];
  const moderator = actorRole === "host" || actorRole === "cohost";
  return {
    any: moderator && outranks,
    mute: moderator && outranks,
    demote: moderator && outranks,
    remove: moderator && outranks,
    cohost: actorRole === "host" && member.role === "speaker",
  };
}

export class StageView {
  /**
   * ``act(action, member)`` performs a moderation action ("mute", "unmute", "cohost",
   * "demote", "remove") and returns a promise.
   */
  constructor(list, { act }) {
    this.list = list;
    this.act = act;
    this.cards = new Map();
  }

  render(stage, { meId, myRole, live }) {
    const members = [...stage].sort((a, b) => ORDER[a.role] - ORDER[b.role]);
    const seen = new Set();
    members.forEach((member, index) => {
      seen.add(member.user_id);
      let card = this.cards.get(member.user_id);
      if (!card) {
        card = this.create(member);
        this.cards.set(member.user_id, card);
      }
      this.update(card, member, { me: member.user_id === meId, myRole, live });
      if (this.list.children[index] !== card.li) this.list.insertBefore(card.li, this.list.children[index] || null);
    });
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) {
        card.li.remove();
        this.cards.delete(id);
      }
    }
    if (!members.length) {
      if (!this.empty) this.empty = h("li", { className: "stage-empty muted" }, "Nobody is on stage yet.");
      if (!this.empty.isConnected) this.list.append(this.empty);
    } else if (this.empty?.isConnected) {
      this.empty.remove();
    }
  }

  create(member) {
    const avatar = h("span", { className: "avatar", "aria-hidden": "true" }, initials(member.display_name));
    avatar.style.setProperty("--hue", hue(member.user_id));
    const name = h("span", { className: "member-name" });
    const role = h("span", { className: "member-role" });
    const muted = h("span", { className: "member-muted", hidden: true },
      h("span", { "aria-hidden": "true" }, "🔇 "), "muted");
    const talking = h("span", { className: "sr-only member-talking" });
    const li = h("li", { className: "member", dataset: { userId: member.user_id } },
      h("span", { className: "avatar-wrap" }, avatar),
      h("span", { className: "member-text" }, name, role, muted, talking));
    return { li, avatar, name, role, muted, talking, manage: null, key: "" };
  }

  update(card, member, { me, myRole, live }) {
    const speaking = !member.muted && (member.level || 0) >= SPEAKING;
    card.li.dataset.role = member.role;
    card.li.dataset.muted = String(member.muted);
    card.li.dataset.speaking = String(speaking);
    card.li.classList.toggle("speaking", speaking);
    card.li.classList.toggle("is-me", me);
    card.avatar.style.setProperty("--level", speaking ? loudness(member.level).toFixed(2) : "0");
    setText(card.name, member.display_name);
    card.name.title = member.display_name;
    const role = ROLE_LABELS[member.role] || member.role;
    setText(card.role, me ? `${role} · you` : role);
    card.muted.hidden = !member.muted;
    const mutedWord = member.host_muted ? "muted by a host" : "muted";
    setText(card.muted.lastChild, mutedWord);
    setText(card.talking, speaking ? ", speaking" : "");

    const can = live && !me ? moderation(myRole, member) : { any: false };
    const key = can.any ? `${myRole}|${member.role}|${member.host_muted}` : "";
    if (key === card.key) return;
    card.key = key;
    const wasOpen = card.manage?.open;
    const active = document.activeElement;
    const hadFocus = card.manage?.contains(active) ? active.dataset.action || "summary" : null;
    card.manage?.remove();
    card.manage = null;
    if (!can.any) return;
    const who = member.display_name;
    const button = (label, action, cls = "secondary") => h("button", {
      type: "button", className: cls, "aria-label": `${label}: ${who}`, dataset: { action },
      onclick: async (event) => {
        const b = event.currentTarget;
        b.disabled = true;
        try { await this.act(action, member); } finally { b.disabled = false; }
      },
    }, label);
    const buttons = [];
    if (can.mute) buttons.push(member.host_muted ? button("Unmute", "unmute") : button("Mute", "mute"));
    if (can.cohost) buttons.push(button("Make co-host", "cohost"));
    if (can.demote) buttons.push(button(member.role === "cohost" ? "Make speaker" : "Move to audience", "demote"));
    if (can.remove) buttons.push(button("Remove", "remove", "danger"));
    card.manage = h("details", { className: "manage" },
      h("summary", { "aria-label": `Manage ${who}` }, "Manage"),
      h("div", { className: "manage-actions", role: "group", "aria-label": `Manage ${who}` }, buttons));
    card.manage.open = Boolean(wasOpen);
    card.li.append(card.manage);
    if (hadFocus) {
      // Keep the keyboard where it was: Mute becomes Unmute, and so on.
      const twin = { mute: "unmute", unmute: "mute" }[hadFocus] || hadFocus;
      const target = card.manage.querySelector(`[data-action="${twin}"]`) || card.manage.querySelector("summary");
      target.focus();
    }
  }
}
