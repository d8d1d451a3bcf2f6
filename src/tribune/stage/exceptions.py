"""Errors the stage raises on purpose, as leaves of ``tribune.exceptions``.

```
InvalidInput                     400
 └── BadOffer                         the WHIP offer cannot start a speaker session
      ├── NotSdp                      the body is not an SDP offer at all
      ├── NoAudio                     no audio m-line that sends (video-only, data-only, recvonly)
      └── NoOpus                      an audio m-line without Opus
Conflict                         409
 ├── StageFull
 │    └── TooManySessions             every speaker slot of this Space is taken
 └── StageClosed                      the Space's stage has been closed
```
"""

from __future__ import annotations

from tribune.exceptions import Conflict, InvalidInput, StageFull


class BadOffer(InvalidInput):
    title = "Bad WebRTC offer"


class NotSdp(BadOffer):
    title = "Offer is not SDP"


class NoAudio(BadOffer):
    title = "Offer sends no audio"


class NoOpus(BadOffer):
    title = "Offer has no Opus"


class TooManySessions(StageFull):
    title = "All speaker slots are taken"


class StageClosed(Conflict):
    title = "Stage closed"
