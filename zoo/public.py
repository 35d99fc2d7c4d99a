"""Public checkpoint folders: LLaDA, Dream / DiffuCoder, and Qwen2 / LLaMA causal LMs, read in their own
layout (config.json + safetensors weights) into ``zoo.nn.decoder.DecoderLM``.

A folder is recognised from its config.json (``model_type``, else ``architectures``). Weights come from
``model.safetensors`` or from the shards that ``model.safetensors.index.json`` lists; the network is
built on the meta device and each tensor is read once, memory-mapped, converted to the requested dtype
on the requested device and put in place, so loading never holds two copies of the weights. Nothing is
unpickled, no remote code runs, nothing is fetched. Every failure is a ``CheckpointError`` naming the
file and, where there is one, the tensor.

Which domain samples from a layout is the registry's business: each layout names a registered model
(``Layout.model``), whose pipeline reads the folder's tokenizer (``Pipeline.from_public``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open

from zoo.nn.decoder import DecoderConfig, DecoderLM
from zoo.pretrained import CONFIG, CheckpointError, read_json

SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"
FLOAT_DTYPES = {torch.float32, torch.float16, torch.bfloat16}


@dataclass
class Layout:
    """How one family's folder maps onto a DecoderLM."""

    model: str  # the registered model whose pipeline samples it ("llada", "dream", "qwen2", "llama")
    config: DecoderConfig
    names: dict[str, str]  # the checkpoint's tensor name -> DecoderLM's parameter name
    ignorable: tuple[str, ...] = ()  # tensors a checkpoint may carry that the network does not use
    mask_id: int | None = None  # the mask token of a masked-diffusion LM, from config.json


def _get(cfg: dict, key: str, path: Path, kind=int, default=...):
    if key not in cfg:
        if default is ...:
            raise CheckpointError(f"{path}: no {key!r} entry")
        return default
    value = cfg[key]
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise CheckpointError(f"{path}: {key}={value!r} is not an integer")
    if kind is float and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise CheckpointError(f"{path}: {key}={value!r} is not a number")
    if kind is bool and not isinstance(value, bool):
        raise CheckpointError(f"{path}: {key}={value!r} is not true or false")
    return value


def _require(cfg: dict, path: Path, key: str, allowed, default) -> None:
    """A config switch this network does not implement must hold a value it does."""
    value = cfg.get(key, default)
    if value not in allowed:
        raise CheckpointError(f"{path}: {key}={value!r} is not supported (supported: {list(allowed)})")


def _build(path: Path, **kwargs) -> DecoderConfig:
    try:
        return DecoderConfig(**kwargs)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


def llada_layout(cfg: dict, path: Path) -> Layout:
    """LLaDA-8B-Base / -Instruct: OLMo-derived names (``model.transformer.blocks.{i}.q_proj``, ...)."""
    for key, allowed, default in (("block_type", ("llama",), None), ("layer_norm_type", ("rms",), None),
                                  ("activation_type", ("silu",), None), ("rope", (True,), False),
                                  ("alibi", (False,), False), ("scale_logits", (False,), False),
                                  ("input_emb_norm", (False,), False), ("attention_layer_norm", (False,), False),
                                  ("include_bias", (False,), False), ("layer_norm_with_affine", (True,), True),
                                  ("bias_for_layer_norm", (None, False), None)):
        _require(cfg, path, key, allowed, default)
    depth, tie = _get(cfg, "n_layers", path), _get(cfg, "weight_tying", path, bool, False)
    qkv_bias = bool(cfg.get("include_qkv_bias") or False)
    vocab = cfg.get("embedding_size") or _get(cfg, "vocab_size", path)
    config = _build(path, vocab_size=vocab, dim=_get(cfg, "d_model", path), depth=depth,
                    num_heads=_get(cfg, "n_heads", path), num_kv_heads=cfg.get("n_kv_heads"),
                    mlp_hidden=_get(cfg, "mlp_hidden_size", path),
                    max_seq_len=_get(cfg, "max_sequence_length", path, int, 4096),
                    rope_theta=float(_get(cfg, "rope_theta", path, float, 10000.0)),
                    norm_eps=float(_get(cfg, "rms_norm_eps", path, float, 1e-5)), qkv_bias=qkv_bias,
                    tie_embeddings=tie, causal=False, shift=False)
    p = "model.transformer."
    names = {f"{p}wte.weight": "embed.weight", f"{p}ln_f.weight": "norm.weight"}
    if not tie:
        names[f"{p}ff_out.weight"] = "head.weight"
    for i in range(depth):
        b, o = f"{p}blocks.{i}.", f"blocks.{i}."
        names.update({b + "attn_norm.weight": o + "attn_norm.weight", b + "ff_norm.weight": o + "mlp_norm.weight",
                      b + "attn_out.weight": o + "attn.o.weight", b + "ff_proj.weight": o + "mlp.gate.weight",
                      b + "up_proj.weight": o + "mlp.up.weight", b + "ff_out.weight": o + "mlp.down.weight"})
        for x in "qkv":
            names[b + f"{x}_proj.weight"] = o + f"attn.{x}.weight"
            if qkv_bias:
                names[b + f"{x}_proj.bias"] = o + f"attn.{x}.bias"
    return Layout("llada", config, names, mask_id=_get(cfg, "mask_token_id", path))


def hf_decoder_layout(cfg: dict, path: Path, model: str, qkv_bias: bool, causal: bool, shift: bool) -> Layout:
    """The Hugging Face LLaMA / Qwen2 layout (``model.layers.{i}.self_attn.q_proj``, ...), which Dream
    and DiffuCoder keep."""
    _require(cfg, path, "hidden_act", ("silu",), "silu")
    _require(cfg, path, "use_sliding_window", (False,), False)
    _require(cfg, path, "attention_bias", (qkv_bias,) if model == "llama" else (None, False, True), None)
    _require(cfg, path, "mlp_bias", (False,), False)
    depth, tie = _get(cfg, "num_hidden_layers", path), _get(cfg, "tie_word_embeddings", path, bool, False)
    rope = cfg.get("rope_parameters") or {}  # newer configs keep theta and scaling together
    scaling = cfg.get("rope_scaling") or (rope if rope.get("rope_type", "default") != "default" else None)
    theta = cfg.get("rope_theta", rope.get("rope_theta", 10000.0))
    config = _build(path, vocab_size=_get(cfg, "vocab_size", path), dim=_get(cfg, "hidden_size", path), depth=depth,
                    num_heads=_get(cfg, "num_attention_heads", path), num_kv_heads=cfg.get("num_key_value_heads"),
                    head_dim=cfg.get("head_dim"), mlp_hidden=_get(cfg, "intermediate_size", path),
                    max_seq_len=_get(cfg, "max_position_embeddings", path, int, 4096), rope_theta=float(theta),
                    rope_scaling=scaling, norm_eps=float(_get(cfg, "rms_norm_eps", path, float, 1e-6)),
                    qkv_bias=qkv_bias, tie_embeddings=tie, causal=causal, shift=shift)
    names = {"model.embed_tokens.weight": "embed.weight", "model.norm.weight": "norm.weight"}
    if not tie:
        names["lm_head.weight"] = "head.weight"
    for i in range(depth):
        b, o = f"model.layers.{i}.", f"blocks.{i}."
        names.update({b + "input_layernorm.weight": o + "attn_norm.weight",
                      b + "post_attention_layernorm.weight": o + "mlp_norm.weight",
                      b + "self_attn.o_proj.weight": o + "attn.o.weight"})
        for x in ("gate", "up", "down"):
            names[b + f"mlp.{x}_proj.weight"] = o + f"mlp.{x}.weight"
        for x in "qkv":
            names[b + f"self_attn.{x}_proj.weight"] = o + f"attn.{x}.weight"
            if qkv_bias:
                names[b + f"self_attn.{x}_proj.bias"] = o + f"attn.{x}.bias"
    ignorable = ("lm_head.weight",) if tie else ()  # some tied checkpoints store the head anyway
    mask_id = _get(cfg, "mask_token_id", path) if model == "dream" else None
    return Layout(model, config, names, ignorable, mask_id)


# model_type (or an architecture) -> how to read it
FAMILIES = {
    "llada": lambda cfg, path: llada_layout(cfg, path),
    "dream": lambda cfg, path: hf_decoder_layout(cfg, path, "dream", qkv_bias=True, causal=False, shift=True),
    "qwen2": lambda cfg, path: hf_decoder_layout(cfg, path, "qwen2", qkv_bias=True, causal=True, shift=False),
    "llama": lambda cfg, path: hf_decoder_layout(cfg, path, "llama", qkv_bias=bool(cfg.get("attention_bias")),
                                                 causal=True, shift=False),
}
ARCHITECTURES = {"LLaDAModelLM": "llada", "DreamModel": "dream", "Qwen2ForCausalLM": "qwen2",
                 "LlamaForCausalLM": "llama"}


def is_public(config: dict) -> bool:
    """A config.json in a public layout rather than the zoo's own format."""
    return "format" not in config and ("model_type" in config or "architectures" in config)


def detect(directory: str | os.PathLike) -> Layout:
    """The layout of a public checkpoint folder, from its config.json."""
    path = Path(directory) / CONFIG
    cfg = read_json(path)
    family = str(cfg.get("model_type", "")).lower()
    if family not in FAMILIES:
        family = next((ARCHITECTURES[a] for a in cfg.get("architectures") or [] if a in ARCHITECTURES), family)
    if family not in FAMILIES:
        raise CheckpointError(f"{path}: unknown architecture (model_type={cfg.get('model_type')!r}, "
                              f"architectures={cfg.get('architectures')!r}); the zoo reads "
                              f"{sorted(FAMILIES)} ({', '.join(sorted(ARCHITECTURES))})")
    return FAMILIES[family](cfg, path)


def weight_files(directory: Path) -> dict[Path, list[str] | None]:
    """The safetensors files to read, each with the tensor names the index assigns it (None: all of
    a single file's). A missing file is an error naming it."""
    if (directory / INDEX).is_file():
        index = read_json(directory / INDEX)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{directory / INDEX}: no 'weight_map'")
        files: dict[Path, list[str]] = {}
        for name, file in weight_map.items():
            files.setdefault(directory / file, []).append(name)
        for file, names in files.items():
            if not file.is_file():  # absent, or a FIFO / device that a read would block on
                raise CheckpointError(f"{file}: missing; {directory / INDEX} puts {len(names)} tensors "
                                      f"there (e.g. {names[0]})")
        return files
    if (directory / SINGLE).is_file():
        return {directory / SINGLE: None}
    if (directory / SINGLE).exists():
        raise CheckpointError(f"{directory / SINGLE}: not a regular file")
    if any(directory.glob("*.bin")) or any(directory.glob("*.pt")) or any(directory.glob("*.pth")):
        raise CheckpointError(f"{directory}: weights only in pickle files (.bin/.pt); the zoo reads safetensors "
                              f"only (convert them where you trust the source)")
    raise CheckpointError(f"{directory}: no {SINGLE} and no {INDEX}")


def _place(net: nn.Module, name: str, tensor: torch.Tensor) -> None:
    module_name, _, leaf = name.rpartition(".")
    module = net.get_submodule(module_name)
    module._parameters[leaf] = nn.Parameter(tensor, requires_grad=False)


def load_public_net(directory: str | os.PathLike, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> tuple[DecoderLM, Layout]:
    """Build the folder's network on the meta device and fill it from its safetensors files, each
    tensor read once and converted to ``dtype`` (default: float32 on a CPU, bfloat16 on a GPU) on
    ``device`` (default CPU). Returns (net in eval mode, its layout)."""
    directory = Path(directory)
    layout = detect(directory)
    device = torch.device(device or "cpu")
    dtype = dtype or (torch.float32 if device.type == "cpu" else torch.bfloat16)
    with torch.device("meta"):
        net = DecoderLM(layout.config)
    wanted = dict(layout.names)
    for file, listed in weight_files(directory).items():
        try:
            with safe_open(str(file), framework="pt", device=str(device)) as f:
                keys = set(f.keys())
                for name in listed if listed is not None else sorted(keys):
                    if name not in keys:
                        raise CheckpointError(f"{file}: lacks tensor {name!r}, which {directory / INDEX} puts there")
                    if name in layout.ignorable:
                        continue
                    if name not in layout.names:
                        raise CheckpointError(f"{file}: unexpected tensor {name!r} for a {layout.model} model "
                                              f"of {layout.config.depth} layers")
                    if name not in wanted:
                        raise CheckpointError(f"{file}: tensor {name!r} appears twice")
                    target = wanted.pop(name)
                    expected = tuple(net.get_parameter(target).shape)
                    shape = tuple(f.get_slice(name).get_shape())
                    if shape != expected:
                        raise CheckpointError(f"{file}: tensor {name!r} has shape {shape}, expected {expected} "
                                              f"from {directory / CONFIG}")
                    tensor = f.get_tensor(name)
                    if tensor.dtype not in FLOAT_DTYPES:
                        raise CheckpointError(f"{file}: tensor {name!r} is {tensor.dtype}; expected a float dtype "
                                              f"(float32, float16, bfloat16)")
                    _place(net, target, tensor.to(dtype))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{file}: cannot be read as safetensors ({e})") from None
    if wanted:
        missing = sorted(wanted)
        raise CheckpointError(f"{directory}: missing {len(missing)} tensor(s) of a {layout.model} model, e.g. "
                              f"{missing[:3]}")
    if layout.config.tie_embeddings:
        net.head.weight = net.embed.weight
    net.zoo_config = {"model": layout.model, "model_kwargs": layout.config.to_kwargs()}  # save_pretrained rebuilds it
    return net.eval(), layout


def trainable_net(folder: str | os.PathLike) -> DecoderLM:
    """A public folder's network in float32 with every parameter in its own memory (the loader's tensors
    may be views of the memory-mapped files) and trainable: the start of a fine-tuning run
    (``recipes/train.py model=public_sft``)."""
    net, _ = load_public_net(folder, dtype=torch.float32)
    for module in net.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[name] = nn.Parameter(p.detach().clone(), requires_grad=True)
    if net.cfg.tie_embeddings:
        net.head.weight = net.embed.weight
    return net.train()


def parameter_count(config: DecoderConfig) -> int:
    """Parameters of the network a config describes, counted on the meta device (nothing allocated);
    tied tensors once."""
    with torch.device("meta"):
        net = DecoderLM(config)
    return sum(p.numel() for p in net.parameters())


# Files of a public folder that travel unchanged with an export (the tokenizer and generation settings)
SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
              "vocab.json", "merges.txt", "added_tokens.json")


def save_public(net: DecoderLM, source: str | os.PathLike, directory: str | os.PathLike,
                shard_bytes: int = 5 * 2**30, dtype: torch.dtype | None = None, extra=None) -> Path:
    """Write ``net`` (loaded from, or fine-tuned from, the public folder ``source``) back in that folder's
    own layout: its config.json, its tensor names in safetensors shards of at most ``shard_bytes``
    (with model.safetensors.index.json when there are several), and its tokenizer and generation files,
    so that the reference code and ``zoo.load`` both read it; ``extra(folder)`` adds files (a
    meta.json). Atomic, as the zoo's own exports."""
    source = Path(source)
    layout = detect(source)
    if layout.config != net.cfg:
        raise ValueError(f"the network's configuration differs from {source / CONFIG}'s: not its model")
    return write_public(net, layout.names, (source / CONFIG).read_text(), source, directory, shard_bytes, dtype, extra)


def write_public(net: DecoderLM, names: dict[str, str], config: str, source: Path, directory: str | os.PathLike,
                 shard_bytes: int = 5 * 2**30, dtype: torch.dtype | None = None, extra=None,
                 tokenizer_json: str | None = None) -> Path:
    """``net``'s tensors under their public ``names`` ({public: ours}) with ``config`` (text) as config.json and
    ``source``'s tokenizer and generation files (tokenizer.json replaced by ``tokenizer_json`` if given)."""
    from safetensors.torch import save_file

    from zoo.pretrained import atomic_dir

    directory = Path(directory)
    state = net.state_dict()
    tensors = {public: state[ours].detach().to(dtype or state[ours].dtype).contiguous().cpu()
               for public, ours in names.items()}
    shards, size = [[]], 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    with atomic_dir(directory) as tmp:
        (tmp / CONFIG).write_text(config)
        for name in SIDE_FILES:
            if (source / name).is_file():
                (tmp / name).write_bytes((source / name).read_bytes())
        if tokenizer_json is not None:
            (tmp / "tokenizer.json").write_text(tokenizer_json)
        if len(shards) == 1:
            save_file(tensors, str(tmp / SINGLE), metadata={"format": "pt"})
        else:
            weight_map = {}
            for i, shard in enumerate(shards, 1):
                file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                save_file({n: tensors[n] for n in shard}, str(tmp / file), metadata={"format": "pt"})
                weight_map.update(dict.fromkeys(shard, file))
            total = sum(t.numel() * t.element_size() for t in tensors.values())
            (tmp / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                indent=2) + "\n")
        if extra is not None:
            extra(tmp)
    return directory


# AR-to-diffusion adaptation (DiffuLLaMA, Dream): a causal Qwen2 checkpoint becomes a Dream-layout
# masked-diffusion model. Dream keeps Qwen2's tensor names; what changes is config.json (model type,
# mask id), the tokenizer (a mask token) and, where the embedding has no spare row, its size.
MASK_TOKEN = "<|mask|>"


def adaptation_tokenizer(folder: str | os.PathLike):
    """The folder's tokenizer with ``MASK_TOKEN`` added as a special token, and that token's id."""
    from zoo.public_text import load_tokenizer

    tokenizer = load_tokenizer(Path(folder))
    if tokenizer.token_to_id(MASK_TOKEN) is None:
        tokenizer.add_special_tokens([MASK_TOKEN])
    return tokenizer, tokenizer.token_to_id(MASK_TOKEN)


def adaptation_mask_id(folder: str) -> int:
    """The mask id an adaptation of ``folder`` uses (for a config: ``{_target_:
    zoo.public.adaptation_mask_id, folder: ...}``)."""
    return adaptation_tokenizer(folder)[1]


def adapted_net(folder: str | os.PathLike) -> DecoderLM:
    """A causal Qwen2 folder's network, trainable, made ready to adapt to masked diffusion: attention
    bidirectional (``anneal_attention_steps`` anneals it from causal), logits shifted (position i keeps
    predicting token i + 1, as Dream's), and an embedding row for the mask token (the first spare row
    past the tokenizer's, or a new one initialised to the mean embedding)."""
    from dataclasses import replace

    folder = Path(folder)
    layout = detect(folder)
    if layout.model != "qwen2":
        raise ValueError(f"{folder}: adaptation writes Dream's layout, which is Qwen2's; this folder holds "
                         f"{layout.model!r}")
    net = trainable_net(folder)
    _, mask_id = adaptation_tokenizer(folder)
    if mask_id >= net.vocab_size:  # no spare row: grow the embedding (and an untied head) to hold it
        rows = mask_id + 1 - net.vocab_size
        with torch.no_grad():
            embed = torch.cat([net.embed.weight, net.embed.weight.mean(0, keepdim=True).repeat(rows, 1)])
            net.embed.weight = nn.Parameter(embed)
            if net.cfg.tie_embeddings:
                net.head.weight = net.embed.weight
            else:
                head = torch.cat([net.head.weight, net.head.weight.mean(0, keepdim=True).repeat(rows, 1)])
                net.head.weight = nn.Parameter(head)
        net.embed.num_embeddings = net.head.out_features = mask_id + 1
    net.cfg = replace(net.cfg, causal=False, shift=True, vocab_size=net.embed.num_embeddings)
    net.vocab_size, net.causal, net.shift = net.cfg.vocab_size, False, True
    net.adapted_from = str(folder)
    return net


def save_adapted(net: DecoderLM, source: str | os.PathLike, directory: str | os.PathLike,
                 dtype: torch.dtype | None = None, extra=None) -> Path:
    """An adapted network (``adapted_net``) as a Dream folder: Qwen2's tensor names, config.json with
    Dream's model type and the mask id, the tokenizer with the mask token; ``zoo.load`` then reads it as
    a masked-diffusion model (bidirectional, shifted)."""
    source = Path(source)
    layout = detect(source)
    tokenizer, mask_id = adaptation_tokenizer(source)
    config = {**read_json(source / CONFIG), "architectures": ["DreamModel"], "model_type": "Dream",
              "mask_token_id": mask_id, "vocab_size": net.vocab_size}
    config.setdefault("pad_token_id", config.get("eos_token_id"))
    return write_public(net, layout.names, json.dumps(config, indent=2) + "\n", source, directory, dtype=dtype,
                        extra=extra, tokenizer_json=tokenizer.to_str())
