"""ViLaD planning: frames and text context in, a driving decision out, by masked diffusion (the
bidirectional planner, most-confident slots first: ``ViladPipeline``) or, for the baseline,
autoregressively (the causal planner with a KV cache: ``ViladARPipeline``). Both share the input
checks, the template constraint and the closed-loop episode mode.

The decision template fixes 14 slots, or 3 with the codebook codec (datamodules/driving_codec.py).
With ``constrained`` (the default) each slot's logits are limited to its own token type, so every
output parses; without it the raw argmax can put, say, a waypoint token in the lateral slot, which
counts as a parse failure.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from datamodules.driving_codec import (CONTEXT_LEN, ENVS, FRAME_SHAPE, MASK_ID, Context, Decision, parse_decision,
                                       slot_logit_mask, template, to_pixels)
from zoo.checks import MAX_BATCH, check_bool, check_choice, check_float, check_int
from zoo.nn import KVCache
from zoo.objectives.autoregressive import decode
from zoo.objectives.base import Sample
from zoo.objectives.masked_sampling import POLICIES, sample
from zoo.pipeline import Pipeline


def template_hook(constrained: bool, net):
    """The slot constraint of ``net``'s template as the samplers' ``logits_hook``: (offset, logits
    (B, n, V) or (B, V))."""
    if not constrained:
        return None
    allowed = slot_logit_mask(template(net.waypoint_codec), net.vocab_size)  # (slots, V)

    def hook(offset: int, logits: torch.Tensor) -> torch.Tensor:
        rows = allowed[offset:offset + (logits.shape[1] if logits.dim() == 3 else 1)].to(logits.device)
        return logits.masked_fill(~(rows if logits.dim() == 3 else rows[0]), -torch.inf)

    return hook


@torch.no_grad()
def masked_plan(net, context: torch.Tensor, frames: torch.Tensor, steps: int, policy: str = "low_confidence",
                temperature: float = 0.0, constrained: bool = True, generator=None,
                block_length: int | None = None) -> Sample:
    """ViLaD: all decision slots (14, or 3 with the codebook) start masked and are committed over
    ``steps`` network passes; with ``block_length`` the slots are decoded in blocks of that many, left
    to right (1: the AR twin's order). The conv stem runs once, not at every pass (its patch embeddings
    are the same each time)."""
    cond = net.embed_frames(frames) if net.use_image else frames
    return sample(net, mask_id=MASK_ID, gen_length=len(template(net.waypoint_codec)), steps=steps, prompt=context,
                  cond=cond, policy=policy, temperature=temperature, logits_hook=template_hook(constrained, net),
                  max_seq_len=net.max_seq_len - net.image_tokens, generator=generator, block_length=block_length)


@torch.no_grad()
def ar_plan(net, context: torch.Tensor, frames: torch.Tensor, temperature: float = 0.0, constrained: bool = True,
            generator=None) -> Sample:
    """The baseline: one slot per network pass, left to right, keys and values cached (14 passes, or 3)."""
    cache = KVCache()

    def step(token):
        if token is None:  # the frame and the context, once
            return net(context, None, frames, cache=cache, update_cache=True)[:, -1]
        return net(token[:, None], None, None, cache=cache, update_cache=True)[:, -1]

    out = decode(step, len(template(net.waypoint_codec)), temperature=temperature, generator=generator,
                 logits_hook=template_hook(constrained, net))
    return Sample(torch.cat([context, out.tokens], 1), out.nfe, CONTEXT_LEN)


@dataclass
class PlanOutput:
    decisions: list[Decision | None]  # None where the decision does not parse
    tokens: torch.Tensor              # (B, 4 + slots) context + decision ids
    nfe: int
    seconds: float
    contexts: list[Context] = field(default_factory=list)

    @property
    def waypoints(self) -> torch.Tensor:
        """(B, 6, 2) metres in the ego frame; NaN where the decision does not parse."""
        return torch.tensor(np.stack([d.waypoints if d is not None else np.full((6, 2), np.nan)
                                      for d in self.decisions]), dtype=torch.float32)

    @property
    def meta_actions(self) -> list[tuple[str, str] | None]:
        return [(d.lateral, d.longitudinal) if d is not None else None for d in self.decisions]

    @property
    def texts(self) -> list[str]:
        return [d.text() if d is not None else "<unparseable>" for d in self.decisions]

    @property
    def parse_failures(self) -> int:
        return sum(d is None for d in self.decisions)

    def describe(self) -> list[str]:
        return [f"{c.env}, {c.speed:.1f} m/s, nav {c.nav}: {text}" for c, text in zip(self.contexts, self.texts)]

    def save(self, out_dir: Path, name: str = "plans.json") -> Path:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / name
        path.write_text(json.dumps([{"context": vars(c), "decision": text} for c, text in zip(self.contexts, self.texts)],
                                   indent=1))
        return path


ZOOM = 4  # a saved frame's pixels per simulator frame pixel


def draw_plan(frame: np.ndarray, context: Context, decision: Decision | None, zoom: int = ZOOM):
    """The frame enlarged ``zoom`` times with the plan's six waypoints as dots (yellow near, red far; none
    for an unparseable plan) and its meta-action written in the corner; a PIL image."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.asarray(frame)).resize((frame.shape[1] * zoom, frame.shape[0] * zoom), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    if decision is not None:
        for k, (col, row) in enumerate(to_pixels(context.env, decision.waypoints, context.heading) * zoom):
            r = 2 + k // 2
            draw.ellipse([col - r, row - r, col + r, row + r], fill=(255, 200 - 30 * k, 0))
        label = f"{decision.lateral}/{decision.longitudinal}"
    else:
        label = "unparseable"
    draw.text((4, 2), f"{context.env} {context.speed:.0f} m/s {label}", fill=(255, 255, 255))
    return image


@dataclass
class EpisodeOutput:
    """A closed-loop episode driven by the planner: every step's frame, context and decision."""
    env: str
    seed: int
    frames: list[np.ndarray]
    contexts: list[Context]
    decisions: list[Decision | None]
    crashed: bool
    distance: float
    nfe: int  # per decision
    seconds: float

    def describe(self) -> list[str]:
        end = "crashed" if self.crashed else "no crash"
        lines = [f"{self.env} episode {self.seed}: {len(self.frames)} decisions, {self.distance:.0f} m, {end}"]
        return lines + [f"step {i}: {d.text() if d else '<unparseable>'}" for i, d in enumerate(self.decisions[:3])]

    def save(self, out_dir: Path, strip: int = 6) -> Path:
        """episode.gif (every step, 2 frames a second as driven) and episode.png (``strip`` steps evenly
        spaced, side by side)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        images = [draw_plan(f, c, d) for f, c, d in zip(self.frames, self.contexts, self.decisions)]
        images[0].save(out_dir / "episode.gif", save_all=True, append_images=images[1:], duration=500, loop=0)
        from PIL import Image

        picks = np.linspace(0, len(images) - 1, min(strip, len(images))).round().astype(int)
        width, height = images[0].size
        canvas = Image.new("RGB", (len(picks) * (width + 4) - 4, height), (255, 255, 255))
        for slot, i in enumerate(picks):
            canvas.paste(images[i], (slot * (width + 4), 0))
        path = out_dir / "episode.png"
        canvas.save(path)
        return path


def check_frames(frames) -> torch.Tensor:
    """(B, 64, 64, 3) uint8 frames, a tensor or an array, as a tensor; anything else is refused by name."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"frames: expected a (B, 64, 64, 3) uint8 array or tensor, got {type(frames).__name__}")
    if frames.dim() == 3:
        frames = frames[None]
    if tuple(frames.shape[1:]) != FRAME_SHAPE or frames.dtype != torch.uint8:
        raise ValueError(f"frames: expected shape (B, {', '.join(map(str, FRAME_SHAPE))}) uint8, got "
                         f"{tuple(frames.shape)} {frames.dtype}")
    check_int("batch_size", frames.shape[0], low=1, high=MAX_BATCH)
    return frames


def check_contexts(context, batch: int) -> list[Context]:
    """One Context (or dict of its fields) per frame."""
    if isinstance(context, (Context, dict)):
        context = [context]
    if not isinstance(context, (list, tuple)):
        raise ValueError(f"context: expected a list of Context objects or dicts, got {type(context).__name__}")
    items = list(context)
    if len(items) != batch:
        raise ValueError(f"context: {len(items)} contexts for {batch} frames")
    out = []
    for item in items:
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"env", "speed", "heading", "nav"})
            if unknown or not {"env", "speed", "heading"} <= set(item):
                raise ValueError(f"context: expected the keys env, speed, heading (and nav); got {sorted(item)}")
            item = Context(**item)
        if not isinstance(item, Context):
            raise ValueError(f"context: expected Context objects or dicts, got {type(item).__name__}")
        out.append(item.validate())
    return out


class ViladPipeline(Pipeline):
    """``pipe(frames=..., context=..., steps=1, generator=g)`` -> PlanOutput (waypoints, meta-actions,
    texts, nfe): the masked planner, ``steps`` passes over the 14 slots (1 .. 14; 1 .. 3 with the
    codebook codec), committing the ``policy``'s choice first; ``block_length`` (a divisor of the
    slots, at most ``steps`` blocks) decodes blocks left to right, all slots at once by default.

    ``pipe(scene="roundabout", scene_seed=100000)`` instead drives one closed-loop episode of that
    highway-env scenario (models/vilad/closed_loop.py; needs the ``driving`` extra) -> EpisodeOutput,
    whose ``save`` writes a GIF and a PNG strip with the plans drawn on the frames."""

    settings = ("steps", "policy", "temperature")
    default_task = "vilad_open_loop"

    def __init__(self, net, meta=None, **pipeline_kwargs):
        super().__init__(net.eval(), meta=meta, **pipeline_kwargs)

    @torch.no_grad()
    def __call__(self, frames=None, context=None, steps: int | None = None, policy: str | None = None,
                 temperature: float | None = None, constrained: bool = True, scene: str | None = None,
                 scene_seed: int = 100_000, generator=None, block_length: int | None = None
                 ) -> PlanOutput | EpisodeOutput:
        def decode_with(tokens, frames, temperature):
            n = check_int("steps", self.setting("steps", steps), low=1, high=len(template(self.net.waypoint_codec)))
            order = check_choice("policy", self.setting("policy", policy), POLICIES)
            # block_length is checked by the sampler (a divisor of the slots, no more blocks than passes)
            return masked_plan(self.net, tokens, frames, n, order, temperature, constrained, generator, block_length)

        if scene is not None:
            return self.drive(scene, scene_seed, frames, context,
                              lambda f, c: self(f, c, steps, policy, temperature, constrained, generator=generator,
                                                block_length=block_length))
        return self.plan(frames, context, temperature, constrained, decode_with)

    def plan(self, frames, context, temperature, constrained, decode_with) -> PlanOutput:
        """Checks the inputs, decodes with ``decode_with(context tokens, frames, temperature)``, parses."""
        if frames is None or context is None:
            raise ValueError("frames and context: both are needed (or a scene to drive)")
        frames = check_frames(frames)
        contexts = check_contexts(context, frames.shape[0])
        temperature = check_float("temperature", self.setting("temperature", temperature), low=0.0)
        check_bool("constrained", constrained)
        tokens = torch.tensor([c.tokens() for c in contexts], device=self.device)
        start = time.perf_counter()
        out = decode_with(tokens, frames.to(self.device), temperature)
        seconds = time.perf_counter() - start
        decisions = [parse_decision(row, self.net.waypoint_codec) for row in out.generated.cpu()]
        return PlanOutput(decisions, out.tokens.cpu(), out.nfe, seconds, contexts)

    def drive(self, scene, scene_seed, frames, context, plan_fn) -> EpisodeOutput:
        """One closed-loop episode of ``scene`` with ``plan_fn(frames, contexts) -> PlanOutput``."""
        from models.vilad.closed_loop import drive

        if frames is not None or context is not None:
            raise ValueError("scene: give a scene to drive, or frames and context to plan for, not both")
        check_choice("scene", scene, ENVS)
        scene_seed = check_int("scene_seed", scene_seed, low=0)
        nfe = []

        def plan(frames, contexts):
            out = plan_fn(frames, contexts)
            nfe.append(out.nfe)
            return out.decisions

        start = time.perf_counter()
        result = drive(scene, [scene_seed], plan, record=True)[0]
        return EpisodeOutput(scene, scene_seed, result["frames"], result["contexts"], result["decisions"],
                             result["crashed"], result["distance"], max(nfe, default=0), time.perf_counter() - start)


class ViladARPipeline(ViladPipeline):
    """The AR baseline: ``pipe(frames=..., context=..., generator=g)``, one slot a pass (14 passes)."""

    settings = ("temperature",)

    @torch.no_grad()
    def __call__(self, frames=None, context=None, temperature: float | None = None, constrained: bool = True,
                 scene: str | None = None, scene_seed: int = 100_000, generator=None) -> PlanOutput | EpisodeOutput:
        def decode_with(tokens, frames, temperature):
            return ar_plan(self.net, tokens, frames, temperature, constrained, generator)

        if scene is not None:
            return self.drive(scene, scene_seed, frames, context,
                              lambda f, c: self(f, c, temperature, constrained, generator=generator))
        return self.plan(frames, context, temperature, constrained, decode_with)
