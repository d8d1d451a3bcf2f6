// A listener's page: press Play, hear the Space within about two seconds of live.
const spaceId = location.pathname.split("/").filter(Boolean).pop();
const $ = (id) => document.getElementById(id);
const audio = $("audio");
let joined = null;
let hls = null;

async function api(method, path, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const res = await fetch(path, { method, headers });
  const body = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(body && body.detail ? body.detail : `${res.status} ${res.statusText}`);
  return body;
}

function showError(err) { $("error").textContent = err ? String(err.message || err) : ""; }

function renderState(doc) {
  $("title").textContent = doc.title;
  document.title = `${doc.title} · Tribune`;
  const live = doc.state === "live";
  $("status").textContent = live ? "Live" : doc.state === "scheduled"
    ? `Starting at ${new Date(doc.scheduled_start).toLocaleString()}` : `This Space has ${doc.state}.`;
  $("count").textContent = `${doc.listeners.concurrent.toLocaleString()} listening`;
  $("play").disabled = !live;
  $("stage").replaceChildren(...doc.stage.map((m) => {
    const li = document.createElement("li");
    const level = document.createElement("span");
    level.className = "level";
    level.setAttribute("aria-hidden", "true");
    const bar = document.createElement("span");
    bar.style.width = `${Math.round(Math.min(1, m.level || 0) * 100)}%`;
    level.append(bar);
    const name = document.createElement("span");
    name.textContent = `${m.display_name} · ${m.role}${m.muted ? " · muted" : ""}`;
    li.append(level, name);
    return li;
  }));
}

async function pollState() {
  try { renderState(await api("GET", `/api/spaces/${spaceId}/state`)); showError(null); }
  catch (err) { showError(err); }
  setTimeout(pollState, 1000);
}

async function heartbeat() {
  if (!joined) return;
  try {
    const beat = await api("POST", joined.urls.heartbeat, joined.listener_token);
    if (beat.listener_token) joined.listener_token = beat.listener_token;
  } catch (err) { showError(err); }
  setTimeout(heartbeat, joined.heartbeat_interval_s * 1000);
}

async function play() {
  showError(null);
  if (!joined) {
    joined = await api("POST", `/api/spaces/${spaceId}/join`);
    setTimeout(heartbeat, joined.heartbeat_interval_s * 1000);
  }
  const url = joined.urls.playlist;
  if (window.Hls && Hls.isSupported()) {
    hls = new Hls({ lowLatencyMode: true, backBufferLength: 10 });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      $("status").textContent = "Reconnecting…";
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => hls.startLoad(), 1000);
      else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else showError(`Playback failed: ${data.details}`);
    });
    hls.loadSource(url);
    hls.attachMedia(audio);
  } else if (audio.canPlayType("application/vnd.apple.mpegurl")) {
    audio.src = url; // Safari plays LL-HLS natively
  } else {
    throw new Error("This browser cannot play HLS audio.");
  }
  await audio.play();
  $("play").textContent = "Playing";
  $("play").disabled = true;
}

$("play").addEventListener("click", () => play().catch(showError));
window.tribune = { audio, get hls() { return hls; }, get joined() { return joined; } };
pollState();
