"""LoRA through ``peft`` (the ecosystem's library, not a hand-written adapter), on the zoo's networks and on
public checkpoints: adapters injected into named linear layers, saved in peft's own files
(adapter_config.json + adapter_model.safetensors) under the public layout's module names, so that
peft + transformers read an adapter trained here, and merged into the base weights when asked.

    net = add_lora(trainable_net(folder), r=16, alpha=32)     # only the adapters train
    save_adapter(net, "/models/my-adapter", source=folder)    # peft's files, the folder's module names
    pipe = zoo.load(folder, adapter="/models/my-adapter")     # the base plus the adapter (merge=True folds it in)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."  # what peft's PeftModel puts before a module's name in its files
TARGETS = ("q", "k", "v", "o", "gate", "up", "down")  # the decoder's linear layers (zoo.nn.decoder)


def add_lora(net: nn.Module, r: int = 16, alpha: float = 32.0, dropout: float = 0.0,
             targets: tuple[str, ...] | list[str] = TARGETS) -> nn.Module:
    """Inject LoRA adapters of rank ``r`` (scale alpha / r) into the linear layers named ``targets``;
    every other parameter is frozen."""
    from peft import LoraConfig, inject_adapter_in_model

    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"lora r={r!r}: expected a positive integer")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
    return inject_adapter_in_model(config, net)


def _public_modules(source: str | os.PathLike | None) -> dict[str, str]:
    """The zoo's module name -> the public folder's (from its layout's tensor names); identity without one."""
    if source is None:
        return {}
    from zoo.public import detect

    return {ours.rsplit(".", 1)[0]: public.rsplit(".", 1)[0] for public, ours in detect(source).names.items()}


def lora_modules(net: nn.Module) -> dict[str, nn.Module]:
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in net.named_modules() if isinstance(m, LoraLayer)}


def save_adapter(net: nn.Module, directory: str | os.PathLike, source: str | os.PathLike | None = None,
                 extra=None) -> Path:
    """peft's adapter files for ``net``'s LoRA layers, named as the public folder ``source`` names its
    modules (a public model's adapter loads into transformers' model of that folder); atomically."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from zoo.pretrained import atomic_dir

    layers = lora_modules(net)
    if not layers:
        raise ValueError("the network has no LoRA layers (add_lora first)")
    rename = _public_modules(source)
    first = next(iter(layers.values()))
    r, alpha = first.r["default"], first.lora_alpha["default"]
    state = {}
    for key, tensor in get_peft_model_state_dict(net).items():  # "blocks.0.attn.q.lora_A.weight"
        module, _, leaf = key.partition(".lora_")
        state[f"{PEFT_PREFIX}{rename.get(module, module)}.lora_{leaf}"] = tensor.detach().contiguous().cpu()
    config = {"peft_type": "LORA", "task_type": None, "r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
              "bias": "none", "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
              "target_modules": sorted(rename.get(name, name) for name in layers),
              "base_model_name_or_path": str(source) if source is not None else None}
    with atomic_dir(directory) as tmp:
        save_file(state, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        if extra is not None:
            extra(tmp)
    return Path(directory)


def load_adapter(net: nn.Module, directory: str | os.PathLike, source: str | os.PathLike | None = None,
                 merge: bool = False) -> nn.Module:
    """``net`` with the adapter of ``directory`` (peft's files; module names of the public folder
    ``source``); ``merge`` folds it into the base weights and removes the LoRA layers."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    from zoo.pretrained import CheckpointError, read_json

    directory = Path(directory)
    config = read_json(directory / ADAPTER_CONFIG)
    if config.get("peft_type") != "LORA":
        raise CheckpointError(f"{directory / ADAPTER_CONFIG}: peft_type={config.get('peft_type')!r}; the zoo reads LORA adapters")
    ours = {public: mine for mine, public in _public_modules(source).items()}
    targets = config.get("target_modules") or []
    if isinstance(targets, str):
        raise CheckpointError(f"{directory / ADAPTER_CONFIG}: target_modules as a pattern is not supported; list the modules")
    modules = dict(net.named_modules())
    mapped = [ours.get(t, t) for t in targets]
    unknown = [t for t, m in zip(targets, mapped) if m not in modules]
    if unknown:
        raise CheckpointError(f"{directory / ADAPTER_CONFIG}: target modules not in this network: {unknown[:3]}")
    lora = LoraConfig(r=config["r"], lora_alpha=config["lora_alpha"], lora_dropout=0.0, target_modules=mapped)
    net = inject_adapter_in_model(lora, net)
    state = {}
    for key, tensor in load_file(str(directory / ADAPTER_WEIGHTS)).items():
        module, _, leaf = key.removeprefix(PEFT_PREFIX).partition(".lora_")
        state[f"{ours.get(module, module)}.lora_{leaf}"] = tensor
    result = set_peft_model_state_dict(net, state)
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if missing or getattr(result, "unexpected_keys", []):
        raise CheckpointError(f"{directory / ADAPTER_WEIGHTS}: does not fit the adapter's modules "
                              f"(missing {missing[:3]}, unexpected {list(getattr(result, 'unexpected_keys', []))[:3]})")
    return merge_lora(net) if merge else net


@torch.no_grad()
def merge_lora(net: nn.Module) -> nn.Module:
    """Fold every LoRA layer into its base linear layer (W + B A alpha / r) and put the base layer back."""
    for name, layer in lora_modules(net).items():
        layer.merge()
        parent, _, leaf = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, leaf, layer.get_base_layer())
    return net
