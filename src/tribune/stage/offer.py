"""A speaker's SDP offer, checked before any peer connection is made for it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tribune.stage.exceptions import BadOffer, NoAudio, NoOpus, NotSdp

MAX_OFFER_CHARS = 64 * 1024
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
SENDING = ("sendrecv", "sendonly")
# What any WebRTC offer carries, at session or media level: ICE credentials, the DTLS
# certificate's fingerprint and the DTLS role (RFC 8829 5.2).
REQUIRED = ("ice-ufrag", "ice-pwd", "fingerprint", "setup")

# RFC 3551 static payload types, which an offer may use without an a=rtpmap line.
_STATIC_AUDIO = {0: "PCMU", 3: "GSM", 4: "G723", 8: "PCMA", 9: "G722", 18: "G729"}
_LINE = re.compile(r"^[a-z]=")


@dataclass(frozen=True)
class MediaSection:
    """One m-line of an offer: ``m=audio 9 UDP/TLS/RTP/SAVPF 111 0`` and its attributes."""

    kind: str
    port: int
    codecs: tuple[str, ...]
    direction: str
    mid: str | None
    attributes: frozenset[str]


@dataclass(frozen=True)
class Offer:
    """A WHIP offer that can start a speaker session; raises ``BadOffer`` otherwise.

    >>> Offer(browser_sdp).wants_mix_minus   # a=sendrecv: the speaker also listens
    True
    """

    sdp: str
    media: tuple[MediaSection, ...] = field(init=False, repr=False)
    audio: MediaSection = field(init=False, repr=False)

    def __post_init__(self) -> None:
        media = _parse(self.sdp)
        audio = [m for m in media if m.kind == "audio" and m.port != 0]
        if not audio:
            found = ", ".join(m.kind for m in media) or "no media at all"
            raise NoAudio(
                f"The offer has no audio m-line (it offers {found}); a speaker must send audio."
            )
        sending = [m for m in audio if m.direction in SENDING]
        if not sending:
            raise NoAudio(
                f"The offer's audio m-line is {audio[0].direction}; "
                "a speaker's offer must send audio (sendonly or sendrecv)."
            )
        chosen = sending[0]
        if not any(c.lower() == "opus" for c in chosen.codecs):
            offered = ", ".join(chosen.codecs) or "no codecs"
            raise NoOpus(
                f"The offer's audio m-line offers {offered} but not Opus; "
                "the stage takes Opus only."
            )
        missing = [name for name in REQUIRED if name not in chosen.attributes]
        if missing:
            names = ", ".join(f"a={name}" for name in missing)
            raise BadOffer(
                f"The offer's audio m-line has no {names}; a WebRTC offer needs ICE "
                "credentials, a DTLS fingerprint and a setup role."
            )
        object.__setattr__(self, "media", media)
        object.__setattr__(self, "audio", chosen)

    @property
    def direction(self) -> str:
        return self.audio.direction

    @property
    def wants_mix_minus(self) -> bool:
        """A sendrecv speaker (a browser) hears the others on the same connection."""
        return self.audio.direction == "sendrecv"


def _parse(sdp: str) -> tuple[MediaSection, ...]:
    if len(sdp) > MAX_OFFER_CHARS:
        raise NotSdp(f"The offer is {len(sdp)} characters; at most {MAX_OFFER_CHARS} allowed.")
    lines = [line.strip() for line in sdp.strip().lstrip("\ufeff").splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        first = lines[0][:40] if lines else ""
        raise NotSdp(f"The offer is not SDP: it must start with 'v=0', not {first!r}.")
    session_direction = "sendrecv"
    session_attributes: set[str] = set()
    sections: list[_Section] = []
    for number, line in enumerate(lines, start=1):
        if not _LINE.match(line):
            raise NotSdp(f"The offer is not SDP: line {number} is {line[:40]!r}.")
        key, value = line[0], line[2:]
        if key == "m":
            sections.append(_Section.from_media_line(value))
        elif key == "a":
            name, _, rest = value.partition(":")
            if not sections:
                session_attributes.add(name)
                session_direction = name if name in DIRECTIONS else session_direction
            else:
                sections[-1].attribute(name, rest)
    return tuple(s.build(session_direction, session_attributes) for s in sections)


@dataclass
class _Section:
    kind: str
    port: int
    formats: list[str]
    rtpmap: dict[str, str] = field(default_factory=dict)
    direction: str | None = None
    mid: str | None = None
    attributes: set[str] = field(default_factory=set)

    @classmethod
    def from_media_line(cls, value: str) -> _Section:
        parts = value.split()
        port = parts[1].split("/")[0] if len(parts) >= 3 else ""
        if not port.isdigit():
            raise NotSdp(f"The offer is not SDP: malformed media line 'm={value[:40]}'.")
        return cls(kind=parts[0], port=int(port), formats=parts[3:])

    def attribute(self, name: str, value: str) -> None:
        self.attributes.add(name)
        if name in DIRECTIONS:
            self.direction = name
        elif name == "mid":
            self.mid = value
        elif name == "rtpmap":
            pt, _, encoding = value.partition(" ")
            self.rtpmap[pt] = encoding.split("/")[0]

    def build(self, session_direction: str, session_attributes: set[str]) -> MediaSection:
        return MediaSection(
            kind=self.kind,
            port=self.port,
            codecs=tuple(self._codec(pt) for pt in self.formats),
            direction=self.direction or session_direction,
            mid=self.mid,
            attributes=frozenset(session_attributes | self.attributes),
        )

    def _codec(self, pt: str) -> str:
        if pt in self.rtpmap:
            return self.rtpmap[pt]
        if self.kind == "audio" and pt.isdigit() and int(pt) in _STATIC_AUDIO:
            return _STATIC_AUDIO[int(pt)]
        return f"payload type {pt}"
