"""A small KL autoencoder: 28x28 digits <-> an 8x8 grid of continuous 4-channel latents.

xAR generates continuous latents (a 16x16x16 KL-VAE latent in the paper). Ours is sized so that cells of
2x2 and 4x4 latents, strided subsamples and a 1/2/4/8 scale pyramid all divide the grid: the digit is
padded from 28 to 32 pixels and downsampled twice (conv stages shared with the VQ tokenizer). The
decoder predicts per-pixel logits (binary cross-entropy suits the nearly binary digits better than MSE);
a small KL term keeps the latent smooth, and the decoder sees posterior samples while training, so
it tolerates latents that a generator misses slightly. No GAN or perceptual loss exists offline.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.image_kit.vq import conv_stack
from zoo.objectives.base import LossOutput

PAD = 2  # 28 + 2 * 2 = 32 pixels, a multiple of 4


class KLAutoencoder(nn.Module):
    """Args:
        in_channels: image channels.
        width: channels of the first stage; each further stage doubles it (capped at 4x).
        downsample: stride-2 stages; the latent grid is (32 / 2^d)^2.
        latent_channels: channels of the latent.
    """

    def __init__(self, in_channels: int = 1, width: int = 32, downsample: int = 2, latent_channels: int = 4):
        super().__init__()
        self.downsample, self.latent_channels = downsample, latent_channels
        chans = [width * min(2 ** i, 4) for i in range(downsample + 1)]
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, chans[0], 3, 1, 1), nn.GELU(),
                                     *conv_stack(chans, down=True), nn.Conv2d(chans[-1], 2 * latent_channels, 1))
        self.decoder = nn.Sequential(nn.Conv2d(latent_channels, chans[-1], 3, 1, 1), nn.GELU(),
                                     *conv_stack(chans[::-1], down=False), nn.Conv2d(chans[0], in_channels, 3, 1, 1))

    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, 28, 28) in [0, 1] -> mean and log-variance, (B, latent_channels, h, w) each."""
        x = F.pad(images * 2 - 1, (PAD,) * 4, value=-1.0)  # pad with background
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-20.0, 10.0)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> the posterior mean (B, latent_channels, h, w): the latents generators learn."""
        return self.posterior(images)[0]

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent_channels, h, w) -> pixel logits (B, C, 28, 28)."""
        return self.decoder(z)[..., PAD:-PAD, PAD:-PAD]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> images (B, C, 28, 28) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, images: torch.Tensor, t=None, cond=None) -> torch.Tensor:
        """Reconstruction logits through the posterior mean, (B, C, 28, 28)."""
        return self.decode_logits(self.posterior(images)[0])


class KLAutoencoderLoss:
    """Binary cross-entropy of the pixels (mean) + ``kl_weight`` x KL(q(z|x) || N(0, I)) (mean over
    latent elements), the decoder fed one posterior sample.

    Args:
        kl_weight: weight of the KL term against the per-pixel reconstruction loss.
    """

    def __init__(self, kl_weight: float = 1e-3):
        if kl_weight < 0:
            raise ValueError(f"kl_weight={kl_weight} must be >= 0")
        self.kl_weight = kl_weight

    def loss(self, net: KLAutoencoder, x1: torch.Tensor, cond=None, generator=None) -> LossOutput:
        mean, logvar = net.posterior(x1)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + (0.5 * logvar).exp() * noise
        bce = F.binary_cross_entropy_with_logits(net.decode_logits(z), x1)
        kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).mean()
        return LossOutput(bce + self.kl_weight * kl, {"bce": bce.detach(), "kl": kl.detach()})

    @torch.no_grad()
    def evaluate(self, net: KLAutoencoder, dataloader, classifier: str | None = "digit_cnn-mnist", **unused) -> dict:
        """Reconstruction through the posterior mean over a split: pixel MSE (comparable with the VQ
        tokenizer's recon_mse), and how often the digit classifier reads the reconstruction as the true
        class (beside its accuracy on the originals): the usability measure of a latent."""
        from zoo.pipeline import load

        clf = load(classifier).net.eval() if classifier else None
        sq_err, pixels, right, right_orig, n = 0.0, 0, 0, 0, 0
        latents = []
        for batch in dataloader:
            x, labels = batch["x1"], batch["cond"]
            z = net.encode(x)
            recon = net.decode(z)
            latents.append(z)
            sq_err += (recon - x).square().sum().item()
            pixels += x.numel()
            n += len(x)
            if clf is not None:
                right += (clf(recon).argmax(-1) == labels).sum().item()
                right_orig += (clf(x).argmax(-1) == labels).sum().item()
        z = torch.cat(latents)
        out = {"recon_mse": sq_err / pixels, "latent_shape": list(z.shape[1:]),
               "latent_std": z.std().item()}
        if clf is not None:
            out["recon_class_accuracy"] = right / n
            out["original_class_accuracy"] = right_orig / n
        return out
