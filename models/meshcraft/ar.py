"""``meshgpt_ar``: the autoregressive baseline, a causal transformer over the same quantised coordinates.

A mesh is the sequence of its faces' 9 coordinates (MeshGPT/PolyGen order) followed by EOS; the
prefix embedding carries the category and the requested face count (the same conditions MeshCraft
gets), and each token gets a slot embedding (its place 0..8 within a face) besides RoPE. Sampling
decodes one token per network evaluation with a KV cache; EOS is only allowed between faces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.meshcraft.dit import FaceCountEmbedding, check_mesh_cond, drop_mesh_cond
from models.meshcraft.vae import trimmed
from zoo.nn import KVCache, TransformerBlock, causal_blocks, init_gpt_weights
from zoo.objectives.base import LossOutput
from zoo.objectives.autoregressive import bits_per_token, decode
from zoo.objectives.masked_sampling import propose


class MeshGPT(nn.Module):
    """Args:
        levels: coordinate values 0..levels-1; token ``levels`` is EOS.
        num_categories: categories 0..C-1 (C is the null category).
        max_faces: longest mesh; the sequence holds 9 * max_faces tokens + EOS.
        dim, depth, num_heads, mlp_ratio: transformer size.
    """

    def __init__(self, levels: int, num_categories: int, max_faces: int, dim: int, depth: int, num_heads: int,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.levels, self.num_categories, self.max_faces = levels, num_categories, max_faces
        self.eos = levels
        self.seq_len = 9 * max_faces + 1
        self.head_dim = dim // num_heads
        self.tok_emb = nn.Embedding(levels + 1, dim)
        self.slot_emb = nn.Embedding(9, dim)
        self.category_emb = nn.Embedding(num_categories + 1, dim)
        self.count_emb = FaceCountEmbedding(dim, max_faces)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, levels + 1)
        self.apply(init_gpt_weights)

    def prefix(self, cond: torch.Tensor) -> torch.Tensor:
        """cond (B, 2) = (category, face count; C / 0 = none) -> (B, 1, dim)."""
        check_mesh_cond(cond, self.num_categories, self.max_faces)
        return (self.category_emb(cond[:, 0]) + self.count_emb(cond[:, 1]))[:, None]

    def drop_cond(self, cond: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        return drop_mesh_cond(cond, drop, self.num_categories)

    def embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Tokens (B, L) at sequence positions start.. (position 0 is the first coordinate) -> (B, L, dim)."""
        slots = torch.arange(start, start + tokens.shape[1], device=tokens.device) % 9
        return self.tok_emb(tokens) + self.slot_emb(slots)[None]

    def trunk(self, h: torch.Tensor, cache: KVCache | None = None, update_cache: bool = False) -> torch.Tensor:
        return self.norm(causal_blocks(self.blocks, h, self.head_dim, self.seq_len, cache, update_cache))

    def forward(self, x: torch.Tensor, t=None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens x (B, L) -> logits (B, L, levels + 1); logits[:, i] scores x_i given the prefix and x_<i."""
        h = torch.cat([self.prefix(cond), self.embed(x[:, :-1], 0)], 1)
        return self.head(self.trunk(h))


def sequences(x1: torch.Tensor, mask: torch.Tensor, eos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded faces (B, F, 9) + mask -> token rows (B, 9F + 1) with EOS after each mesh's last face,
    and a (B, 9F + 1) mask of the positions that count (coordinates and the one EOS)."""
    b, f = mask.shape
    tokens = torch.cat([x1.long().flatten(1), torch.full((b, 1), eos, device=x1.device)], 1)
    length = 9 * mask.sum(1)  # (B,)
    pos = torch.arange(9 * f + 1, device=x1.device)[None]
    tokens = torch.where(pos < length[:, None], tokens, torch.full_like(tokens, eos))
    return tokens, pos <= length[:, None]


@dataclass
class MeshTokens:
    faces: list  # one (F_i, 9) long tensor per row
    nfe: int


class MeshAR:
    """Next-token prediction over coordinate sequences, conditions dropped with ``cond_drop_prob``."""

    def __init__(self, cond_drop_prob: float = 0.1):
        if not 0 <= cond_drop_prob < 1:
            raise ValueError(f"cond_drop_prob={cond_drop_prob} must lie in [0, 1)")
        self.cond_drop_prob = cond_drop_prob

    def loss(self, net: MeshGPT, x1: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor,
             generator: torch.Generator | None = None) -> LossOutput:
        mask, x1 = trimmed(mask, x1)
        tokens, keep = sequences(x1, mask, net.eos)
        drop = torch.rand(cond.shape[0], generator=generator, device=cond.device) < self.cond_drop_prob
        cond = net.drop_cond(cond, drop)
        logits = net(tokens, None, cond).float()
        ce = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")
        loss = (ce * keep).sum() / keep.sum()
        return LossOutput(loss, {"nll_bpt": loss.detach() / math.log(2)})

    @torch.no_grad()
    def evaluate(self, net: MeshGPT, dataloader, **unused) -> dict:
        """Exact NLL in bits per token (coordinates and EOS) with the conditions given."""
        device = next(net.parameters()).device

        def batches():
            for batch in dataloader:
                mask, x1 = trimmed(batch["mask"].to(device), batch["x1"].to(device))
                tokens, keep = sequences(x1, mask, net.eos)
                yield net(tokens, None, batch["cond"].to(device)), tokens, keep

        return bits_per_token(batches())

    def sample(self, *args, **kwargs):
        """``mesh_ar_sample`` (the sampler lives apart from the loss; this keeps the objective contract)."""
        return mesh_ar_sample(*args, **kwargs)


@torch.no_grad()
def mesh_ar_sample(net: MeshGPT, cond: torch.Tensor, exact_faces: bool = False, temperature: float = 1.0,
                   generator: torch.Generator | None = None) -> MeshTokens:
    """Faces for conditions (B, 2). Free runs stop at EOS (only between faces) or at max_faces;
    ``exact_faces`` suppresses EOS and stops after exactly the requested count (for timing)."""
    requested = cond[:, 1]
    limit = 9 * (int(requested.max()) if exact_faces else net.max_faces)
    cache, fed = KVCache(), 0

    def step(token):  # the condition prefix first, then each coordinate token; (B, V)
        nonlocal fed
        h = net.prefix(cond) if token is None else net.embed(token[:, None], fed)
        fed += token is not None
        return net.head(net.trunk(h, cache, update_cache=True)[:, -1])

    def choose(i, logits):
        if i % 9 or exact_faces:  # EOS only where a face could end
            logits[:, net.eos] = -float("inf")
        return propose(logits, temperature, generator)

    def finished(i, token):  # exact_faces: a row is done once it has its requested faces
        return torch.full_like(token, (i + 1) % 9 == 0, dtype=torch.bool) & ((i + 1) // 9 >= requested)

    out = decode(step, limit, temperature=temperature, generator=generator, choose=choose, eos_id=net.eos,
                 finished=finished if exact_faces else None)
    tokens, nfe = out.tokens, out.nfe  # (B, L)
    faces = []
    for row, n in zip(tokens, requested.tolist()):
        end = int((row == net.eos).nonzero()[0]) if (row == net.eos).any() else len(row)
        end = min(end, 9 * n) if exact_faces else end
        faces.append(row[: end // 9 * 9].view(-1, 9))
    return MeshTokens(faces, nfe)
