// Share the Space: the system's share sheet where there is one, else copy the link.
import { h, setText } from "/static/space/dom.js";

export function setUpShare({ button, status, url, title }) {
  let clear = null;
  const say = (text) => {
    clearTimeout(clear);
    setText(status, text);
    clear = setTimeout(() => setText(status, ""), 5000);
  };
  button.addEventListener("click", async () => {
    const link = url();
    if (navigator.share) {
      try {
        await navigator.share({ title: title(), text: `Listen to “${title()}” live on Tribune`, url: link });
        say("Shared.");
        return;
      } catch (err) {
        if (err.name === "AbortError") return; // the person closed the share sheet
        // Not allowed here (or failed): fall back to copying.
      }
    }
    try {
      await navigator.clipboard.writeText(link);
      say("Link copied. Paste it anywhere to invite people.");
    } catch {
      // No clipboard access (an http page, a locked-down browser): show the link to copy by hand.
      const field = h("input", { className: "share-field", value: link, readOnly: true, "aria-label": "Link to this Space" });
      status.replaceChildren("Copy this link: ", field);
      field.select();
    }
  });
}
