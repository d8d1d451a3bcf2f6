// A WHIP client (RFC 9725) for the browser: publish a microphone to a Space's stage.
// The offer asks to receive too, so the speaker hears everyone else (their mix-minus).

function iceGatheringComplete(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs); // publish with what we have rather than hang
  });
}

export async function publish(whipUrl, { stream, token = null, csrf = null, receive = true } = {}) {
  const pc = new RTCPeerConnection();
  const [track] = stream.getAudioTracks();
  if (!track) throw new Error("no microphone track to publish");
  pc.addTransceiver(track, { direction: receive ? "sendrecv" : "sendonly", streams: [stream] });
  const remote = new MediaStream();
  pc.addEventListener("track", (event) => remote.addTrack(event.track));
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const res = await fetch(whipUrl, { method: "POST", headers, body: pc.localDescription.sdp });
  if (res.status !== 201) {
    pc.close();
    let detail = `${res.status} ${res.statusText}`;
    try { detail = (await res.json()).detail || detail; } catch { /* not JSON */ }
    throw new Error(`could not publish: ${detail}`);
  }
  const location = new URL(res.headers.get("Location"), whipUrl).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  return {
    pc,
    location,
    remote,
    async stop() {
      pc.close();
      await fetch(location, { method: "DELETE", headers }).catch(() => {});
    },
  };
}
