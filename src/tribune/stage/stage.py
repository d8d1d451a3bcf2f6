"""One Space's stage: speakers in over WebRTC, program and mix-minus out every tick."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from tribune.stage.exceptions import BadOffer, StageClosed, TooManySessions
from tribune.stage.jitter import JitterBuffer
from tribune.stage.levels import LevelMeter
from tribune.stage.mixer import RATE, Mixer, Samples
from tribune.stage.offer import Offer
from tribune.stage.tracks import (
    EncodedMixTrack,
    InOrder,
    OpusDecoder,
    OpusEncoder,
    bypass_receive_buffer,
    tap_decoded_frames,
)

logger = logging.getLogger(__name__)

ProgramSink = Callable[[Samples, float], None]
LocalSource = Callable[[int], npt.NDArray[Any]]
SessionStateHook = Callable[[str, str, str], None]

MAX_SPEAKERS = 13
SESSION_MARGIN = 3  # a speaker reconnecting, a host stepping in while a slot frees up
MAX_CATCH_UP_S = 1.0  # a longer stall skips ahead instead of bursting out a backlog
INBOX_FRAMES = 50  # encoded frames waiting for the tick (1 s): more means the loop stalled
OPUS_FRAME_MS = (10, 20, 40, 60)  # tick lengths that are also Opus frame durations
_ENDED = ("failed", "closed")


@dataclass(eq=False)
class _Speaker:
    """What the mixer needs of anyone who speaks: a user and a level meter."""

    user_id: str
    meter: LevelMeter


@dataclass(eq=False)
class _Session(_Speaker):
    """One WHIP resource: a peer connection that carries one speaker's voice."""

    id: str
    pc: RTCPeerConnection
    jitter: JitterBuffer
    outbound: EncodedMixTrack | None
    decoder: OpusDecoder = field(default_factory=OpusDecoder)
    #: (RTP sequence number, Opus frame) as they arrived, ordered and decoded at the next tick
    inbox: deque[tuple[int | None, bytes]] = field(
        default_factory=lambda: deque(maxlen=INBOX_FRAMES)
    )
    order: InOrder = field(default_factory=InOrder)
    #: encodes this speaker's own mix-minus while they talk (see Stage._send_mix_minus)
    encoder: OpusEncoder | None = None
    state: str = "new"
    watchdog: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Local(_Speaker):
    source: LocalSource = field(kw_only=True)


@dataclass(frozen=True)
class StageStats:
    """Counters for operators.

    ``mix_s`` is the mean time one tick (decode, mix, encode) held the loop; ``encodes``
    counts Opus encodes of mix-minus, one per distinct mix per tick: speakers who are not
    talking all hear the same mix and share one.
    """

    ticks: int
    skipped_ticks: int
    mix_s: float
    underruns: int
    dropped_samples: int
    encodes: int
    decode_errors: int


class Stage:
    """The live stage of one Space.

    >>> async with Stage("sp_1", encoder.feed) as stage:
    ...     session_id, answer = await stage.publish("u_ann", offer_sdp)

    Every ``tick_s`` it mixes one tick: the program goes to ``on_program(pcm, wallclock)``
    (float32 mono 48 kHz, ``wallclock`` the ``clock()`` time of its first sample), and each
    speaker whose offer was sendrecv hears everyone but themselves on the same connection.
    """

    def __init__(
        self,
        space_id: str,
        on_program: ProgramSink,
        *,
        tick_s: float = 0.02,
        jitter_ms: float = 40.0,
        clock: Callable[[], float] = time.time,
        ice_servers: Sequence[RTCIceServer] = (),
        max_sessions: int = MAX_SPEAKERS + SESSION_MARGIN,
        connect_timeout_s: float = 15.0,
        on_session_state: SessionStateHook | None = None,
    ) -> None:
        samples = round(tick_s * RATE)
        if abs(samples - tick_s * RATE) > 1e-6 or samples * 1000 // RATE not in OPUS_FRAME_MS:
            raise ValueError(f"tick_s must be an Opus frame length {OPUS_FRAME_MS} ms: {tick_s}")
        if jitter_ms < 0:
            raise ValueError(f"jitter_ms must be >= 0, got {jitter_ms}")
        self.space_id = space_id
        self.tick_s = tick_s
        self.samples = samples
        self._on_program = on_program
        self._clock = clock
        self._ice_servers = list(ice_servers)
        self._max_sessions = max_sessions
        self._connect_timeout_s = connect_timeout_s
        self._on_session_state = on_session_state
        self._jitter_target = max(samples, round(jitter_ms * RATE / 1000))
        self._mixer = Mixer(samples=samples)
        self._sessions: dict[str, _Session] = {}
        self._joining: Counter[str] = Counter()
        self._local: dict[str, _Local] = {}
        self._muted: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._ticks = 0
        self._skipped = 0
        self._mix_total_s = 0.0
        self._sink_failures = 0
        self._gone_underruns = 0
        self._gone_dropped = 0
        self._gone_decode_errors = 0
        self._encodes = 0
        self._program_encoder = OpusEncoder(samples)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the mixing loop; the program flows (silence) even before anyone speaks."""
        self._check_open()
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._run(), name=f"stage {self.space_id}")
            self._ticker.add_done_callback(self._ticker_done)

    def _ticker_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.critical(
                "stage %s: the mixing loop died; the program has stopped",
                self.space_id,
                exc_info=task.exception(),
            )

    async def close(self) -> None:
        """Close every peer connection and stop the loop. Safe to call twice."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._shutdown())
        await self._closing

    async def _shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await asyncio.gather(
            *(self._close_session(s, "stage closed") for s in list(self._sessions.values()))
        )
        # Peer connections still closing must finish: cancelling aiortc's close() half-way
        # leaves its transports open. Readers were cancelled when their sessions ended.
        if self._tasks:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=5)
            for task in stuck:
                logger.warning("stage %s: cancelling stuck task %s", self.space_id, task)
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        self._local.clear()
        logger.info("stage %s closed after %d ticks", self.space_id, self._ticks)

    def _check_open(self) -> None:
        if self._closing is not None:
            raise StageClosed(f"The stage of Space {self.space_id} is closed.")

    # -- speakers --------------------------------------------------------------------------

    async def publish(self, user_id: str, offer_sdp: str) -> tuple[str, str]:
        """Answer a speaker's WHIP offer: ``(session_id, answer_sdp)`` with all candidates.

        A second publish by the same user replaces their first session once it succeeds.
        Raises ``BadOffer`` (400) for an offer the stage cannot use and ``TooManySessions``
        (409) when every slot is taken.
        """
        self._check_open()
        offer = Offer(offer_sdp)
        on_stage = {s.user_id for s in self._sessions.values()} | set(+self._joining)
        if user_id not in on_stage and len(on_stage) >= self._max_sessions:
            raise TooManySessions(
                f"The stage of Space {self.space_id} has {len(on_stage)} speakers connected, "
                f"the most it takes."
            )
        self._joining[user_id] += 1
        try:
            session = await self._negotiate(user_id, offer)
        finally:
            self._joining[user_id] -= 1
        if self._closing is not None:
            await self._close_session(session, "stage closed while publishing")
            self._check_open()
        for old in [s for s in self._sessions.values() if s.user_id == user_id]:
            self._end_soon(old, f"replaced by session {session.id}")
        self._sessions[session.id] = session
        logger.info(
            "stage %s: %s publishes session %s (%s)",
            self.space_id,
            user_id,
            session.id,
            offer.direction,
        )
        return session.id, ask_for_dtx(session.pc.localDescription.sdp)

    async def _negotiate(self, user_id: str, offer: Offer) -> _Session:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        session = _Session(
            user_id=user_id,
            meter=LevelMeter(self.tick_s),
            id=secrets.token_urlsafe(12),
            pc=pc,
            jitter=JitterBuffer(self._jitter_target, 2 * self._jitter_target + self.samples),
            outbound=EncodedMixTrack(self.samples) if offer.wants_mix_minus else None,
        )
        pc.on("connectionstatechange", lambda: self._set_state(session, pc.connectionState))
        try:
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
            except Exception as exc:  # aiortc's parser fails in many ways on odd SDP
                raise BadOffer(f"The offer could not be used: {exc}") from exc
            audio = _audio_transceiver(pc, offer)
            _only_opus(audio)
            if not bypass_receive_buffer(audio.receiver):
                logger.warning("aiortc's receive buffer was not bypassed: speakers get +80 ms")
            if not tap_decoded_frames(audio.receiver, session.inbox.append):
                raise RuntimeError("aiortc's receiver has changed: cannot take the speaker's audio")
            for transceiver in pc.getTransceivers():
                if transceiver is not audio:
                    transceiver.direction = "inactive"  # video, a second mic: declined
            if session.outbound is not None:
                audio.sender.replaceTrack(session.outbound)
                audio.direction = "sendrecv"
            else:
                audio.direction = "recvonly"
            # aiortc gathers every candidate inside setLocalDescription: no trickle needed.
            await pc.setLocalDescription(await pc.createAnswer())
        except BaseException:
            await pc.close()
            raise
        session.watchdog = asyncio.get_running_loop().call_later(
            self._connect_timeout_s, self._connect_timed_out, session
        )
        return session

    async def unpublish(self, session_id: str) -> bool:
        """End a session (WHIP DELETE); False if there is no such session."""
        session = self._sessions.get(session_id)
        if session is None:
            return False
        await self._close_session(session, "unpublished")
        return True

    async def kick(self, user_id: str) -> None:
        """Take a user off the stage now (demoted, removed): their sessions and local source."""
        self._local.pop(user_id, None)
        sessions = [s for s in self._sessions.values() if s.user_id == user_id]
        await asyncio.gather(*(self._close_session(s, "kicked") for s in sessions))

    def set_muted(self, user_id: str, muted: bool) -> None:
        """Server-side mute: the user leaves the program and everyone's mix-minus from the
        next tick. It is kept per user, so it survives a reconnect."""
        if muted:
            self._muted.add(user_id)
        else:
            self._muted.discard(user_id)
        logger.info("stage %s: %s %s", self.space_id, user_id, "muted" if muted else "unmuted")

    def muted(self) -> set[str]:
        """Who is muted on the server now."""
        return set(self._muted)

    def add_local_source(self, user_id: str, source: LocalSource) -> None:
        """A speaker without a connection (a demo voice): ``source(n)`` gives each tick's
        ``n`` float32 mono samples. A source that raises or returns the wrong shape is
        removed."""
        self._check_open()
        self._local[user_id] = _Local(user_id, LevelMeter(self.tick_s), source=source)

    def remove_local_source(self, user_id: str) -> None:
        self._local.pop(user_id, None)

    def levels(self) -> dict[str, float]:
        """Per speaker, how loudly they talk (0..1, RMS over ~300 ms); muted reads 0."""
        result: dict[str, float] = {}
        for speaker in [*self._sessions.values(), *self._local.values()]:
            level = 0.0 if speaker.user_id in self._muted else speaker.meter.level
            result[speaker.user_id] = max(level, result.get(speaker.user_id, 0.0))
        return result

    def sessions(self) -> dict[str, str]:
        """session_id -> user_id."""
        return {sid: s.user_id for sid, s in self._sessions.items()}

    def stats(self) -> StageStats:
        live = self._sessions.values()
        return StageStats(
            ticks=self._ticks,
            skipped_ticks=self._skipped,
            mix_s=self._mix_total_s / self._ticks if self._ticks else 0.0,
            underruns=self._gone_underruns + sum(s.jitter.underruns for s in live),
            dropped_samples=self._gone_dropped + sum(s.jitter.dropped for s in live),
            encodes=self._encodes,
            decode_errors=self._gone_decode_errors + sum(s.decoder.errors for s in live),
        )

    # -- sessions --------------------------------------------------------------------------

    def _set_state(self, session: _Session, new: str) -> None:
        old = session.state
        if new == old:
            return
        session.state = new
        logger.info(
            "stage %s session %s (%s): %s -> %s",
            self.space_id,
            session.id,
            session.user_id,
            old,
            new,
        )
        if new == "connected" and session.watchdog is not None:
            session.watchdog.cancel()
        if self._on_session_state is not None:
            try:
                self._on_session_state(session.id, old, new)
            except Exception:
                logger.exception("on_session_state hook failed")
        if new in _ENDED and self._sessions.get(session.id) is session:
            self._end_soon(session, f"connection {new}")

    def _connect_timed_out(self, session: _Session) -> None:
        if session.state != "connected":
            self._end_soon(session, "did not connect in time")

    async def _close_session(self, session: _Session, reason: str) -> None:
        self._detach(session, reason)
        await session.pc.close()

    def _detach(self, session: _Session, reason: str) -> None:
        """Take the session out of the mix at once; its peer connection closes after."""
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
            self._gone_underruns += session.jitter.underruns
            self._gone_dropped += session.jitter.dropped
            self._gone_decode_errors += session.decoder.errors
            logger.info(
                "stage %s: session %s of %s ends: %s",
                self.space_id,
                session.id,
                session.user_id,
                reason,
            )
        if session.watchdog is not None:
            session.watchdog.cancel()
        if session.outbound is not None:
            session.outbound.stop()
        session.inbox.clear()

    def _end_soon(self, session: _Session, reason: str) -> None:
        self._detach(session, reason)
        self._spawn(session.pc.close())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the clock and the mix -------------------------------------------------------------

    async def _run(self) -> None:
        """Tick k runs at ``origin + k * tick_s``: a schedule that cannot drift. When the loop
        falls behind it produces the missed ticks back to back, so program time keeps pace
        with the wall clock; after a stall longer than MAX_CATCH_UP_S it skips ahead."""
        loop = asyncio.get_running_loop()
        origin, wall_origin = loop.time(), self._clock()
        k = 0
        while True:
            lateness = loop.time() - (origin + k * self.tick_s)
            if lateness < 0:
                await asyncio.sleep(-lateness)
            elif lateness > MAX_CATCH_UP_S:
                skip = int(lateness / self.tick_s)
                logger.warning(
                    "stage %s fell %.2f s behind: skipping %d ticks", self.space_id, lateness, skip
                )
                k += skip
                self._skipped += skip
            elif k:
                await asyncio.sleep(0)  # catching up, but let the network in between ticks
            self._tick(wall_origin + k * self.tick_s)
            k += 1

    def _tick(self, wallclock: float) -> None:
        started = time.perf_counter()
        n = self.samples
        inputs: dict[str, Samples] = {}
        pulled: list[tuple[_Speaker, Samples | None]] = [
            *((s, self._pull_session(s, n)) for s in self._sessions.values()),
            *((local, self._pull_local(local, n)) for local in list(self._local.values())),
        ]
        for speaker, samples in pulled:
            speaker.meter.update(samples)
            # Gate: a speaker whose last ~300 ms stayed under -60 dBFS adds nothing audible;
            # leaving them out lets them share the common mix-minus encode.
            if samples is None or speaker.user_id in self._muted or not speaker.meter.level:
                continue
            user = speaker.user_id
            inputs[user] = samples if user not in inputs else inputs[user] + samples
        listeners = [s for s in self._sessions.values() if s.outbound is not None]
        talking = sorted({s.user_id for s in listeners if s.user_id in inputs})
        program, minus = self._mixer.mix(inputs, talking)
        if listeners:
            self._send_mix_minus(listeners, program, minus)
        self._mix_total_s += time.perf_counter() - started
        self._ticks += 1
        try:
            self._on_program(program, wallclock)
        except Exception:
            self._sink_failures += 1
            if self._sink_failures % 500 == 1:  # the first, then every 10 s at 20 ms ticks
                logger.exception(
                    "stage %s: on_program failed (%d times)", self.space_id, self._sink_failures
                )

    def _pull_session(self, session: _Session, n: int) -> Samples | None:
        if session.inbox:
            frames = list(session.inbox)
            session.inbox.clear()
            for payload in session.order(frames):
                samples = session.decoder.decode(payload)
                if samples is not None:
                    session.jitter.push(samples)
        return session.jitter.pull(n)

    def _send_mix_minus(
        self, listeners: list[_Session], program: Samples, minus: dict[str, Samples]
    ) -> None:
        """Encode each distinct mix once. A speaker who is not talking hears the program
        itself, so all of them share one encode; each talking speaker's own mix (everyone
        but them) gets an encoder of theirs. A speaker who starts or stops talking switches
        between the two streams; Opus decoders take that in their stride (it is what
        conference bridges do to save encodes)."""
        shared: list[bytes] | None = None
        for session in listeners:
            assert session.outbound is not None
            own = minus.get(session.user_id)
            if own is None:
                if shared is None:
                    shared = self._program_encoder.encode(program)
                    self._encodes += 1
                packets = shared
            else:
                if session.encoder is None:
                    session.encoder = OpusEncoder(self.samples)
                packets = session.encoder.encode(own)
                self._encodes += 1
            for packet in packets:
                session.outbound.push(packet)

    def _pull_local(self, local: _Local, n: int) -> Samples | None:
        try:
            samples = np.asarray(local.source(n), dtype=np.float32).reshape(-1)
            if samples.shape != (n,):
                raise ValueError(f"returned {samples.size} samples, not {n}")
        except Exception:
            logger.exception("stage %s: local source %s removed", self.space_id, local.user_id)
            self._local.pop(local.user_id, None)
            return None
        if not np.isfinite(samples).all():
            samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
        return samples


def _only_opus(transceiver: RTCRtpTransceiver) -> None:
    """The stage decodes Opus itself (tracks.py): answer nothing else.

    aiortc settles a transceiver's codecs while applying the offer, before its codec
    preferences could be set, so the negotiated list (``_codecs``, which aiortc's own answer
    reads) is narrowed instead. ``Offer`` has already refused offers without Opus.
    """
    opus = [c for c in transceiver._codecs if c.mimeType.lower() == "audio/opus"]
    if not opus:
        raise BadOffer("The offer's audio m-line has no Opus.")
    transceiver._codecs = opus


_RTPMAP_OPUS = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.IGNORECASE)


def ask_for_dtx(answer: str) -> str:
    """Add ``usedtx=1`` to the answer's Opus format parameters (RFC 7587 §6.1).

    A browser then stops sending while its speaker is silent (a packet every 400 ms instead
    of 50 a second), which is most of the time for most of a stage: the stage's receive
    work drops to the speakers who talk. Nothing changes for the receiving side: the
    decoder handles DTX and the jitter buffer treats the pause as silence.
    """
    lines = answer.split("\r\n")
    out: list[str] = []
    opus: set[str] = set()
    for line in lines:
        match = _RTPMAP_OPUS.match(line)
        if match:
            opus.add(match.group(1))
        if line.startswith("a=fmtp:"):
            pt, _, params = line[len("a=fmtp:") :].partition(" ")
            if pt in opus:
                opus.discard(pt)  # parameters present: extend them
                if "usedtx=" not in params:
                    line = f"a=fmtp:{pt} {params};usedtx=1" if params else f"a=fmtp:{pt} usedtx=1"
        out.append(line)
        if match and not any(x.startswith(f"a=fmtp:{match.group(1)} ") for x in lines):
            out.append(f"a=fmtp:{match.group(1)} usedtx=1")
            opus.discard(match.group(1))
    return "\r\n".join(out)


def _audio_transceiver(pc: RTCPeerConnection, offer: Offer) -> RTCRtpTransceiver:
    audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
    for transceiver in audio:
        if offer.audio.mid is not None and transceiver.mid == offer.audio.mid:
            return transceiver
    if not audio:
        raise BadOffer("The offer's audio m-line could not be negotiated.")
    return audio[0]
