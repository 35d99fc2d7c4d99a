"""distilled_decoding: one-step students of an image AR model via flow matching (Distilled Decoding 1).

- flow_map.py: the deterministic noise-to-token map under a distribution p.
- pairs.py: the teacher (``image_ar-mnist``, models/image_ar) + the flow map -> (noise, tokens) pairs.
- ``distilled_decoding-mnist``: the student (network.py), initialised from the teacher by
  ``init_student``, trained on the pairs (objective.py), sampling in 1 or 2 passes.
- ``dd_parallel-mnist``: naive one-step parallel sampling from per-class marginals of teacher samples.
"""

from __future__ import annotations

import torch

from models.distilled_decoding.network import DistilledStudent, MarginalTable
from models.distilled_decoding.objective import DistillationLoss, MarginalFit, marginal_sample, student_sample
from models.distilled_decoding.pipeline import DistilledDecodingPipeline, ParallelPipeline
from zoo.pretrained import TOKENIZER_DIR, load_config, load_net, resolve
from zoo.registry import Example, create_model, register_ablation, register_benchmark, register_model


def student_example(net: DistilledStudent, generator: torch.Generator) -> Example:
    noise = torch.randn(2, net.seq_len, net.code_dim, generator=generator)
    labels = torch.tensor([3, 7])
    known = torch.randint(0, net.num_codes, (2, net.seq_len), generator=generator)
    num_known = torch.tensor([0, net.seq_len // 2])  # row 0: one step; row 1: a second step's kept prefix
    return Example(args=(noise, None, labels), kwargs={"known": known, "num_known": num_known},
                   out_shape=(2, net.seq_len, net.num_codes),
                   sample=lambda n, g: student_sample(
                       n, torch.randn(2, n.seq_len, n.code_dim, generator=g), labels, steps=2).tokens,
                   stochastic=False)  # untrained, the noise projection is zero: the noise has no effect yet


@register_model("distilled_decoding-mnist", pipeline=DistilledDecodingPipeline, example=student_example)
def distilled_decoding_mnist(num_codes: int = 256, num_classes: int = 10, seq_len: int = 49, dim: int = 128,
                             depth: int = 4, num_heads: int = 4, code_dim: int = 8,
                             mlp_ratio: float = 4.0) -> DistilledStudent:
    """The student of image_ar-mnist: its transformer plus noise inputs and position flags."""
    return DistilledStudent(num_codes, num_classes, seq_len, dim, depth, num_heads, code_dim, mlp_ratio)


def init_student(teacher: str = "checkpoints/image_ar-mnist", name: str = "distilled_decoding-mnist"
                 ) -> DistilledStudent:
    """A student with the teacher's sizes and weights, and the teacher's tokenizer's unit codebook."""
    teacher_net, config = load_net(resolve(teacher))
    tokenizer, _ = load_net(resolve(teacher) / TOKENIZER_DIR)
    kwargs = {k: v for k, v in config["model_kwargs"].items()}
    student = create_model(name, code_dim=tokenizer.code_dim, **kwargs)
    missing, unexpected = student.load_state_dict(teacher_net.state_dict(), strict=False)
    new = {"noise_proj.weight", "noise_proj.bias", "flag_emb.weight", "unknown", "codebook"}
    if unexpected or set(missing) - new:
        raise ValueError(f"{teacher} does not fit {name}: unexpected {unexpected}, missing {set(missing) - new}")
    student.codebook.copy_(tokenizer.normalized_codebook().detach())
    return student


def init_parallel(teacher: str = "checkpoints/image_ar-mnist", name: str = "dd_parallel-mnist") -> MarginalTable:
    """A marginal table shaped for the teacher's codes, classes and sequence length."""
    kwargs = load_config(resolve(teacher))["model_kwargs"]
    return create_model(name, **{k: kwargs[k] for k in ("num_codes", "num_classes", "seq_len")})


def parallel_example(net: MarginalTable, generator: torch.Generator) -> Example:
    labels = torch.tensor([3, 7])
    return Example(args=(labels, None, labels), kwargs={}, out_shape=(2, net.seq_len, net.num_codes),
                   sample=lambda n, g: marginal_sample(n, labels, generator=g).tokens)


@register_model("dd_parallel-mnist", pipeline=ParallelPipeline, example=parallel_example)
def dd_parallel_mnist(num_codes: int = 256, num_classes: int = 10, seq_len: int = 49) -> MarginalTable:
    """Per-class, per-position token marginals (C, L, K) of the teacher's samples."""
    return MarginalTable(num_codes, num_classes, seq_len)


register_benchmark("distilled_decoding", "models.distilled_decoding.bench:run")
register_ablation("distilled_decoding", "models.distilled_decoding.ablation_study:ABLATION")

__all__ = ["DistilledStudent", "MarginalTable", "DistillationLoss", "MarginalFit", "DistilledDecodingPipeline",
           "ParallelPipeline", "init_student", "init_parallel", "distilled_decoding_mnist", "dd_parallel_mnist"]
