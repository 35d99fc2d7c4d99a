"""The token layout of the driving planner (ViLaD): a text context and a decision template, one small
vocabulary, no simulator import (the pipeline ships with this codec alone).

A sample is 4 context tokens followed by 14 decision tokens:

    context:  env  speed  heading  nav
    decision: lateral  longitudinal  x1 y1  x2 y2 ... x6 y6

Every position has a slot type, and a slot type owns one contiguous range of the vocabulary, so the
decision is parsed slot by slot: a token outside its slot's range is a parse failure. Waypoints are the
ego's future positions in its own frame at 0.5 s, 1.0 s, ... 3.0 s (x forward, y to the right in the
simulator's screen coordinates). Two waypoint codecs:

- ``grid`` (the shipped planners): each coordinate its own slot, quantised to 0.5 m (x) and 0.25 m
  (y), bins centred on multiples of the step (a straight path decodes to y = 0 exactly);
- ``codebook``: the whole six-point path as one token, the nearest of PATH_CODES paths found by
  k-means on the training split's paths (a planning vocabulary, as ViLaD's follow-up work does):

    decision: lateral  longitudinal  path

The codebook ships beside this file (driving_paths.safetensors; ``python -m datamodules.highway
--fit-paths`` remakes it). Path tokens come last in the vocabulary, so a grid planner's vocabulary
(GRID_VOCAB_SIZE) is the same as before the codebook existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

PAD, MASK, BOS = "<pad>", "<mask>", "<bos>"
ENVS = ("highway", "merge", "roundabout", "intersection")
NAVS = ("none", "left", "straight", "right")
LATERAL = ("keep", "left", "right")
LONGITUDINAL = ("keep", "accelerate", "decelerate")
SPEED_STEP, SPEED_BINS = 2.0, 20          # m/s per bin: [0, 2), [2, 4), ... 40 m/s
HEADING_BINS = 16
X_MIN, X_STEP, X_BINS = -10.0, 0.5, 200   # bin centres -10 .. 89.5 m ahead
Y_MIN, Y_STEP, Y_BINS = -25.0, 0.25, 200  # bin centres -25 .. 24.75 m to the side
HORIZON, DT = 6, 0.5                      # six waypoints, 0.5 s apart: 3 s
PATH_CODES = 256                          # the codebook codec's paths (k-means centres)
PATHS_FILE = Path(__file__).with_name("driving_paths.safetensors")
FRAME_SHAPE = (64, 64, 3)                 # the bird's-eye frame, RGB uint8
# Frame pixels per metre: 1.5 shows 30 m ahead of the ego and 13 m behind; below it the renderer's car
# outlines leave no pixel for the fill colour, so the ego (green) looks like any other car (blue).
SCALING = {"highway": 1.5, "merge": 1.5, "roundabout": 1.5, "intersection": 1.5}
CENTERING = (0.3, 0.5)                    # where the ego sits in the frame, as shares of its width, height

# Slot types in vocabulary order; each owns a contiguous id range after the three special tokens.
SLOT_SIZES = {"special": 3, "env": len(ENVS), "speed": SPEED_BINS, "heading": HEADING_BINS, "nav": len(NAVS),
              "lateral": len(LATERAL), "longitudinal": len(LONGITUDINAL), "x": X_BINS, "y": Y_BINS,
              "path": PATH_CODES}
OFFSETS = dict(zip(SLOT_SIZES, np.cumsum([0, *SLOT_SIZES.values()])[:-1].tolist()))
VOCAB_SIZE = int(sum(SLOT_SIZES.values()))
PAD_ID, MASK_ID, BOS_ID = 0, 1, 2
CONTEXT_SLOTS = ("env", "speed", "heading", "nav")
DECISION_SLOTS = ("lateral", "longitudinal", *(["x", "y"] * HORIZON))
CONTEXT_LEN, DECISION_LEN = len(CONTEXT_SLOTS), len(DECISION_SLOTS)
TEMPLATES = {"grid": DECISION_SLOTS, "codebook": ("lateral", "longitudinal", "path")}  # waypoint codec -> slots
GRID_VOCAB_SIZE = OFFSETS["path"]  # 453: the grid codec's ids (no path tokens)


def template(codec: str) -> tuple[str, ...]:
    """The decision slots of a waypoint codec, ``grid`` or ``codebook``."""
    if codec not in TEMPLATES:
        raise ValueError(f"waypoint_codec={codec!r} is unknown; choose one of {list(TEMPLATES)}")
    return TEMPLATES[codec]


def slots_vocab_size(slots: tuple[str, ...]) -> int:
    """The smallest vocabulary that holds the slots' ids (path ids come last)."""
    return VOCAB_SIZE if "path" in slots else GRID_VOCAB_SIZE


def codec_vocab_size(codec: str) -> int:
    """The vocabulary a planner with this waypoint codec needs."""
    return slots_vocab_size(template(codec))


@lru_cache(maxsize=1)
def path_codebook() -> torch.Tensor:
    """(PATH_CODES, HORIZON, 2) float32 metres: the codebook codec's paths (from PATHS_FILE)."""
    from safetensors.torch import load_file

    if not PATHS_FILE.is_file():
        raise FileNotFoundError(f"{PATHS_FILE} is missing; make it with: python -m datamodules.highway --fit-paths")
    paths = load_file(PATHS_FILE)["paths"]
    if tuple(paths.shape) != (PATH_CODES, HORIZON, 2):
        raise ValueError(f"{PATHS_FILE}: expected paths of shape {(PATH_CODES, HORIZON, 2)}, got {tuple(paths.shape)}")
    return paths


def nearest_path(waypoints: np.ndarray, paths: torch.Tensor) -> np.ndarray:
    """waypoints (N, HORIZON, 2), paths (K, HORIZON, 2) -> (N,) the index of the nearest path (summed
    squared distance over the points)."""
    flat = torch.as_tensor(np.asarray(waypoints, np.float32)).reshape(len(waypoints), -1)
    out = [torch.cdist(chunk, paths.reshape(len(paths), -1)).argmin(1) for chunk in flat.split(4096)]
    return (torch.cat(out) if out else torch.zeros(0, dtype=torch.long)).numpy()


def fit_path_codebook(waypoints: np.ndarray, codes: int = PATH_CODES, iterations: int = 50, seed: int = 0) -> torch.Tensor:
    """k-means (k-means++ start, Lloyd steps) over paths (N, HORIZON, 2) -> (codes, HORIZON, 2) centres;
    an emptied cluster restarts at the path farthest from its centre."""
    x = torch.as_tensor(np.asarray(waypoints, np.float32)).reshape(len(waypoints), -1)
    if len(x) < codes:
        raise ValueError(f"waypoints: {len(x)} paths cannot make {codes} codes")
    g = torch.Generator().manual_seed(seed)
    centres = x[torch.randint(len(x), (1,), generator=g)]
    for _ in range(codes - 1):  # k-means++: the next centre drawn by squared distance to the nearest one
        d2 = torch.cdist(x, centres).min(1).values ** 2
        centres = torch.cat([centres, x[torch.multinomial(d2 / d2.sum(), 1, generator=g)]])
    for _ in range(iterations):
        dist = torch.cdist(x, centres)
        assign = dist.argmin(1)
        counts = torch.bincount(assign, minlength=codes)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        new = sums / counts.clamp(min=1)[:, None]
        worst = dist.gather(1, assign[:, None])[:, 0].argsort(descending=True)
        empty = (counts == 0).nonzero()[:, 0]
        new[empty] = x[worst[:len(empty)]]
        if torch.equal(new, centres):
            break
        centres = new
    return centres.reshape(codes, HORIZON, 2)


def special_id(token: str) -> int:
    """The id of PAD, MASK or BOS (for the YAMLs: an objective's mask id is never written by hand)."""
    return {PAD: PAD_ID, MASK: MASK_ID, BOS: BOS_ID}[token]


def slot_ranges(slots: tuple[str, ...]) -> torch.Tensor:
    """(len(slots), 2) long: each slot's [first, last + 1) vocabulary ids."""
    return torch.tensor([[OFFSETS[s], OFFSETS[s] + SLOT_SIZES[s]] for s in slots])


def slot_logit_mask(slots: tuple[str, ...] = DECISION_SLOTS, vocab: int | None = None) -> torch.Tensor:
    """(len(slots), vocab) bool: True where a token may stand in the slot (the template constraint);
    ``vocab`` defaults to the smallest vocabulary that holds the slots' ids."""
    ids = torch.arange(vocab or slots_vocab_size(slots))
    ranges = slot_ranges(slots)
    return (ids[None] >= ranges[:, :1]) & (ids[None] < ranges[:, 1:])


def bin_index(value: np.ndarray, low: float, step: float, bins: int) -> np.ndarray:
    """The nearest of ``bins`` centres low, low + step, ...; values outside clip to the end bins."""
    return np.clip(np.round((np.asarray(value, dtype=np.float64) - low) / step), 0, bins - 1).astype(np.int64)


def heading_bin(heading) -> np.ndarray:
    """Heading in radians -> one of HEADING_BINS sectors, sector 0 centred on heading 0."""
    turns = (np.asarray(heading, dtype=np.float64) / (2 * np.pi) + 0.5 / HEADING_BINS) % 1.0
    return np.minimum((turns * HEADING_BINS).astype(np.int64), HEADING_BINS - 1)


@dataclass
class Context:
    """What the planner is told besides the frame: the scenario, the ego's speed (m/s) and heading
    (radians, the simulator's), and a navigation command (``none`` where the scene has no route)."""
    env: str
    speed: float
    heading: float
    nav: str = "none"

    def validate(self) -> "Context":
        if self.env not in ENVS:
            raise ValueError(f"context env={self.env!r} is unknown; choose one of {list(ENVS)}")
        if self.nav not in NAVS:
            raise ValueError(f"context nav={self.nav!r} is unknown; choose one of {list(NAVS)}")
        for name in ("speed", "heading"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"context {name}={value!r} must be a finite number")
        return self

    def tokens(self) -> list[int]:
        return [OFFSETS["env"] + ENVS.index(self.env),
                OFFSETS["speed"] + int(bin_index(self.speed, SPEED_STEP / 2, SPEED_STEP, SPEED_BINS)),
                OFFSETS["heading"] + int(heading_bin(self.heading)),
                OFFSETS["nav"] + NAVS.index(self.nav)]


def to_pixels(env: str, points: np.ndarray, heading: float) -> np.ndarray:
    """Ego-frame points (..., 2) in metres -> (column, row) in the frame, which is drawn in world axes
    (not turned with the ego): the points are rotated back by ``heading``, then scaled and placed
    around the ego's spot."""
    c, s = np.cos(heading), np.sin(heading)
    world = np.stack([c * points[..., 0] - s * points[..., 1], s * points[..., 0] + c * points[..., 1]], -1)
    return world * SCALING[env] + np.array([CENTERING[0] * FRAME_SHAPE[1], CENTERING[1] * FRAME_SHAPE[0]])


def encode_decision(lateral: np.ndarray, longitudinal: np.ndarray, waypoints: np.ndarray, codec: str = "grid"
                    ) -> np.ndarray:
    """lateral, longitudinal (N,) class indices, waypoints (N, HORIZON, 2) metres -> (N, len(template(codec)))."""
    n = len(lateral)
    out = np.empty((n, len(template(codec))), dtype=np.int64)
    out[:, 0] = OFFSETS["lateral"] + np.asarray(lateral)
    out[:, 1] = OFFSETS["longitudinal"] + np.asarray(longitudinal)
    if codec == "codebook":
        out[:, 2] = OFFSETS["path"] + nearest_path(waypoints, path_codebook())
        return out
    out[:, 2::2] = OFFSETS["x"] + bin_index(waypoints[..., 0], X_MIN, X_STEP, X_BINS)
    out[:, 3::2] = OFFSETS["y"] + bin_index(waypoints[..., 1], Y_MIN, Y_STEP, Y_BINS)
    return out


@dataclass
class Decision:
    lateral: str
    longitudinal: str
    waypoints: np.ndarray  # (HORIZON, 2) metres, ego frame, bin centres (grid) or a codebook path

    def text(self) -> str:
        points = " ".join(f"({x:.1f}, {y:.2f})" for x, y in self.waypoints)
        return f"lateral: {self.lateral}; longitudinal: {self.longitudinal}; waypoints: {points}"


def parse_decision(tokens, codec: str = "grid") -> Decision | None:
    """(len(template(codec)),) ids -> the decision, or None when a slot holds a token of another type."""
    tokens = [int(t) for t in tokens]
    slots = template(codec)
    if len(tokens) != len(slots):
        return None
    values = []
    for slot, token in zip(slots, tokens):
        index = token - OFFSETS[slot]
        if not 0 <= index < SLOT_SIZES[slot]:
            return None
        values.append(index)
    if codec == "codebook":
        return Decision(LATERAL[values[0]], LONGITUDINAL[values[1]], path_codebook()[values[2]].numpy().astype(np.float64))
    xs = X_MIN + np.array(values[2::2]) * X_STEP
    ys = Y_MIN + np.array(values[3::2]) * Y_STEP
    return Decision(LATERAL[values[0]], LONGITUDINAL[values[1]], np.stack([xs, ys], 1))
