"""image_ar: the image models every image domain builds on, registered from the image kit's code
(models/image_kit, which distilled_decoding, xar and meshcraft import too).

- ``vq-mnist``: a VQ tokenizer (image_kit/vq.py), 28x28 digits -> a 7x7 grid of 49 tokens out of 256 codes.
- ``image_ar-mnist``: a class-conditional AR transformer over that grid (image_kit/network.py,
  objective.py), with classifier-free guidance and KV-cache sampling; the teacher that
  distilled_decoding distils.
- ``digit_cnn-mnist``: a CNN classifier, the feature network of the image metrics (image_kit/metrics.py:
  cls-FID, precision/recall, class accuracy), since no Inception weights exist offline.

Both train with ``python recipes/train.py model=vq_mnist`` / ``model=image_ar_mnist``.
"""

import torch

from models.image_kit.classifier import ClassifierLoss, ClassifierPipeline, DigitClassifier
from models.image_kit.network import ImageARTransformer
from models.image_kit.objective import ClassConditionalAR, image_ar_sample
from models.image_kit.pipeline import ImageARPipeline, ImageOutput, TokenImagePipeline, VQPipeline
from models.image_kit.vq import VQAutoencoder, VQLoss
from zoo.registry import Example, register_model, register_task


def vq_example(net: VQAutoencoder, generator: torch.Generator) -> Example:
    side = 4 * 2 ** net.downsample
    x = torch.rand(2, 1, side, side, generator=generator)
    return Example(args=(x,), kwargs={}, out_shape=(2, 1, side, side),
                   sample=lambda n, g: n.decode(torch.randint(0, n.codebook_size, (2, 4, 4), generator=g)))


@register_model("vq-mnist", pipeline=VQPipeline, example=vq_example)
def vq_mnist(width: int = 32, downsample: int = 2, codebook_size: int = 256, code_dim: int = 8) -> VQAutoencoder:
    """28x28 -> 7x7 tokens; 8-d unit codes as in LlamaGen. About 0.3M parameters."""
    return VQAutoencoder(1, width, downsample, codebook_size, code_dim)


def ar_example(net: ImageARTransformer, generator: torch.Generator) -> Example:
    x = torch.randint(0, net.num_codes, (2, net.seq_len), generator=generator)
    labels = torch.tensor([3, 7])
    return Example(args=(x, None, labels), kwargs={}, out_shape=(2, net.seq_len, net.num_codes),
                   sample=lambda n, g: image_ar_sample(n, labels, guidance_scale=2.0, generator=g).tokens)


@register_model("image_ar-mnist", pipeline=ImageARPipeline, example=ar_example)
def image_ar_mnist(num_codes: int = 256, num_classes: int = 10, seq_len: int = 49, dim: int = 128, depth: int = 4,
                   num_heads: int = 4, mlp_ratio: float = 4.0) -> ImageARTransformer:
    """The teacher: raster AR over 7x7 tokens, class prefix. About 0.9M parameters."""
    return ImageARTransformer(num_codes, num_classes, seq_len, dim, depth, num_heads, mlp_ratio)


def classifier_example(net: DigitClassifier, generator: torch.Generator) -> Example:
    x = torch.rand(2, 1, 28, 28, generator=generator)
    return Example(args=(x,), kwargs={}, out_shape=(2, 10), sample=lambda n, g: n(x).argmax(-1), stochastic=False)


@register_model("digit_cnn-mnist", pipeline=ClassifierPipeline, example=classifier_example)
def digit_cnn_mnist(num_classes: int = 10, width: int = 32, num_features: int = 128,
                    image_size: int = 28) -> DigitClassifier:
    """The metric network of the image domains (image_kit/classifier.py, metrics.py); never a generator."""
    return DigitClassifier(num_classes, width, num_features, image_size)


register_task("images", "models.image_kit.evaluate:images_task")

__all__ = ["DigitClassifier", "ClassifierLoss", "ClassifierPipeline", "digit_cnn_mnist", "VQAutoencoder", "VQLoss", "ImageARTransformer", "ClassConditionalAR",
           "ImageOutput", "TokenImagePipeline", "ImageARPipeline", "VQPipeline", "vq_mnist", "image_ar_mnist"]
