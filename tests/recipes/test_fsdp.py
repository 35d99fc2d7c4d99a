"""trainer=fsdp (zoo/sharding.py): two sharded CPU processes (gloo) train as two DDP processes do, step
for step; a sharded checkpoint resumes; the export gathers the shards into one ordinary checkpoint."""

import pytest
import torch
from safetensors.torch import load_file

import zoo

from test_train import run_train, train_losses  # tests/recipes is on sys.path (pytest rootdir-relative imports)

COMMON = ["model=dllm_code", "trainer.accelerator=cpu", "trainer.devices=2", "debug=fast", "ema_decay=null",
          "trainer.log_every_n_steps=1", "trainer.val_check_interval=1000"]


@pytest.mark.slow
def test_sharded_training_matches_ddp_resumes_and_exports_whole(tmp_path):
    runs = {}
    for name, extra in (("ddp", ["trainer=ddp"]), ("fsdp", ["trainer=fsdp"])):
        result = run_train(tmp_path / name, *COMMON, *extra, "trainer.max_steps=5", f"export_dir={tmp_path / (name + '_x')}")
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = train_losses(tmp_path / name)
    assert sorted(runs["fsdp"]) == sorted(runs["ddp"]) == [0, 1, 2, 3, 4]
    gap = max(abs(runs["fsdp"][step] - loss) for step, loss in runs["ddp"].items())
    print(f"dllm_code: largest loss gap FSDP vs DDP over 5 steps {gap:.2e}")  # pytest -s shows it
    assert gap < 1e-4, runs

    # the export is one ordinary checkpoint with the same weights as DDP's
    ddp_w, fsdp_w = (load_file(tmp_path / f"{n}_x" / "model.safetensors") for n in ("ddp", "fsdp"))
    assert ddp_w.keys() == fsdp_w.keys()
    assert max((ddp_w[k] - fsdp_w[k]).abs().max().item() for k in ddp_w) < 1e-4
    out = zoo.load(tmp_path / "fsdp_x")(prompt="x = ", gen_length=4, steps=2, block_length=4)
    assert out.tokens.shape == (1, 4)

    # a sharded checkpoint (a folder, one shard a rank) resumes where the run stopped
    result = run_train(tmp_path / "part", *COMMON, "trainer=fsdp", "trainer.max_steps=3", "ckpt_every_n_steps=3")
    assert result.returncode == 0, result.stderr[-3000:]
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    assert last.is_dir() and len(list(last.glob("*.distcp"))) == 2
    result = run_train(tmp_path / "rest", *COMMON, "trainer=fsdp", "trainer.max_steps=5", f"resume={last}")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = train_losses(tmp_path / "rest")
    assert sorted(resumed) == [3, 4]
    for step in (3, 4):
        assert abs(resumed[step] - runs["fsdp"][step]) < 1e-4, (step, resumed[step], runs["fsdp"][step])


def test_an_ema_with_sharded_weights_is_refused_before_training(tmp_path):
    result = run_train(tmp_path, *COMMON[:-3], "trainer=fsdp", "trainer.max_steps=1", timeout=120)
    assert result.returncode != 0 and "ema_decay=null" in result.stderr and "Traceback" not in result.stderr


def test_shard_wraps_each_block_and_refuses_an_unknown_precision():
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from zoo.sharding import shard

    net = zoo.create_model("dllm_code-tiny", depth=2, dim=32, num_heads=2)
    with pytest.raises(ValueError, match="mixed_precision"):
        shard(net, None, mixed_precision="fp8")
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:29561", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        assert shard(net, mesh, activation_checkpointing=True) == 2
        loss = net(torch.randint(0, 100, (2, 8))).float().mean()
        loss.backward()
        assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
        low = zoo.create_model("dllm_code-tiny", depth=2, dim=32, num_heads=2)
        shard(low, mesh, mixed_precision="bf16")  # bf16 compute, float32 shards and gradients
        out = low(torch.randint(0, 100, (2, 8)))
        assert out.dtype == torch.bfloat16
        out.float().mean().backward()
        assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in low.parameters())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_sharded_sft_of_a_public_layout_matches_ddp_and_exports_its_layout(tmp_path, family):
    import json

    from models.dllm_code.tiny_public import write_tiny_folder
    from zoo.public import detect

    folder = write_tiny_folder(tmp_path / family, family, seed=4)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"def f{i}(a):\n", "answer": f"    return a * {i}\n"}) + "\n"
                             for i in range(16)))
    common = ["model=public_sft", f"public_folder={folder}", f"data.path={pairs}", "trainer.accelerator=cpu",
              "trainer.devices=2", "trainer.max_steps=5", "trainer.log_every_n_steps=1",
              "trainer.val_check_interval=1000"]
    losses = {}
    for name in ("ddp", "fsdp"):
        result = run_train(tmp_path / name, *common, f"trainer={name}", f"export_dir={tmp_path / (name + '_x')}")
        assert result.returncode == 0, result.stderr[-3000:]
        losses[name] = train_losses(tmp_path / name)
    assert sorted(losses["fsdp"]) == sorted(losses["ddp"]) == [0, 1, 2, 3, 4]
    gap = max(abs(losses["fsdp"][s] - losses["ddp"][s]) for s in losses["ddp"])
    print(f"{family}: largest loss gap FSDP vs DDP over 5 steps {gap:.2e}")  # pytest -s shows it
    assert gap < 1e-4, losses
    assert detect(tmp_path / "fsdp_x").model == detect(folder).model  # written back in the folder's own layout
    a, b = (load_file(tmp_path / f"{n}_x" / "model.safetensors") for n in ("ddp", "fsdp"))
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
