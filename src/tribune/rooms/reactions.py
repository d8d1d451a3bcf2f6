"""The fixed set of reactions a listener can send."""

from __future__ import annotations

from tribune.exceptions import InvalidInput

#: name -> emoji. Names travel in the API (stable, ASCII); emoji are what people see.
REACTIONS: dict[str, str] = {
    "heart": "\N{HEAVY BLACK HEART}\N{VARIATION SELECTOR-16}",
    "laugh": "\N{FACE WITH TEARS OF JOY}",
    "clap": "\N{CLAPPING HANDS SIGN}",
    "fire": "\N{FIRE}",
    "hundred": "\N{HUNDRED POINTS SYMBOL}",
    "wow": "\N{FACE WITH OPEN MOUTH}",
    "sad": "\N{CRYING FACE}",
    "raised_hand": "\N{RAISED HAND}",
}


def validate_reaction(name: str) -> str:
    if name not in REACTIONS:
        raise InvalidInput(
            f"unknown reaction {name!r}; choose one of: {', '.join(sorted(REACTIONS))}"
        )
    return name
