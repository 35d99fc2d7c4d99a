"""The one-step student: the teacher's transformer fed noise instead of tokens.

Input position j (0..L-1) is where the teacher would read [class, x_0, .., x_{L-2}][j] and predict
x_j. The student adds, at every position, a projection of the noise vector eps_j of the token it
predicts, so with causal attention output j sees eps_0..eps_j: exactly what the teacher-plus-flow-map
pair (x_j depends on the noise up to j) depends on. Positions whose previous token is already known
(the kept prefix of a two-step run) read that token's embedding and a "data" flag; the others read a
learned "unknown" vector and a "noise" flag. New inputs start at zero, so a student initialised from
the teacher starts as the teacher reading unknown tokens.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.image_kit.network import ImageARTransformer


class DistilledStudent(ImageARTransformer):
    """Args: those of ImageARTransformer, plus
        code_dim: D, the dimension of the tokenizer's codebook (the noise lives in that space).
    """

    def __init__(self, num_codes: int, num_classes: int, seq_len: int, dim: int, depth: int, num_heads: int,
                 code_dim: int, mlp_ratio: float = 4.0):
        super().__init__(num_codes, num_classes, seq_len, dim, depth, num_heads, mlp_ratio)
        self.code_dim = code_dim
        self.noise_proj = nn.Linear(code_dim, dim)
        self.flag_emb = nn.Embedding(2, dim)  # 0: the previous token is unknown (noise), 1: known (data)
        self.unknown = nn.Parameter(torch.zeros(dim))
        # The tokenizer's unit codebook (K, D): the targets of the regression ("l2") loss, and how its
        # predictions become tokens. Filled from the tokenizer by init_student; saved with the weights.
        self.register_buffer("codebook", torch.zeros(num_codes, code_dim))
        for module in (self.noise_proj, self.flag_emb):
            nn.init.zeros_(module.weight)
        nn.init.zeros_(self.noise_proj.bias)

    def hidden(self, noise: torch.Tensor, cond: torch.Tensor | None, known: torch.Tensor | None = None,
               num_known: torch.Tensor | int = 0) -> torch.Tensor:
        """noise (B, L, D), labels (B,), known tokens (B, L) of which the first num_known (int or (B,))
        per row are kept -> hidden states (B, L, dim); row j predicts token j."""
        b, l, _ = noise.shape
        if l != self.seq_len:
            raise ValueError(f"noise has {l} positions; the student makes {self.seq_len}")
        num_known = torch.as_tensor(num_known, device=noise.device).expand(b)
        prev_known = torch.arange(l - 1, device=noise.device)[None] < num_known[:, None]  # (B, L-1): x_0..x_{L-2}
        if known is None:
            if prev_known.any():
                raise ValueError("num_known > 0 needs the known tokens")
            prev = self.unknown.expand(b, l - 1, -1)
        else:
            prev = torch.where(prev_known[..., None], self.tok_emb(known[:, :-1]), self.unknown)
        flags = torch.cat([torch.ones(b, 1, dtype=torch.long, device=noise.device), prev_known.long()], 1)
        h = torch.cat([self.class_embedding(cond, b, noise.device), prev], 1)  # (B, L, dim)
        h = h + self.flag_emb(flags) + self.noise_proj(noise.to(h.dtype))
        return self.trunk(h)

    def forward(self, noise: torch.Tensor, t=None, cond: torch.Tensor | None = None,
                known: torch.Tensor | None = None, num_known: torch.Tensor | int = 0) -> torch.Tensor:
        """Token logits (B, L, K) from noise (B, L, D): every token in one pass."""
        return self.head(self.hidden(noise, cond, known, num_known))

    def expected_code(self, logits: torch.Tensor) -> torch.Tensor:
        """The code vector the logits (B, L, K) predict on average, sum_k p_k c_k: (B, L, D). The
        regression ("l2") loss pulls it onto the pair's code; its nearest code is its token."""
        return torch.softmax(logits.float(), -1) @ self.codebook

    def nearest_code(self, vectors: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L) of the codes nearest to vectors (B, L, D)."""
        return torch.cdist(vectors, self.codebook[None].expand(vectors.shape[0], -1, -1)).argmin(-1)


class MarginalTable(nn.Module):
    """Naive parallel sampling's model: independent per-position token distributions given the class,
    logits (C, L, K), fitted by maximum likelihood to the teacher's samples (the per-class marginals).
    """

    def __init__(self, num_codes: int, num_classes: int, seq_len: int):
        super().__init__()
        self.num_codes, self.num_classes, self.seq_len = num_codes, num_classes, seq_len
        self.logits = nn.Parameter(0.01 * torch.randn(num_classes, seq_len, num_codes))

    def forward(self, x: torch.Tensor, t=None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, L, K) for labels cond (B,); x only gives the batch size."""
        if cond is None:
            raise ValueError("the marginal table is class-conditional: give cond")
        return self.logits[cond]
