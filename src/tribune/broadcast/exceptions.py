"""The errors ``tribune.broadcast`` raises, hung on the project's tree (``tribune.exceptions``).

```
TribuneError
 ├── InvalidInput                 400
 │    ├── BadBlockingRequest      400  _HLS_msn/_HLS_part negative or too far ahead
 │    └── BadClipRange            400  a clip that is negative, empty, too long or past the end
 ├── NotFound                     404
 │    └── RecordingNotFound       404  no recording (no index or init segment) in a directory
 ├── Conflict                     409
 │    ├── BroadcastClosed         409  pushing audio into a broadcast that has been closed
 │    └── AlreadyExists           409
 │         └── RecordingExists    409  a new broadcast pointed at a directory holding one
 └── RecordingCorrupt             500  the index contradicts the files (not a torn last line)
```
Each subclasses the project class with the status it should map to, so ``api.problems``
answers correctly without knowing this module.
"""

from __future__ import annotations

from tribune.exceptions import AlreadyExists, Conflict, InvalidInput, NotFound, TribuneError


class BadBlockingRequest(InvalidInput):
    title = "Bad blocking playlist request"


class BadClipRange(InvalidInput):
    title = "Bad clip range"


class RecordingNotFound(NotFound):
    title = "Recording not found"


class BroadcastClosed(Conflict):
    title = "Broadcast closed"


class RecordingExists(AlreadyExists):
    title = "Recording already exists"


class RecordingCorrupt(TribuneError):
    title = "Recording corrupt"
