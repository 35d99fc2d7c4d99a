"""zoo.sharding.memory_per_rank on the meta device: the per-rank memory table of models/dllm_code/PUBLIC_CHECKPOINTS.md
(LLaDA-8B, trainer=fsdp) is what the function computes for the released configuration."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "dllm_code"))
from test_public_loading import LLADA_8B  # noqa: E402

from zoo.nn.decoder import DecoderLM  # noqa: E402
from zoo.public import llada_layout  # noqa: E402
from zoo.sharding import memory_per_rank  # noqa: E402

# (ranks, sequence length, activation checkpointing) -> GiB per rank, as that table gives them
README_TABLE = {(8, 2048, True): 19.53, (8, 4096, True): 21.38, (8, 2048, False): 31.53, (1, 2048, True): 124.04}


@pytest.fixture(scope="module")
def llada_8b():
    with torch.device("meta"):
        return DecoderLM(llada_layout(LLADA_8B, Path("config.json")).config)


def test_the_readme_table_is_what_the_estimate_computes(llada_8b):
    assert all(p.is_meta for p in llada_8b.parameters())
    for (ranks, seq_len, checkpointing), gib in README_TABLE.items():
        got = memory_per_rank(llada_8b, ranks, seq_len, 1, checkpointing)
        assert got["parameters"] == 8_015_581_184
        assert got["total"] == pytest.approx(gib, abs=0.01), (ranks, seq_len, checkpointing)


def test_sharded_terms_shrink_with_ranks_and_checkpointing_saves_activations(llada_8b):
    one, eight = memory_per_rank(llada_8b, 1, 2048), memory_per_rank(llada_8b, 8, 2048)
    for key in ("weights", "gradients", "optimizer"):
        assert one[key] == pytest.approx(8 * eight[key])
    assert one["gathered"] == eight["gathered"]  # gathered blocks are whole on every rank
    assert eight["weights"] + eight["gradients"] + eight["optimizer"] == pytest.approx(16 * 8_015_581_184 / 8 / 2**30)
    assert memory_per_rank(llada_8b, 8, 2048, activation_checkpointing=False)["activations"] > 5 * eight["activations"]
