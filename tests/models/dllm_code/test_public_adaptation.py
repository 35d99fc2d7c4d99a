"""AR-to-diffusion adaptation of a public Qwen2 folder (zoo.public.adapted_net / save_adapted, model=public_adapt):
the adapted network starts as the AR model, gains a mask token, and exports as a Dream folder that
zoo.load samples as a masked-diffusion LM."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from models.dllm_code.tiny_public import write_tiny_folder
from zoo.public import MASK_TOKEN, adapted_net, adaptation_tokenizer, load_public_net

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory):
    return write_tiny_folder(tmp_path_factory.mktemp("qwen2") / "qwen2", "qwen2", seed=3)


def test_the_adapted_network_starts_as_the_ar_model(qwen2):
    ar, _ = load_public_net(qwen2)
    net = adapted_net(qwen2).eval()
    assert (net.causal, net.shift, ar.causal) == (False, True, True)
    tokenizer, mask_id = adaptation_tokenizer(qwen2)
    assert tokenizer.token_to_id(MASK_TOKEN) == mask_id and mask_id < net.vocab_size == ar.vocab_size  # a spare row
    x = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    net.future_visibility = 0.0  # the annealing's start: causal attention, so exactly the AR model
    with torch.no_grad():
        torch.testing.assert_close(net(x), ar(x))
        net.future_visibility = 1.0  # after it: bidirectional, another function
        assert not torch.allclose(net(x), ar(x))


def test_without_a_spare_row_the_embedding_grows_by_the_mask_token(qwen2, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    tight = tmp_path / "tight"
    shutil.copytree(qwen2, tight)
    _, mask_id = adaptation_tokenizer(tight)
    config = json.loads((tight / "config.json").read_text())
    config["vocab_size"] = mask_id  # the tokenizer fills the embedding
    (tight / "config.json").write_text(json.dumps(config))
    state = load_file(tight / "model.safetensors")
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        state[name] = state[name][:mask_id].clone()
    save_file(state, tight / "model.safetensors", metadata={"format": "pt"})
    net = adapted_net(tight)
    assert net.vocab_size == mask_id + 1 and net.embed.weight.shape[0] == net.head.weight.shape[0] == mask_id + 1
    torch.testing.assert_close(net.embed.weight[mask_id], net.embed.weight[:mask_id].mean(0))


def test_only_a_qwen2_folder_is_adapted(tmp_path):
    llama = write_tiny_folder(tmp_path / "llama", "llama", seed=1)
    with pytest.raises(ValueError, match="Dream's layout, which is Qwen2's"):
        adapted_net(llama)


@pytest.mark.slow
def test_adapt_train_export_and_sample_as_dream(qwen2, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"def f{i}(a):\n", "answer": f"    return a + {i}\n"}) + "\n"
                             for i in range(8)))
    export = tmp_path / "dream"
    result = subprocess.run([sys.executable, "recipes/train.py", "model=public_adapt", f"public_folder={qwen2}",
                             f"data.path={pairs}", "trainer.max_steps=6", "anneal_attention_steps=4",
                             "trainer.val_check_interval=3", f"hydra.run.dir={tmp_path / 'run'}", "rich_progress=false",
                             f"export_dir={export}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((export / "config.json").read_text())
    assert config["model_type"] == "Dream" and config["mask_token_id"] == adaptation_tokenizer(qwen2)[1]
    pipe = zoo.load(export)
    assert type(pipe).__name__ == "PublicDiffusionPipeline" and not pipe.net.causal and pipe.net.shift
    out = pipe(prompt="def f(a):\n", gen_length=8, steps=4, generator=torch.Generator().manual_seed(0))
    assert out.tokens.shape == (1, 8) and out.nfe == 4
