// Home: live now and upcoming Spaces.
async function fill(state, id) {
  const list = document.getElementById(id);
  try {
    const res = await fetch(`/api/spaces?state=${state}`);
    const body = await res.json();
    if (!res.ok) throw new Error(body.detail || res.statusText);
    list.replaceChildren(...(body.spaces.length ? body.spaces.map((s) => {
      const li = document.createElement("li");
      const when = s.state === "live"
        ? `${s.listeners.concurrent} listening`
        : `starts ${new Date(s.scheduled_start).toLocaleString()}`;
      const link = Object.assign(document.createElement("a"), {href: `/spaces/${s.id}`, textContent: s.title});
      li.append(link, ` — ${s.host ? s.host.display_name : ""} · ${when}`);
      return li;
    }) : [Object.assign(document.createElement("li"), {className: "muted", textContent: "nothing yet"})]));
  } catch (err) {
    list.replaceChildren(Object.assign(document.createElement("li"), {textContent: `Could not load: ${err.message}`}));
  }
}
fill("live", "live");
fill("upcoming", "upcoming");
