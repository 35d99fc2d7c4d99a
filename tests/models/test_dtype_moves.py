"""Pipelines move like torch modules: every shipped checkpoint samples after ``.to(torch.bfloat16)`` on
the CPU (its networks, autoencoders and tokenizer networks move; float inputs are cast to the pipeline's
dtype; side tensors such as latent statistics stay float32)."""

import pytest
import torch

import zoo
from zoo.pretrained import list_pretrained


def g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _driving():
    from datamodules.driving_codec import Context

    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=g())
    return frames, [Context("highway", 25.0, 0.0), Context("merge", 21.0, 0.1)]


IMAGES = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
PROMPT = ["def add(a, b):\n"]
SAMPLE = {  # checkpoint -> a small call of its pipeline
    "dllm_code-tiny": lambda p: p(prompt=PROMPT, gen_length=8, steps=4, block_length=8, generator=g()).tokens,
    "dllm_code_adapted-tiny": lambda p: p(prompt=PROMPT, gen_length=8, steps=4, block_length=8, generator=g()).tokens,
    "ar_code-tiny": lambda p: p(prompt=PROMPT, gen_length=8, generator=g()).tokens,
    "ar_code_sft-tiny": lambda p: p(prompt=PROMPT, gen_length=8, generator=g()).tokens,
    "image_ar-mnist": lambda p: p(class_labels=[3], generator=g()).images,
    "distilled_decoding-mnist": lambda p: p(class_labels=[3], steps=1, generator=g()).images,
    "dd_parallel-mnist": lambda p: p(class_labels=[3], generator=g()).images,
    "vq-mnist": lambda p: p(IMAGES).images,
    "kl_ae-mnist": lambda p: p(IMAGES).images,
    "digit_cnn-mnist": lambda p: p(IMAGES).probs,
    "xar-mnist": lambda p: p(class_labels=[3], steps=2, generator=g()).images,
    "xar_dit-mnist": lambda p: p(class_labels=[3], steps=2, generator=g()).images,
    "xar_ncl_off-mnist": lambda p: p(class_labels=[3], steps=2, generator=g()).images,
    "meshcraft-tiny": lambda p: p(num_faces=12, category="chair", steps=2, generator=g()).tokens[0],
    "meshgpt_ar-tiny": lambda p: p(num_faces=3, category="table", generator=g()).tokens[0],
    "meshcraft_vae-tiny": lambda p: p(torch.randint(0, 128, (1, 6, 9), generator=g())).tokens[0],
    "mesh_pointnet-furniture": lambda p: p(torch.rand(2, 64, 3, generator=g()) - 0.5).probs,
    "sentence_ae-prose": lambda p: p(["Return the value."]).texts,
    "sentence_vae-prose": lambda p: p("Return the value.", max_sentences=2).texts,
    "token_lm-prose": lambda p: p(prompt=["Return the value."], gen_length=8, generator=g()).tokens,
    "vilad-highway": lambda p: p(*_driving(), generator=g()).tokens,
    "vilad_ar-highway": lambda p: p(*_driving(), generator=g()).tokens,
}


def test_every_shipped_checkpoint_has_a_case():
    assert set(list_pretrained()) == set(SAMPLE)


@pytest.mark.parametrize("name", sorted(SAMPLE))
def test_every_shipped_checkpoint_samples_in_bfloat16(name):
    pipe = zoo.load(name).to(torch.bfloat16)
    assert pipe.dtype == torch.bfloat16
    out = SAMPLE[name](pipe)
    if isinstance(out, torch.Tensor) and out.is_floating_point():
        assert torch.isfinite(out.float()).all()


def test_to_takes_a_device_a_dtype_or_both_and_refuses_anything_else():
    pipe = zoo.load("meshcraft-tiny")
    assert pipe.to("cpu", torch.bfloat16) is pipe and pipe.dtype == torch.bfloat16
    assert next(pipe.vae.parameters()).dtype == torch.bfloat16 and pipe.latent_mean.dtype == torch.float32
    assert pipe.to(dtype=torch.float32).dtype == torch.float32 and pipe.to(torch.device("cpu")).dtype == torch.float32
    with pytest.raises(TypeError, match="device and/or a torch.dtype"):
        pipe.to(3.5)
    with pytest.raises(TypeError, match="floating torch.dtype"):
        pipe.to(torch.int8)
    assert zoo.load("vq-mnist", dtype=torch.bfloat16).dtype == torch.bfloat16
