"""What ``wfe_example_campaign`` runs against: a pluggable creative generator, its explicit cost
model, an offline audience, and channels whose live creative is a symlink you can look at.

* **Generator** (:class:`Generator`): ``generate(prompt, persona, seed) -> Creative``. The default,
  :class:`SeededGenerator`, runs offline and deterministically (a seeded model: the same prompt,
  persona and seed always give the same text). Plug in a real model with
  ``WFE_CAMPAIGN_GENERATOR=package.module:factory`` (a callable returning a generator).
* **Cost model** (:class:`CostModel`): what one generation costs, ``per_call + tokens / 1000 *
  per_1k_tokens`` (EUR); each generation's cost goes to the cost ledger with ``record_cost``.
* **Audience** (:func:`audience_response`): impressions, clicks, conversions and revenue for a
  creative on a channel for a media spend: a seeded model in which a creative's appeal depends on
  its text, so a better prompt version really does better.
* **Channels**: ``$AIRFLOW_HOME/wfe-demo-campaign/creatives/<version>.json`` holds each creative
  set; ``channels/<channel>/live`` is a symlink to the set that channel shows, switched atomically and
  switched back by the saga (or by the optimization loop when a new set does worse).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

CHANNELS = ("search", "social", "email")
#: Per channel: impressions per EUR, click-through rate and conversion rate of an average creative.
_CHANNEL_BASE = {
    "search": (180.0, 0.035, 0.012),
    "social": (420.0, 0.012, 0.006),
    "email": (900.0, 0.020, 0.008),
}
_WORDS = (
    "today", "simply", "faster", "together", "everyday", "smarter", "easy", "fresh", "trusted",
    "local", "bright", "calm", "bold", "honest",
)  # fmt: skip


@dataclass(frozen=True)
class Creative:
    """One generated ad: its text and the tokens the model produced."""

    persona: str
    text: str
    tokens: int


class Generator(Protocol):
    """Anything that turns a prompt into a creative for a persona."""

    name: str

    def generate(self, prompt: str, persona: str, seed: int) -> Creative: ...


@dataclass(frozen=True)
class CostModel:
    """What one generation costs (EUR): a fixed price per call plus a price per 1,000 tokens."""

    per_call: float = 0.02
    per_1k_tokens: float = 0.60

    def cost(self, creative: Creative) -> float:
        return round(self.per_call + creative.tokens / 1000 * self.per_1k_tokens, 6)


class SeededGenerator:
    """The offline default: fills the prompt and adds words drawn from a seeded random source."""

    name = "seeded-v1"

    def generate(self, prompt: str, persona: str, seed: int) -> Creative:
        rng = random.Random(_digest(prompt, persona, str(seed)))
        text = prompt.format(
            product="Shopwise",
            persona=persona,
            benefit=rng.choice(["free delivery", "fair prices", "next-day returns"]),
            cta=rng.choice(["Shop now", "Try it today", "See the offer"]),
        )
        extra = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12)))
        text = f"{text.strip()} {extra}"
        return Creative(persona=persona, text=text, tokens=len(text.split()) * 4 // 3)


def load_generator() -> Generator:
    """The generator ``WFE_CAMPAIGN_GENERATOR`` names (``module:factory``), else the seeded one."""
    spec = os.environ.get("WFE_CAMPAIGN_GENERATOR", "").strip()
    if not spec:
        return SeededGenerator()
    module, _, attribute = spec.partition(":")
    if not attribute:
        raise ValueError(f"WFE_CAMPAIGN_GENERATOR={spec!r}: give module:factory")
    factory = getattr(importlib.import_module(module), attribute)
    generator: Generator = factory()
    return generator


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")


def appeal(creative_text: str, persona: str) -> float:
    """How well a creative lands with a persona, 0.6 .. 1.6 (seeded by its text).

    Longer, friendlier, more direct prompts score higher: a crude but deterministic stand-in for an
    audience, enough for the optimization loop to have something real to improve.
    """
    base = 0.6 + (_digest(creative_text, persona) % 1000) / 1000 * 0.6
    bonus = 0.25 * ("you" in creative_text.lower()) + 0.15 * ("call to action" in creative_text)
    return round(min(1.6, base + bonus + min(len(creative_text), 240) / 240 * 0.15), 4)


def audience_response(
    creatives: list[dict[str, Any]], channel: str, spend: float, round_number: int
) -> dict[str, float]:
    """Impressions, clicks, conversions and revenue of a creative set on a channel (seeded)."""
    per_eur, ctr, cvr = _CHANNEL_BASE[channel]
    rng = random.Random(_digest(channel, str(round_number), *(c["text"] for c in creatives)))
    impressions = clicks = conversions = 0.0
    share = spend / max(1, len(creatives))
    for creative in creatives:
        lift = appeal(creative["text"], creative["persona"]) * rng.uniform(0.9, 1.1)
        shown = round(share * per_eur)
        clicked = round(shown * ctr * lift)
        impressions += shown
        clicks += clicked
        conversions += round(clicked * cvr * lift * 10) / 10
    return {
        "impressions": impressions,
        "clicks": clicks,
        "conversions": round(conversions),
        "revenue": round(round(conversions) * 38.0, 2),
    }


@dataclass(frozen=True)
class Channels:
    """Creative sets and the channels showing them, under ``root``."""

    root: Path

    @staticmethod
    def default() -> Channels:
        return Channels(Path(os.environ.get("AIRFLOW_HOME", ".")) / "wfe-demo-campaign")

    def save(self, creatives: list[Creative], prompt_version: str) -> str:
        """Store a creative set; its version is its content's hash (the same set, the same file)."""
        body = {"prompt_version": prompt_version, "creatives": [asdict(c) for c in creatives]}
        raw = json.dumps(body, indent=2, sort_keys=True).encode()
        version = hashlib.sha256(raw).hexdigest()[:12]
        path = self.root / "creatives" / f"{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        return version

    def load(self, version: str) -> dict[str, Any]:
        return dict(json.loads((self.root / "creatives" / f"{version}.json").read_text()))

    def live(self, channel: str) -> str | None:
        link = self.root / "channels" / channel / "live"
        return Path(os.readlink(link)).stem if link.is_symlink() else None

    def show(self, channel: str, version: str | None) -> str | None:
        """Make ``channel`` show creative set ``version`` (None: nothing); returns the old one."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; channels: {', '.join(CHANNELS)}")
        old = self.live(channel)
        folder = self.root / "channels" / channel
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "live"
        if version is None:
            link.unlink(missing_ok=True)
            return old
        if not (self.root / "creatives" / f"{version}.json").is_file():
            raise FileNotFoundError(f"creative set {version} was never generated")
        fresh = folder / f".live.{os.getpid()}.tmp"
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(Path("..", "..", "creatives", f"{version}.json"))
        os.replace(fresh, link)
        return old

    def restore(self, channel: str, version: str, old: str | None) -> None:
        """Undo :meth:`show` (idempotent: left alone when the channel moved on since)."""
        if self.live(channel) == version and old != version:
            self.show(channel, old)
