"""The zoo of non-autoregressive generative models: the shared core.

    import zoo
    zoo.list_models()               # registered builders
    zoo.list_pretrained()           # checkpoints/ directories
    pipe = zoo.load("dllm_code-tiny")
    out = pipe(prompt="def add(a, b):\n", steps=32, generator=torch.Generator().manual_seed(0))

Time convention everywhere: t = 0 is noise / all-mask, t = 1 is data.
"""

from zoo.pipeline import Pipeline, load
from zoo.pretrained import CheckpointError, list_pretrained, load_net, save_pretrained
from zoo.registry import (create_model, list_ablations, list_benchmarks, list_models, list_tasks, register_ablation,
                          register_benchmark, register_model, register_task)

__all__ = ["Pipeline", "load", "CheckpointError", "list_pretrained", "load_net", "save_pretrained",
           "create_model", "list_models", "register_model", "list_tasks", "register_task", "list_benchmarks",
           "register_benchmark", "list_ablations", "register_ablation"]
