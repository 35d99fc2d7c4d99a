"""Public checkpoint folders: what zoo.load reads from which file, what it refuses and how it says so,
the published sizes on the meta device, tokenizers, chat templates, caches, dtypes, and the
eval / ablation commands on tiny random folders."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from models.dllm_code.public import PublicARPipeline, PublicDiffusionPipeline, load_tokenizer, render_chat
from models.dllm_code.tiny_public import CORPUS, write_tiny_folder
from zoo.nn.decoder import DecoderLM
from zoo.public import detect, hf_decoder_layout, llada_layout, parameter_count
from zoo.pretrained import CheckpointError

ROOT = Path(__file__).resolve().parents[3]

# config.json of the released checkpoints (the keys the zoo reads; GSAI-ML/LLaDA-8B-Base, Dream-org/Dream-v0-Base-7B)
LLADA_8B = {"architectures": ["LLaDAModelLM"], "model_type": "llada", "activation_type": "silu", "alibi": False,
            "attention_layer_norm": False, "bias_for_layer_norm": False, "block_type": "llama", "d_model": 4096,
            "embedding_size": 126464, "eos_token_id": 126081, "include_bias": False, "include_qkv_bias": False,
            "input_emb_norm": False, "layer_norm_type": "rms", "layer_norm_with_affine": True, "mask_token_id": 126336,
            "max_sequence_length": 4096, "mlp_hidden_size": 12288, "mlp_ratio": 4, "n_heads": 32, "n_kv_heads": 32,
            "n_layers": 32, "pad_token_id": 126081, "rms_norm_eps": 1e-05, "rope": True, "rope_theta": 500000.0,
            "scale_logits": False, "vocab_size": 126464, "weight_tying": False}
DREAM_7B = {"architectures": ["DreamModel"], "model_type": "Dream", "bos_token_id": 151643, "eos_token_id": 151643,
            "hidden_act": "silu", "hidden_size": 3584, "intermediate_size": 18944, "mask_token_id": 151666,
            "max_position_embeddings": 131072, "max_window_layers": 28, "num_attention_heads": 28,
            "num_hidden_layers": 28, "num_key_value_heads": 4, "pad_token_id": 151643, "rms_norm_eps": 1e-06,
            "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": None, "tie_word_embeddings": False,
            "use_sliding_window": False, "vocab_size": 152064}


def test_published_configurations_have_their_published_sizes_on_the_meta_device():
    llada = llada_layout(LLADA_8B, Path("config.json"))
    dream = hf_decoder_layout(DREAM_7B, Path("config.json"), "dream", qkv_bias=True, causal=False, shift=True)
    assert parameter_count(llada.config) == 8_015_581_184  # "8B" (8.02B on its model card)
    assert parameter_count(dream.config) == 7_615_616_512  # Qwen2.5-7B's count (7.62B)
    with torch.device("meta"):
        net = DecoderLM(dream.config)
    assert all(p.is_meta for p in net.parameters())
    assert llada.mask_id == 126336 and dream.mask_id == 151666


@pytest.fixture(scope="module")
def llada_folder(tmp_path_factory):
    return write_tiny_folder(tmp_path_factory.mktemp("llada") / "llada", "llada", seed=2)


def test_special_ids_come_from_the_folders_files(llada_folder, tmp_path):
    pipe = zoo.load(llada_folder)
    tok = pipe.tokenizer
    assert isinstance(pipe, PublicDiffusionPipeline)
    assert pipe.mask_id == tok.token_to_id("<|mdm_mask|>") == json.loads((llada_folder / "config.json").read_text())["mask_token_id"]
    assert pipe.eos_id == tok.token_to_id("<|endoftext|>")
    assert set(pipe.special.stop_ids) == {tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|eot_id|>")}
    # another mask id in config.json is the one used: nothing is hard-coded
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in llada_folder.iterdir():
        (moved / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((moved / "config.json").read_text())
    cfg["mask_token_id"] = tok.token_to_id("<|start_header_id|>")
    (moved / "config.json").write_text(json.dumps(cfg))
    assert zoo.load(moved).mask_id == tok.token_to_id("<|start_header_id|>")


def test_text_stops_at_the_end_of_turn(llada_folder):
    pipe = zoo.load(llada_folder)
    a, b = pipe.tokenizer.encode("return").ids, pipe.tokenizer.encode(" x").ids
    eot = pipe.tokenizer.token_to_id("<|eot_id|>")
    assert pipe.decode(torch.tensor([a + b + [eot] + a])) == ["return x"]


def test_chat_template_renders_as_transformers_does(llada_folder):
    transformers = pytest.importorskip("transformers")
    pipe = zoo.load(llada_folder)
    cfg = json.loads((llada_folder / "tokenizer_config.json").read_text())
    reference = transformers.PreTrainedTokenizerFast(tokenizer_file=str(llada_folder / "tokenizer.json"),
                                                     bos_token=cfg["bos_token"], eos_token=cfg["eos_token"])
    reference.chat_template = cfg["chat_template"]
    messages = [{"role": "user", "content": "  Write add.  "}]
    theirs = reference.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert render_chat(cfg["chat_template"], messages, pipe.special) == theirs == pipe.chat_prompt("  Write add.  ")
    assert theirs.startswith("<|startoftext|><|start_header_id|>user") and theirs.endswith("assistant<|end_header_id|>\n\n")
    ids = pipe.tokenizer.encode(theirs).ids  # special tokens stay single ids, the text round-trips
    assert pipe.tokenizer.token_to_id("<|eot_id|>") in ids and pipe.tokenizer.decode(ids, skip_special_tokens=False) == theirs
    out = pipe(prompt="Write add.", chat=True, gen_length=16, steps=16, block_length=16)
    assert out.prompts[0] == theirs and out.nfe == 16


def test_a_base_model_without_template_says_so(tmp_path):
    folder = write_tiny_folder(tmp_path / "base", "qwen2")
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    del cfg["chat_template"]
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="no chat_template"):
        zoo.load(folder)(prompt="hi", chat=True, gen_length=4)


def test_vocab_and_merges_tokenize_as_transformers_qwen2_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = write_tiny_folder(tmp_path / "q", "qwen2")
    tok = load_tokenizer(folder)
    tok.model.save(str(folder))  # vocab.json + merges.txt
    (folder / "tokenizer.json").unlink()
    from_files = load_tokenizer(folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**cfg, "tokenizer_class": "Qwen2Tokenizer"}))
    reference = transformers.AutoTokenizer.from_pretrained(str(folder))  # from vocab.json + merges.txt
    assert type(reference).__name__ == "Qwen2Tokenizer"
    texts = CORPUS + ["x  =  12345\n\n\tdef f():  # it's ok\n", "<|im_start|>user\nhi<|im_end|>"]
    for text in texts:
        ours = from_files.encode(text).ids
        assert ours == reference.encode(text, add_special_tokens=False)
        assert from_files.decode(ours, skip_special_tokens=False) == text
    assert from_files.token_to_id("<|im_end|>") == tok.token_to_id("<|im_end|>")


def test_threshold_and_caches_run_on_every_diffusion_family(tmp_path):
    for family in ("llada", "dream"):
        pipe = zoo.load(write_tiny_folder(tmp_path / family, family, seed=4))
        prompt = ["def add(a, b):\n", "import os\n"]
        plain = pipe(prompt=prompt, gen_length=16, steps=16, block_length=8)
        exact = pipe(prompt=prompt, gen_length=16, steps=16, block_length=8, cache="prefix", refresh_every=1)
        assert torch.equal(plain.tokens, exact.tokens)  # a cache refreshed every step is the plain pass
        for cache in ("prefix", "dual"):
            out = pipe(prompt=prompt, gen_length=16, block_length=8, policy="threshold", threshold=0.0049, cache=cache)
            assert out.tokens.shape == (2, 16) and not (out.tokens == pipe.mask_id).any() and out.nfe <= 16


def test_dtype_and_a_zoo_format_round_trip(tmp_path):
    folder = write_tiny_folder(tmp_path / "dream", "dream", seed=5, dtype=torch.bfloat16)
    pipe = zoo.load(folder, dtype=torch.bfloat16)
    assert pipe.dtype == torch.bfloat16 and pipe.net.embed.weight.dtype == torch.bfloat16
    out = pipe(prompt="def f(x):\n", gen_length=8)
    assert out.tokens.shape == (1, 8)
    full = zoo.load(folder)  # float32 on the CPU by default
    assert full.dtype == torch.float32
    saved = full.save_pretrained(tmp_path / "saved")
    again = zoo.load(saved)
    assert type(again) is PublicDiffusionPipeline and again.special == full.special
    assert torch.equal(again(prompt="def f(x):\n", gen_length=8).tokens, full(prompt="def f(x):\n", gen_length=8).tokens)


def test_ar_families_load_as_ar_pipelines(tmp_path):
    for family in ("qwen2", "llama"):
        pipe = zoo.load(write_tiny_folder(tmp_path / family, family, tie=family == "qwen2"))
        assert isinstance(pipe, PublicARPipeline) and pipe.net.causal
        out = pipe(prompt=["def f():\n", "x = 1\n"], gen_length=6)
        assert out.tokens.shape == (2, 6) and 1 <= out.nfe <= 6


# --- bad folders ------------------------------------------------------------------------------------------

def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _edit_config(folder: Path, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def _rewrite(folder: Path, file: str, change):
    state = load_file(folder / file)
    change(state)
    save_file(state, str(folder / file))


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    return write_tiny_folder(tmp_path_factory.mktemp("sharded") / "dream", "dream", shards=2)


BLOCK0_Q = "model.layers.0.self_attn.q_proj.weight"


def _shard_of(folder, name):
    return json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"][name]


@pytest.mark.parametrize("case,words", [
    ("unknown architecture", ["config.json", "unknown architecture", "gpt2"]),
    ("missing shard", ["missing", "model-00002-of-00002.safetensors", "index"]),
    ("wrong shape", ["shape", BLOCK0_Q]),
    ("wrong dtype", ["torch.int64", "model.norm.weight"]),
    ("unexpected tensor", ["unexpected tensor", "model.layers.9.mlp.up_proj.weight"]),
    ("missing tensor", ["missing 1 tensor", "model.norm.weight"]),
    ("pickle only", ["pickle", "safetensors only"]),
    ("unsupported switch", ["hidden_act='gelu'", "not supported"]),
    ("mask id outside the tokenizer", ["mask_token_id=99999", "outside"]),
])
def test_a_bad_folder_names_its_cause(sharded, tmp_path, case, words):
    folder = _copy(sharded, tmp_path / "bad")
    if case == "unknown architecture":
        _edit_config(folder, model_type="gpt2", architectures=["GPT2LMHeadModel"])
    elif case == "missing shard":
        (folder / "model-00002-of-00002.safetensors").unlink()
    elif case == "wrong shape":
        _rewrite(folder, _shard_of(folder, BLOCK0_Q), lambda s: s.__setitem__(BLOCK0_Q, torch.zeros(3, 3)))
    elif case == "wrong dtype":
        name = "model.norm.weight"
        _rewrite(folder, _shard_of(folder, name), lambda s: s.__setitem__(name, torch.ones(64, dtype=torch.int64)))
    elif case == "unexpected tensor":
        extra = "model.layers.9.mlp.up_proj.weight"
        _rewrite(folder, "model-00001-of-00002.safetensors", lambda s: s.__setitem__(extra, torch.zeros(96, 64)))
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        index["weight_map"][extra] = "model-00001-of-00002.safetensors"
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    elif case == "missing tensor":
        name = "model.norm.weight"
        _rewrite(folder, _shard_of(folder, name), lambda s: s.pop(name))
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        del index["weight_map"][name]
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    elif case == "pickle only":
        for f in list(folder.glob("model*")):
            f.unlink()
        (folder / "pytorch_model.bin").write_bytes(b"not read")
    elif case == "unsupported switch":
        _edit_config(folder, hidden_act="gelu")
    elif case == "mask id outside the tokenizer":
        _edit_config(folder, mask_token_id=99999)
    with pytest.raises(CheckpointError) as error:
        zoo.load(folder)
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_detect_reads_model_type_then_architectures(sharded, tmp_path):
    folder = _copy(sharded, tmp_path / "arch")
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["model_type"]
    (folder / "config.json").write_text(json.dumps(cfg))
    assert detect(folder).model == "dream"


# --- commands on tiny folders (CI runs them) -------------------------------------------------------------

def _run(args, timeout=120):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_eval_and_ablation_dry_runs_on_tiny_folders(tmp_path):
    llada = write_tiny_folder(tmp_path / "llada", "llada")
    dream = write_tiny_folder(tmp_path / "dream", "dream")
    qwen = write_tiny_folder(tmp_path / "qwen2", "qwen2")
    he = _run(["recipes/eval.py", f"model={llada}", "task=humaneval", "+kwargs.limit=2", "+kwargs.gen_length=32"])
    assert he["problems"] == 2 and he["nfe_total"] == 32 and 0 <= he["pass@1"] <= 1
    ar = _run(["recipes/eval.py", f"model={qwen}", "task=humaneval", "+kwargs.limit=2", "+kwargs.gen_length=16"])
    assert ar["problems"] == 2
    body = _run(["recipes/eval.py", f"model={dream}", "task=bodies", "+kwargs.num_functions=2", "+kwargs.gen_length=16"])
    assert body["num_functions"] == 4 and body["nfe_per_function"] == 16
    summary = _run(["recipes/ablate.py", "model=dllm_code", "stages=[decoding]", "quick=true", "+options.prompts=2",
                    f"+options.model={dream}", f"+options.baseline={qwen}", f"out={tmp_path / 'ablation'}"],
                   timeout=600)  # 30 decoding settings: about 70 s alone, twice that beside other jobs
    assert summary["rows"] == 30 and (tmp_path / "ablation" / "ablation.csv").is_file()


@pytest.mark.slow
def test_loading_a_sharded_model_holds_the_weights_about_once(tmp_path):
    """About 540 MB of bf16 weights in 6 shards: resident memory at the load's peak, every weight read,
    above what the process held before it (libraries already in, by loading a tiny folder first) stays
    under 1.3x the weights."""
    write = """
import sys, torch
from models.dllm_code.tiny_public import write_tiny_folder
write_tiny_folder(sys.argv[1], "qwen2", shards=6, dim=2048, depth=6, heads=16, kv_heads=4, mlp=5632, dtype=torch.bfloat16)
write_tiny_folder(sys.argv[2], "qwen2", dtype=torch.bfloat16)
"""
    subprocess.run([sys.executable, "-c", write, str(tmp_path / "wide"), str(tmp_path / "tiny")], cwd=ROOT, check=True,
                   timeout=300)
    measure = """
import json, sys, torch
from zoo.public import load_public_net
def rss(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024
load_public_net(sys.argv[2], dtype=torch.bfloat16)[0](torch.zeros(1, 4, dtype=torch.long))
before = rss("VmRSS:")
net, _ = load_public_net(sys.argv[1], dtype=torch.bfloat16)
for p in net.parameters():
    p.sum()  # every page read: resident, however the loader holds the tensors
size = sum(p.numel() * p.element_size() for p in net.parameters())
print(json.dumps({"before": before, "peak": rss("VmHWM:"), "size": size}))
"""
    result = subprocess.run([sys.executable, "-c", measure, str(tmp_path / "wide"), str(tmp_path / "tiny")], cwd=ROOT,
                            capture_output=True, text=True, check=True, timeout=300)
    m = json.loads(result.stdout.strip().splitlines()[-1])
    assert m["size"] > 500e6
    print(f"{m['size'] / 1e6:.0f} MB of weights: peak {(m['peak'] - m['before']) / m['size']:.2f}x above the memory before the load")
    assert (m["peak"] - m["before"]) / m["size"] < 1.3, m


@pytest.mark.slow
def test_the_code_bench_times_a_public_pair(tmp_path):
    """recipes/bench.py model=dllm_code pretrained=<LLaDA folder> baseline=<Qwen2 folder>: every row runs."""
    llada = write_tiny_folder(tmp_path / "llada", "llada")
    qwen = write_tiny_folder(tmp_path / "qwen2", "qwen2")
    out = _run(["recipes/bench.py", "model=dllm_code", f"pretrained={llada}", f"baseline={qwen}", "quick=true",
                "repeats=1"], timeout=300)
    assert {r["setting"] for r in out["rows"]} >= {"ar_kv_cache", "vanilla", "threshold_dual_cache"}
    assert out["headline"]["baseline"] == "vanilla_eos_fill"
