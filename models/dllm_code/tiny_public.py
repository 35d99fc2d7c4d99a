"""Tiny random checkpoint folders in the public layouts (LLaDA, Dream, Qwen2, LLaMA): the exact config
keys, tensor names and tokenizer files of the released checkpoints, at 2 layers and a few hundred
tokens. The weights cannot be downloaded here, so every public-checkpoint path (loading, sampling,
the eval tasks, the ablation) is proven on these; the tests compare them with ``transformers``.

    python -m models.dllm_code.tiny_public OUT_DIR --family llada [--shards 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from zoo.nn.decoder import DecoderConfig, DecoderLM
from zoo.public import INDEX, SINGLE, detect

# A few lines of code and prose for the byte-level BPE: the tokenizer only has to be real, not good.
CORPUS = [
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.append(item)\n",
    "for i in range(10):\n    print(i * i)\n",
    "import os\nwith open(path) as f:\n    text = f.read()\n",
    "Write a function that returns the largest element of a list.",
    "The answer is 42. Please explain the code step by step.",
]

# Per family: the special tokens its tokenizer adds (after the BPE vocabulary, as the released ones
# sit at the end), the roles of some, and its chat template in the released format.
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                   "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim "
                   "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                   "{{ content }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
CHATML_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                   "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
                   "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
                   "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
FAMILIES = {
    "llada": {"specials": ["<|startoftext|>", "<|endoftext|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>", "<|mdm_mask|>"],
              "bos": "<|startoftext|>", "eos": "<|endoftext|>", "eot": "<|eot_id|>", "mask": "<|mdm_mask|>",
              "template": LLAMA3_TEMPLATE},
    "dream": {"specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|beginoftext|>", "<|mask|>"],
              "bos": "<|beginoftext|>", "eos": "<|endoftext|>", "eot": "<|im_end|>", "mask": "<|mask|>",
              "template": CHATML_TEMPLATE},
    "qwen2": {"specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
              "bos": None, "eos": "<|endoftext|>", "eot": "<|im_end|>", "mask": None, "template": CHATML_TEMPLATE},
    "llama": {"specials": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>"],
              "bos": "<|begin_of_text|>", "eos": "<|end_of_text|>", "eot": "<|eot_id|>", "mask": None,
              "template": LLAMA3_TEMPLATE},
}


def tiny_tokenizer(family: str, bpe_vocab: int = 300):
    """A byte-level BPE trained on CORPUS, with the family's special tokens added at the end."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=bpe_vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(FAMILIES[family]["specials"])
    return tok


def public_config(family: str, vocab: int, ids: dict, dim: int, depth: int, heads: int, kv_heads: int,
                  mlp: int, rope_scaling: dict | None, tie: bool) -> dict:
    """config.json with the released checkpoints' keys (values at tiny sizes)."""
    if family == "llada":
        return {"architectures": ["LLaDAModelLM"], "model_type": "llada", "activation_type": "silu",
                "alibi": False, "attention_layer_norm": False, "block_type": "llama", "d_model": dim,
                "embedding_size": vocab, "vocab_size": vocab, "include_bias": False, "include_qkv_bias": False,
                "input_emb_norm": False, "layer_norm_type": "rms", "layer_norm_with_affine": True,
                "max_sequence_length": 1024, "mlp_hidden_size": mlp, "mlp_ratio": 4, "n_heads": heads,
                "n_kv_heads": kv_heads, "n_layers": depth, "rms_norm_eps": 1e-5, "rope": True,
                "rope_theta": 500000.0, "scale_logits": False, "weight_tying": tie,
                "mask_token_id": ids["mask"], "eos_token_id": ids["eos"], "pad_token_id": ids["eos"],
                "torch_dtype": "bfloat16"}
    cfg = {"architectures": [{"dream": "DreamModel", "qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}[family]],
           "model_type": {"dream": "Dream", "qwen2": "qwen2", "llama": "llama"}[family], "hidden_act": "silu",
           "hidden_size": dim, "intermediate_size": mlp, "max_position_embeddings": 1024,
           "num_attention_heads": heads, "num_hidden_layers": depth, "num_key_value_heads": kv_heads,
           "rms_norm_eps": 1e-6, "rope_theta": 1000000.0 if family != "llama" else 500000.0,
           "rope_scaling": rope_scaling, "tie_word_embeddings": tie, "vocab_size": vocab,
           "eos_token_id": ids["eos"], "torch_dtype": "bfloat16"}
    if family == "llama":
        cfg.update(attention_bias=False, mlp_bias=False, bos_token_id=ids["bos"])
    else:
        cfg.update(use_sliding_window=False, sliding_window=None, max_window_layers=depth)
    if family == "dream":
        cfg.update(mask_token_id=ids["mask"], pad_token_id=ids["eos"], bos_token_id=ids["bos"])
    return cfg


def write_tiny_folder(out: str | Path, family: str, seed: int = 0, shards: int = 1, dim: int = 64, depth: int = 2,
                      heads: int = 4, kv_heads: int = 2, mlp: int = 96, rope_scaling: dict | None = None,
                      tie: bool = False, dtype: torch.dtype = torch.float32) -> Path:
    """Write a random ``family`` model folder: config.json, generation_config.json, safetensors
    (``shards`` > 1: split files with their index), tokenizer.json and tokenizer_config.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = FAMILIES[family]
    tok = tiny_tokenizer(family)
    vocab = -(-tok.get_vocab_size() // 64) * 64  # embeddings padded to a multiple of 64, as released ones are
    ids = {role: tok.token_to_id(spec[role]) if spec[role] else None for role in ("bos", "eos", "eot", "mask")}
    cfg = public_config(family, vocab, ids, dim, depth, heads, kv_heads, mlp, rope_scaling, tie)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    stops = [i for i in (ids["eos"], ids["eot"]) if i is not None]
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": stops, "bos_token_id": ids["bos"]}))
    tok.save(str(out / "tokenizer.json"))
    added = {str(tok.token_to_id(t)): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                                       "normalized": False, "single_word": False} for t in spec["specials"]}
    (out / "tokenizer_config.json").write_text(json.dumps({
        "added_tokens_decoder": added, "bos_token": spec["bos"], "eos_token": spec["eot"] or spec["eos"],
        "pad_token": spec["eos"], "chat_template": spec["template"], "model_max_length": 1024,
        "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
    layout = detect(out)
    net = DecoderLM(layout.config).reset_parameters(generator=torch.Generator().manual_seed(seed))
    state = {ours: t for ours, t in net.state_dict().items()}
    public = {name: state[ours].to(dtype).contiguous() for name, ours in layout.names.items()}
    names = list(public)
    if shards <= 1:
        save_file(public, str(out / SINGLE), metadata={"format": "pt"})
        return out
    weight_map = {}
    for s in range(shards):
        part = names[s::shards]
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: public[n] for n in part}, str(out / file), metadata={"format": "pt"})
        weight_map.update({n: file for n in part})
    total = sum(t.numel() * t.element_size() for t in public.values())
    (out / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--family", choices=sorted(FAMILIES), required=True)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_tiny_folder(args.out, args.family, seed=args.seed, shards=args.shards))


if __name__ == "__main__":
    main()
