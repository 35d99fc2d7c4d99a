"""What an autoregressive unit X is: a partition of a latent grid into an ordered list of entities.

Every partition maps a latent (B, C, H, W) to a token sequence (B, N, C) laid out entity by entity and
back, and says which entity each token belongs to (``token_entity``) and which position embedding it
takes (``token_slot``). The block-causal mask follows: a token attends to every token of its own
entity and of the entities before it.

    token        N = H*W entities of one latent each, raster order (next-token AR, continuous)
    cell k       (H/k)*(W/k) entities of k x k neighbouring latents (xAR's default X)
    subsample s  s*s entities, each the strided grid latent[i::s, j::s] (a dilated, image-wide X)
    scale        the latent area-downsampled to 1, 2, 4, ... H (VAR's next scale); N = 1 + 4 + ... + H*W
    image        one entity: the whole latent (no AR at all: a DiT)

For every partition but ``scale`` the tokens are a permutation of the latent's positions. ``scale``
holds the pyramid; ``from_tokens`` returns its finest level, which is the latent itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("token", "cell", "subsample", "scale", "image")


class Partition:
    """A partition of an (H, W) = (grid, grid) latent.

    Args:
        kind: one of KINDS.
        grid: the latent's side.
        size: the cell side (``cell``) or the stride (``subsample``); ignored by the others.
    """

    def __init__(self, kind: str, grid: int, size: int = 1):
        if kind not in KINDS:
            raise ValueError(f"unknown X type {kind!r}; choose one of {KINDS}")
        if not isinstance(grid, int) or grid < 1:
            raise ValueError(f"grid={grid!r} must be a positive integer")
        if kind in ("cell", "subsample") and (not isinstance(size, int) or size < 1 or grid % size):
            raise ValueError(f"{kind} size {size!r} must be a positive integer that divides the latent side {grid}")
        if kind == "scale" and grid & (grid - 1):
            raise ValueError(f"the scale partition needs a power-of-two latent side, not {grid}")
        self.kind, self.grid, self.size = kind, grid, size
        rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        if kind == "scale":
            self.sides = [2 ** k for k in range(grid.bit_length())]  # 1, 2, 4, ..., grid
            counts = [s * s for s in self.sides]
            self.token_entity = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
            self.token_slot = torch.arange(sum(counts))  # each level has its own embeddings
            self.order = None
        else:
            if kind == "token":
                entity = rows * grid + cols
            elif kind == "cell":
                entity = (rows // size) * (grid // size) + cols // size
            elif kind == "subsample":
                entity = (rows % size) * size + cols % size
            else:
                entity = torch.zeros_like(rows)
            # stable sort: by entity, raster order inside an entity
            self.order = torch.sort(entity.flatten(), stable=True).indices  # (N,) flat latent positions
            self.token_entity = entity.flatten()[self.order]
            self.token_slot = self.order
        self.num_entities = int(self.token_entity.max()) + 1
        self.num_tokens = len(self.token_entity)
        self.num_slots = int(self.token_slot.max()) + 1
        bounds = torch.searchsorted(self.token_entity, torch.arange(self.num_entities + 1))
        self.entity_bounds = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]  # token ranges

    def __repr__(self) -> str:
        size = f", size={self.size}" if self.kind in ("cell", "subsample") else ""
        return f"Partition({self.kind!r}, grid={self.grid}{size}: {self.num_entities} entities, {self.num_tokens} tokens)"

    def to_tokens(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, C), entity by entity."""
        if latent.shape[-2:] != (self.grid, self.grid):
            raise ValueError(f"latent of side {tuple(latent.shape[-2:])}; this partition is for {self.grid}")
        if self.kind == "scale":
            levels = [F.adaptive_avg_pool2d(latent, s) if s < self.grid else latent for s in self.sides]
            return torch.cat([lv.flatten(2).transpose(1, 2) for lv in levels], 1)
        return latent.flatten(2).transpose(1, 2)[:, self.order.to(latent.device)]

    def from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, C, H, W): the inverse permutation, or the finest scale."""
        b, n, c = tokens.shape
        if n != self.num_tokens:
            raise ValueError(f"{n} tokens; this partition has {self.num_tokens}")
        if self.kind == "scale":
            flat = tokens[:, -self.grid * self.grid:]
        else:
            flat = torch.empty_like(tokens)
            flat[:, self.order.to(tokens.device)] = tokens
        return flat.transpose(1, 2).reshape(b, c, self.grid, self.grid)

    def block_causal_mask(self, device=None) -> torch.Tensor:
        """(N, N) bool, True = may attend: key entity <= query entity."""
        e = self.token_entity.to(device)
        return e[:, None] >= e[None, :]

    def teacher_forcing_mask(self, device=None) -> torch.Tensor:
        """(2N, 2N) bool over [clean tokens, noisy tokens]: clean tokens are block-causal among
        themselves; a noisy token sees the clean tokens of earlier entities and the noisy tokens of its
        own entity, never another noisy entity. The training mask without noisy context."""
        e = self.token_entity.to(device)
        n = len(e)
        mask = torch.zeros(2 * n, 2 * n, dtype=torch.bool, device=device)
        mask[:n, :n] = e[:, None] >= e[None, :]
        mask[n:, :n] = e[:, None] > e[None, :]
        mask[n:, n:] = e[:, None] == e[None, :]
        return mask
