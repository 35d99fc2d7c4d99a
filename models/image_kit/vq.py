"""A small VQ autoencoder in the LlamaGen manner: a conv encoder, an l2-normalised low-dimensional
codebook looked up by cosine similarity, a commitment loss, a conv decoder.

Scaled down for 28x28 digits: two stride-2 stages give a 7x7 grid (49 tokens). No GAN or perceptual
loss: no pretrained perceptual network exists offline, so reconstruction is plain MSE.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.objectives.base import LossOutput


def conv_stack(channels: list[int], down: bool) -> list[nn.Module]:
    """Stride-2 (transposed when not ``down``) 4x4 convs between consecutive channel counts, each
    followed by a 3x3 conv; GELU after each."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        resample = (nn.Conv2d(c_in, c_out, 4, 2, 1) if down else nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
        layers += [resample, nn.GELU(), nn.Conv2d(c_out, c_out, 3, 1, 1), nn.GELU()]
    return layers


class VQAutoencoder(nn.Module):
    """Args:
        in_channels: image channels.
        width: channels of the first stage; each further stage doubles it (capped at 4x).
        downsample: stride-2 stages; the grid is (H / 2^d, W / 2^d).
        codebook_size, code_dim: K codes of dimension D (l2-normalised, as in LlamaGen).
    """

    def __init__(self, in_channels: int = 1, width: int = 32, downsample: int = 2, codebook_size: int = 256,
                 code_dim: int = 8):
        super().__init__()
        self.downsample, self.codebook_size, self.code_dim = downsample, codebook_size, code_dim
        chans = [width * min(2 ** i, 4) for i in range(downsample + 1)]
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, chans[0], 3, 1, 1), nn.GELU(),
                                     *conv_stack(chans, down=True), nn.Conv2d(chans[-1], code_dim, 1))
        self.decoder = nn.Sequential(nn.Conv2d(code_dim, chans[-1], 3, 1, 1), nn.GELU(),
                                     *conv_stack(chans[::-1], down=False), nn.Conv2d(chans[0], in_channels, 3, 1, 1))
        self.codebook = nn.Embedding(codebook_size, code_dim)
        nn.init.normal_(self.codebook.weight)

    # The straight-through forward pass sends no gradient to the codes; VQLoss's codebook term trains them.
    trained_outside_forward = ("codebook.weight",)

    def normalized_codebook(self) -> torch.Tensor:
        """The codes as unit vectors (K, D): the embedding space the tokens live in."""
        return F.normalize(self.codebook.weight, dim=-1)

    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> unit latents (B, D, h, w)."""
        return F.normalize(self.encoder(images * 2 - 1), dim=1)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit latents (B, D, h, w) -> (codes (B, h, w), code vectors (B, D, h, w), latents moved onto
        their codes with a straight-through gradient (B, D, h, w))."""
        codebook = self.normalized_codebook()
        codes = torch.einsum("bdhw,kd->bhwk", z, codebook).argmax(-1)  # nearest by cosine
        zq = codebook[codes].permute(0, 3, 1, 2)
        return codes, zq, z + (zq - z).detach()

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> token grid (B, h, w)."""
        return self.quantize(self.encode_latents(images))[0]

    def decode_vectors(self, zq: torch.Tensor) -> torch.Tensor:
        """Code vectors (B, D, h, w) -> images (B, C, H, W), unclamped."""
        return self.decoder(zq)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Token grid (B, h, w) -> images (B, C, H, W) clamped to [0, 1]."""
        zq = self.normalized_codebook()[codes].permute(0, 3, 1, 2)
        return self.decode_vectors(zq).clamp(0, 1)

    def forward(self, images: torch.Tensor, t=None, cond=None) -> torch.Tensor:
        """Reconstruction through the quantiser (straight-through), (B, C, H, W)."""
        return self.decode_vectors(self.quantize(self.encode_latents(images))[2])


class VQLoss:
    """MSE reconstruction + codebook loss |sg(z) - c|^2 + beta * commitment |z - sg(c)|^2.

    Args:
        beta: commitment weight (0.25, as in VQ-VAE and LlamaGen).
    """

    def __init__(self, beta: float = 0.25):
        self.beta = beta

    def loss(self, net: VQAutoencoder, x1: torch.Tensor, cond=None, generator=None) -> LossOutput:
        z = net.encode_latents(x1)
        codes, zq, z_st = net.quantize(z)
        mse = F.mse_loss(net.decode_vectors(z_st), x1)
        codebook_loss = F.mse_loss(zq, z.detach())
        commitment = F.mse_loss(z, zq.detach())
        usage = codes.unique().numel() / net.codebook_size
        return LossOutput(mse + codebook_loss + self.beta * commitment,
                          {"mse": mse.detach(), "commitment": commitment.detach(),
                           "batch_code_usage": torch.tensor(usage)})

    @torch.no_grad()
    def evaluate(self, net: VQAutoencoder, dataloader, **unused) -> dict:
        """Reconstruction MSE (pixels in [0, 1], after clamping) and codebook usage over a split."""
        sq_err, pixels, counts = 0.0, 0, torch.zeros(net.codebook_size)
        for batch in dataloader:
            x = batch["x1"]
            codes = net.encode(x)
            sq_err += (net.decode(codes) - x).square().sum().item()
            pixels += x.numel()
            counts += torch.bincount(codes.flatten(), minlength=net.codebook_size).float()
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        return {"recon_mse": sq_err / pixels, "code_usage": (counts > 0).float().mean().item(),
                "code_perplexity": entropy.exp().item(), "tokens_per_image": int(codes[0].numel())}
