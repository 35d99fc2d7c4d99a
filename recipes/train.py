"""Train any registered model with its recipe.

    python recipes/train.py model=dllm_code                      # the model's config picks its data
    python recipes/train.py model=dllm_code debug=fast           # a few steps, to check the wiring
    python recipes/train.py model=dllm_code trainer=ddp          # several processes (Lightning DDP)
    python recipes/train.py model=dllm_code export_dir=checkpoints/dllm_code-tiny
    python recipes/train.py model=dllm_code resume=outputs/.../checkpoints/last.ckpt
    python recipes/train.py model=vilad init_from=checkpoints/vilad-highway trainer.max_steps=0 \
        rounds.count=3 export_dir=...                            # closed-loop data aggregation rounds

Lightning checkpoints (for resuming) go to the run's folder under outputs/; with export_dir, the EMA
weights are evaluated and written as a pretrained checkpoint directory (zoo.load reads it).

With ``rounds.count`` > 0 the run is round 0 of a data aggregation (DAgger): each further round loads
the last round's export, calls ``rounds.collect(pipeline, round=r, out_dir=...)`` (the model's config
names it; it writes a data file and returns what it did), adds every file so far to the data
(``data.aggregated``), and fine-tunes from the last export for ``rounds.steps`` steps. The last round
is written to export_dir, with every round's record in meta.json's ``aggregation``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import hydra
import lightning as L
import torch
import torch.nn as nn
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar, Timer
from omegaconf import DictConfig, OmegaConf

from zoo.callbacks import EMA, AttentionAnnealing
from zoo.recipe_help import exit_with_help_if_asked
from zoo.lit import ZooModule
from zoo.pretrained import META, check_writable, load_config, load_meta, load_net, resolve, save_pretrained
from zoo.provenance import command_line, git_sha, hardware
from zoo.lora import add_lora, save_adapter
from zoo.public import save_adapted, save_public

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipes/, also when this file is imported by path
from model_card import CARD, card_text  # noqa: E402


class _NoTips(logging.Filter):
    """Drop Lightning's advertising tips from the training log; keep everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoTips())


def init_weights(net: torch.nn.Module, source: str, into: str | None = None) -> None:
    """Copy a pretrained checkpoint's weights into ``net``, or into its submodule ``into`` (the rest
    starts fresh); safetensors, identity-checked by load_net. Every parameter of the checkpoint and of
    the target must match by name and shape, or the error lists what differs."""
    if into:
        try:
            net = net.get_submodule(into)
        except AttributeError:
            raise ValueError(f"init_into={into!r}: the network has no such submodule") from None
    pretrained, _ = load_net(resolve(source))
    if getattr(pretrained, "predicts_next", None) != getattr(net, "predicts_next", None):
        # an AR model's logit at i is about token i + 1: its weights mean something only to a network
        # that keeps that shift (and a shifted network's only to one that does too)
        raise ValueError(f"init_from={source}: its logit at i predicts token "
                         f"{'i + 1' if getattr(pretrained, 'predicts_next', False) else 'i'}, this network's token "
                         f"{'i + 1' if getattr(net, 'predicts_next', False) else 'i'}; set the network's shift "
                         f"to match (shift=true to adapt a causal model)")
    theirs, mine = pretrained.state_dict(), net.state_dict()
    wrong = sorted(set(theirs) ^ set(mine)) + sorted(k for k in set(theirs) & set(mine) if theirs[k].shape != mine[k].shape)
    if wrong:
        raise ValueError(f"init_from={source}: its weights do not fit this network ({', '.join(wrong[:5])}"
                         f"{' ...' if len(wrong) > 5 else ''})")
    net.load_state_dict({k: v.to(mine[k].dtype) for k, v in theirs.items()})


def build(cfg: DictConfig):
    """(module, datamodule, ema or None) from a composed config; no training."""
    net = instantiate(cfg.model.net)
    if cfg.get("init_from"):
        init_weights(net, cfg.init_from, cfg.get("init_into"))
    if cfg.get("lora"):  # LoRA through peft: only the adapters train (zoo.lora)
        if not cfg.get("public_folder"):
            raise ValueError("lora: the adapters are written in a public folder's names; give public_folder")
        net = add_lora(net, **OmegaConf.to_container(cfg.lora, resolve=True))
    if cfg.get("compile"):
        net.forward = torch.compile(net.forward)  # the module (its state_dict names) stays as it is
    objective = instantiate(cfg.model.objective)
    lr_scheduler = instantiate(cfg.model.lr_scheduler) if cfg.model.get("lr_scheduler") else None
    sharding = OmegaConf.to_container(cfg.fsdp, resolve=True) if cfg.get("fsdp") else None
    module = ZooModule(net, objective, optimizer=instantiate(cfg.model.optimizer),
                       lr_scheduler=lr_scheduler, seed=cfg.seed, sharding=sharding)
    datamodule = instantiate(cfg.data)
    ema = EMA(cfg.ema_decay) if cfg.ema_decay else None
    return module, datamodule, ema


def consolidated(net: nn.Module, cfg: DictConfig, rank: int) -> nn.Module:
    """A sharded network's full weights in a fresh, unsharded copy of it (built from the same config), on
    the CPU of rank 0 (the other ranks get ``net`` back). Every rank must call it: the gather is collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(net, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank != 0:  # the gathered tensors land on rank 0 only
        return net
    whole = instantiate(cfg.model.net)
    whole.load_state_dict(full)
    return whole


EXPORT_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}  # export_dtype=


def init_record(source: str, into: str | None = None) -> dict:
    """Which weights a fine-tuned checkpoint started from: their folder and weights_sha256, the seconds
    of training they had (their meta.json's, where it says; the folder may later hold other weights)
    and the submodule they filled."""
    directory = resolve(source)
    # a public layout has no meta.json
    before = load_meta(directory).get("train_seconds") if (directory / META).is_file() else None
    return {"checkpoint": str(directory), "weights_sha256": load_config(directory).get("weights_sha256"),
            **({"train_seconds": before} if before is not None else {}), **({"into": into} if into else {})}


def export(module: ZooModule, datamodule, ema: EMA | None, cfg: DictConfig, steps: int,
           wall_seconds: float, sha: str, train_seconds: float | None = None, extra_meta: dict | None = None) -> Path:
    """Evaluate the (EMA) weights and write config.json, model.safetensors, meta.json + data files."""
    net = copy.deepcopy(module.net).cpu().eval()
    if ema is not None:
        ema.copy_to(net)
    net.__dict__.pop("forward", None)  # an instance-level torch.compile wrapper does not travel
    metrics = {}
    if hasattr(module.objective, "evaluate") and cfg.get("export_eval", True):
        datamodule.setup("validate")
        g = torch.Generator().manual_seed(cfg.seed)
        metrics = module.objective.evaluate(net, datamodule.val_dataloader(), generator=g,
                                            **(cfg.get("eval_kwargs") or {}))
    meta = {
        "command": command_line(), "git_sha": sha, "steps": steps,
        "wall_seconds": round(wall_seconds, 1), "hardware": hardware(), "metrics": metrics,
        # training time over every run that led here (a resumed run adds its predecessors')
        **({"train_seconds": round(train_seconds, 1)} if train_seconds is not None else {}),
        **({"resumed_from": str(cfg.resume)} if cfg.get("resume") else {}),
        "parameters": sum(p.numel() for p in net.parameters()), "ema_decay": cfg.ema_decay,
        "data": datamodule.stats() if hasattr(datamodule, "stats") else None,
        **({"init_from": init_record(cfg.init_from, cfg.get("init_into"))} if cfg.get("init_from") else {}),
        "config": OmegaConf.to_container(cfg.model, resolve=True),
        **(extra_meta or {}),
    }
    pipeline_kwargs = cfg.model.get("pipeline_kwargs")
    pipeline_kwargs = OmegaConf.to_container(pipeline_kwargs, resolve=True) if pipeline_kwargs else {}
    # A derived config unsets a setting of its parent's with null (Hydra merges dicts, never drops keys).
    pipeline_kwargs = {k: v for k, v in pipeline_kwargs.items() if v is not None}
    files = datamodule.pretrained_files() if hasattr(datamodule, "pretrained_files") else {}

    def copy_files(folder: Path) -> None:
        for name, path in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)  # e.g. tokenizer/model.safetensors
            shutil.copyfile(path, folder / name)

    if cfg.get("export_dtype"):
        net = net.to(EXPORT_DTYPES[cfg.export_dtype])  # checked by check_settings before training
        meta["export_dtype"] = cfg.export_dtype
    write_meta = lambda folder: (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")  # noqa: E731
    if cfg.get("public_folder") and cfg.get("lora"):  # peft's adapter files: zoo.load(folder, adapter=export_dir)
        directory = save_adapter(net, cfg.export_dir, source=cfg.public_folder, extra=write_meta)
    elif cfg.get("public_folder") and getattr(net, "adapted_from", None):  # AR adapted to diffusion: a Dream folder
        directory = save_adapted(net, cfg.public_folder, cfg.export_dir, extra=write_meta)
    elif cfg.get("public_folder"):  # a fine-tuned public model goes back into its own layout (zoo.load reads it too)
        directory = save_public(net, cfg.public_folder, cfg.export_dir, extra=write_meta)
    else:
        directory = save_pretrained(net, cfg.export_dir, meta=meta, pipeline_kwargs=pipeline_kwargs, extra=copy_files)
    if not cfg.get("public_folder"):  # the model card a Hub upload shows (recipes/model_card.py); a public
        # layout's export keeps its source's config.json, which the card cannot read, and its own README
        (Path(directory) / CARD).write_text(card_text(Path(directory), data=getattr(datamodule, "card", None)))
    print(f"exported {directory}: {metrics}")
    return directory


def check_settings(cfg: DictConfig) -> None:
    """Refuse, before any data is made or step taken, the settings that would fail later: a seed that
    is not an integer, an export dtype there is no cast for, a data batch size or sequence length below
    1, an export folder that cannot be written."""
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ValueError(f"seed={cfg.seed!r}: expected an integer")
    if cfg.get("export_dtype") and cfg.export_dtype not in EXPORT_DTYPES:
        raise ValueError(f"export_dtype={cfg.export_dtype!r}: expected one of {sorted(EXPORT_DTYPES)}")
    for key in ("batch_size", "seq_len"):
        value = (cfg.get("data") or {}).get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"data.{key}={value!r}: expected an integer >= 1")
    if cfg.export_dir:
        check_writable(cfg.export_dir)
    strategy = (cfg.get("trainer") or {}).get("strategy")
    sharded = isinstance(strategy, DictConfig) and str(strategy.get("_target_", "")).endswith("ModelParallelStrategy")
    if sharded and cfg.get("ema_decay"):
        raise ValueError("trainer=fsdp keeps no EMA of sharded weights: add ema_decay=null")


def check_resume(module: ZooModule, path: str) -> None:
    """A resume file that is not a Lightning checkpoint of this model is refused by name before any
    step: unreadable (truncated, another kind of file) or holding another network's weights. Read with
    ``weights_only`` (no code runs from the file); a sharded checkpoint (a folder) is left to its strategy."""
    path = Path(path)
    if path.is_dir():
        return
    if not path.is_file():
        raise ValueError(f"resume={path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("state_dict")
    except Exception as e:  # noqa: BLE001 - any failure to read means the same thing here
        raise ValueError(f"resume={path}: cannot be read as a Lightning checkpoint ({type(e).__name__}: "
                         f"{str(e)[:80]}); truncated or not a checkpoint") from None
    if not isinstance(state, dict):
        raise ValueError(f"resume={path}: holds no state_dict; not a Lightning checkpoint")
    own = module.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        example = (missing or unexpected or wrong)[0]
        raise ValueError(f"resume={path}: a checkpoint of another model ({len(missing)} weights missing, "
                         f"{len(unexpected)} unexpected, {len(wrong)} of another shape; e.g. {example!r})")


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        check_settings(cfg)
    except ValueError as e:
        sys.exit(f"error: {e}")
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if (cfg.get("rounds") or {}).get("count"):
        run_rounds(cfg, run_dir)
    else:
        train_once(cfg, run_dir)


def train_once(cfg: DictConfig, run_dir: Path, extra_meta: dict | None = None) -> Path | None:
    """Train (or resume) as ``cfg`` says, logging and checkpointing under ``run_dir``; export when
    cfg.export_dir is set and return that folder."""
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")  # TF32 on GPUs that have it; no effect on the CPU
    module, datamodule, ema = build(cfg)
    if cfg.resume:
        try:
            check_resume(module, cfg.resume)
        except ValueError as e:
            sys.exit(f"error: {e}")
    print(f"{cfg.model.net.get('name', cfg.model.net._target_)}: "
          f"{sum(p.numel() for p in module.net.parameters()) / 1e6:.2f}M parameters", flush=True)
    # "step000500.ckpt": no '=' in the name, so it can be passed back as resume=<path> to Hydra.
    callbacks = [ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step{step:06d}",
                                 auto_insert_metric_name=False, every_n_train_steps=cfg.ckpt_every_n_steps,
                                 save_last=True, save_top_k=-1),
                 LearningRateMonitor(logging_interval="step")]
    if ema is not None:
        callbacks.append(ema)
    if cfg.get("anneal_attention_steps"):
        callbacks.append(AttentionAnnealing(cfg.anneal_attention_steps))
    if cfg.rich_progress:
        callbacks.append(RichProgressBar())
    loggers = make_loggers(cfg, run_dir)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, default_root_dir=run_dir)
    sha = git_sha()  # the code that trains, read before the tree can change under a long run
    start = time.perf_counter()
    if cfg.trainer.get("max_steps") != 0:  # 0: a round 0 that is its init_from checkpoint as it is
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.resume)
    wall = time.perf_counter() - start
    # Lightning's Timer (made by max_time) carries the training time over a resume; wall is this process's
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    train_seconds = timer.time_elapsed("train") if timer is not None else None
    if cfg.export_dir:
        if getattr(module, "_sharded", False):  # every rank gathers its shards; rank 0 writes the whole network
            module.net = consolidated(module.net, cfg, trainer.global_rank)
        if trainer.is_global_zero:
            return export(module, datamodule, ema, cfg, trainer.global_step, wall, sha, train_seconds, extra_meta)
    return None


LOGGER_NEEDS = {"TensorBoardLogger": ("tensorboard", "tensorboardX"), "WandbLogger": ("wandb",),
                "MLFlowLogger": ("mlflow",)}  # the optional loggers and the package each needs


def make_loggers(cfg: DictConfig, run_dir: Path) -> list:
    """The loggers of the ``logger`` config group, each saving under ``run_dir``; a logger whose package
    is not installed is refused by name before any step."""
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        cls = str(node._target_).rsplit(".", 1)[-1]
        needs = LOGGER_NEEDS.get(cls, ())
        if needs and not any(importlib.util.find_spec(m) for m in needs):
            sys.exit(f"error: logger {name} needs the {needs[0]} package (pip install {needs[0]})")
        if cls == "MLFlowLogger":  # a file store in the run's folder unless the config names a server
            place = {} if node.get("tracking_uri") else {"tracking_uri": f"file:{run_dir / 'mlruns'}"}
        else:
            place = {"save_dir": str(run_dir)}
        loggers.append(instantiate(node, **place))
    return loggers


def run_rounds(cfg: DictConfig, run_dir: Path) -> None:
    """Round 0 as configured, then ``rounds.count`` rounds of collect, add, fine-tune (module docstring).
    Every round's export stays under run_dir/rounds/ (the ablation over rounds reads them)."""
    from zoo.pipeline import load

    if not cfg.export_dir:
        sys.exit("error: rounds.count > 0 needs export_dir (each round loads the last one's export)")
    collect = instantiate(cfg.rounds.collect) if cfg.rounds.get("collect") else None
    if collect is None:
        sys.exit("error: rounds.count > 0 needs rounds.collect (the model's config names its collector)")
    start, records, files = time.perf_counter(), [], list(cfg.data.get("aggregated") or [])
    first = OmegaConf.merge(cfg, {"export_dir": str(run_dir / "rounds" / "round0"), "export_eval": False})
    previous = train_once(first, run_dir / "round0")
    for r in range(1, cfg.rounds.count + 1):
        record = collect(load(previous), round=r, out_dir=str(run_dir / "aggregated"))
        print(f"round {r}: {json.dumps({k: v for k, v in record.items() if k != 'per_env'})}", flush=True)
        records.append(record)
        files.append(record["path"])
        last = r == cfg.rounds.count
        round_cfg = OmegaConf.merge(cfg, {
            "init_from": str(previous), "init_into": None, "resume": None,
            "export_dir": cfg.export_dir if last else str(run_dir / "rounds" / f"round{r}"),
            "export_eval": cfg.export_eval and last, "trainer": {"max_steps": cfg.rounds.steps},
            "data": {"aggregated": files}})
        aggregation = {"rounds": r, "steps_per_round": cfg.rounds.steps, "start": init_record(cfg.init_from) if
                       cfg.get("init_from") else None, "round0_steps": cfg.trainer.max_steps,
                       "collect": OmegaConf.to_container(cfg.rounds.collect, resolve=True),
                       "seconds_before_this_round": round(time.perf_counter() - start, 1), "per_round": records}
        previous = train_once(round_cfg, run_dir / f"round{r}", extra_meta={"aggregation": aggregation})
    shutil.copytree(previous, run_dir / "rounds" / f"round{cfg.rounds.count}")  # every round in one place


if __name__ == "__main__":
    exit_with_help_if_asked(__doc__, Path(__file__).parent / "configs/train.yaml", ("model", "trainer", "debug"))
    main()
