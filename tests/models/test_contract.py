"""One contract for every registered model: forward shape, backward, a 2-step sample, and a
save/load round trip with bit-identical outputs; and one for every training config's objective."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import zoo
from zoo.objectives.base import Objective, check_objective
from zoo.pretrained import load_net
from zoo.registry import get_entry

MODELS = zoo.list_models()


def test_every_model_has_an_example_and_a_pipeline():
    assert MODELS, "no model registered: is the project installed (pip install -e .)?"
    for name in MODELS:
        assert get_entry(name).example is not None, name
        assert get_entry(name).pipeline is not None, name


@pytest.mark.parametrize("name", MODELS)
def test_model_contract(name, tmp_path):
    torch.manual_seed(0)
    net = zoo.create_model(name)
    example = get_entry(name).example(net, torch.Generator().manual_seed(0))

    out = net(*example.args, **example.kwargs)
    assert tuple(out.shape) == tuple(example.out_shape)
    assert torch.isfinite(out).all()

    out.float().square().mean().backward()
    # A network may name parameters that only a loss term outside forward trains (a VQ codebook).
    outside = set(getattr(net, "trained_outside_forward", ()))
    named = {n: p.grad for n, p in net.named_parameters() if p.requires_grad}
    assert {n for n, g in named.items() if g is None} == outside
    grads = [g for g in named.values() if g is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)

    net.eval()
    a = example.sample(net, torch.Generator().manual_seed(1))
    b = example.sample(net, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    if example.stochastic:  # a determinism check that could not fail would prove nothing
        assert not torch.equal(a, example.sample(net, torch.Generator().manual_seed(2))), name

    zoo.save_pretrained(net, tmp_path / name)
    loaded, _ = load_net(tmp_path / name)
    with torch.no_grad():
        assert torch.equal(net(*example.args, **example.kwargs), loaded(*example.args, **example.kwargs))


MODEL_CONFIGS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "recipes/configs/model").glob("*.yaml"))


@pytest.fixture(scope="module")
def public_folders(tmp_path_factory):
    from models.dllm_code.tiny_public import write_tiny_folder

    root = tmp_path_factory.mktemp("public")
    return {"public_sft": write_tiny_folder(root / "llada", "llada"), "public_adapt": write_tiny_folder(root / "qwen2", "qwen2")}


@pytest.mark.parametrize("config", MODEL_CONFIGS)
def test_every_training_configs_objective_keeps_the_objective_contract(config, public_folders):
    """Each model YAML's objective, as training builds it, is a zoo.objectives.base.Objective with the
    signatures zoo.lit and the export call (check_objective raises otherwise)."""
    overrides = [f"model={config}"] + ([f"public_folder={public_folders[config]}"] if config in public_folders else [])
    with initialize_config_dir(str(Path(__file__).resolve().parents[2] / "recipes/configs"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    objective = instantiate(cfg.model.objective)
    assert isinstance(objective, Objective)
    check_objective(objective)


def test_check_objective_names_what_is_missing():
    class NoEvaluate:
        def loss(self, net, x1, generator=None):
            return None

    class NoGenerator(NoEvaluate):
        def evaluate(self, net, dataloader):
            return {}

    with pytest.raises(TypeError, match=r"lacks \['evaluate'\]"):
        check_objective(NoEvaluate())
    with pytest.raises(TypeError, match=r"NoGenerator.evaluate.*expected \(net, dataloader, ..., generator=None\)"):
        check_objective(NoGenerator())
