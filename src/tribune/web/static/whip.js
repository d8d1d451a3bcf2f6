// A WHIP client (RFC 9725) for the browser: publish a microphone to a Space's stage.
// The offer asks to receive too, so the speaker hears everyone else (their mix-minus).
//
//   const session = await publish(url, { stream, token });  // or { stream, csrf } with a session cookie
//   audioElement.srcObject = session.remote;                 // everyone but you
//   await session.stop();                                     // DELETE the session, close the peer
//
// A failed publish rejects with an Error whose ``status`` and ``problem`` are the HTTP
// status and the problem+json body (status 0: the server could not be reached).

function iceGatheringComplete(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs); // publish with what we have rather than hang
  });
}

function publishError(status, problem, fallback) {
  const detail = (problem && (problem.detail || problem.title)) || fallback;
  const err = new Error(`could not publish: ${detail}`);
  err.name = "WhipError";
  err.status = status;
  err.problem = problem;
  err.detail = detail;
  return err;
}

export async function publish(whipUrl, { stream, token = null, csrf = null, receive = true } = {}) {
  const [track] = stream.getAudioTracks();
  if (!track) throw new Error("no microphone track to publish");
  const endpoint = new URL(whipUrl, location.href).href; // relative URLs are fine too
  const pc = new RTCPeerConnection();
  pc.addTransceiver(track, { direction: receive ? "sendrecv" : "sendonly", streams: [stream] });
  const remote = new MediaStream();
  pc.addEventListener("track", (event) => remote.addTrack(event.track));
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (csrf) headers["X-CSRF-Token"] = csrf;
  let res;
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    res = await fetch(endpoint, {
      method: "POST", headers, body: pc.localDescription.sdp, credentials: "same-origin",
    });
  } catch (err) {
    pc.close();
    throw publishError(0, null, err.message || "the server could not be reached");
  }
  if (res.status !== 201) {
    pc.close();
    const problem = await res.json().catch(() => null);
    throw publishError(res.status, problem, `${res.status} ${res.statusText}`);
  }
  const sessionUrl = new URL(res.headers.get("Location"), endpoint).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  // DELETE needs the same credentials, not the SDP content type.
  const { "Content-Type": _sdp, ...auth } = headers;
  let stopped = null;
  return {
    pc,
    location: sessionUrl,
    remote,
    track,
    /** End the session: DELETE it on the server, then close the peer (closing first
     * would let the server end it on its own, and answer the DELETE with a 404). Safe
     * to call twice. */
    stop() {
      if (!stopped) {
        stopped = fetch(sessionUrl, {
          method: "DELETE", headers: auth, credentials: "same-origin", signal: AbortSignal.timeout(5000),
        }).then(() => {}, () => {}).finally(() => pc.close());
      }
      return stopped;
    },
    /** Close the peer only: for when the server has already ended the session. */
    close() {
      if (!stopped) stopped = Promise.resolve();
      pc.close();
    },
  };
}
