"""LoRA through peft on public models: only the adapters learn, merged equals unmerged, and the adapter
files are peft's (peft + transformers load them onto the reference model to the same logits)."""

import pytest
import torch

import zoo
from models.dllm_code.tiny_public import write_tiny_folder
from zoo.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, add_lora, load_adapter, merge_lora, save_adapter
from zoo.public import load_public_net, trainable_net

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")


def trained_adapter(folder):
    """A LoRA net whose adapters were moved off their zero start (lora_B starts at 0: a no-op)."""
    torch.manual_seed(0)
    net = add_lora(trainable_net(folder), r=4, alpha=8.0)
    for name, p in net.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    return net.eval()


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_only_the_adapters_learn_and_merging_changes_nothing(family, tmp_path):
    net = add_lora(trainable_net(write_tiny_folder(tmp_path / family, family)), r=4)
    x = torch.randint(0, net.vocab_size, (2, 12))
    net(x).square().mean().backward()
    graded = {n for n, p in net.named_parameters() if p.grad is not None}
    assert graded and all("lora_" in n for n in graded)
    assert not any(p.requires_grad for n, p in net.named_parameters() if "lora_" not in n)
    net = trained_adapter(tmp_path / family)
    with torch.no_grad():
        before = net(x)
        merged = merge_lora(net)(x)
    assert not any("lora" in n for n, _ in net.named_modules())
    assert torch.allclose(before, merged, atol=1e-5)


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_the_adapter_files_are_peft_s(family, tmp_path):
    from test_public_parity import reference_logits, reference_model

    from test_public_parity import reference_logits, reference_model

    folder = write_tiny_folder(tmp_path / family, family, seed=1)
    net = trained_adapter(folder)
    out = save_adapter(net, tmp_path / "adapter", source=folder)
    assert {p.name for p in out.iterdir()} == {ADAPTER_CONFIG, ADAPTER_WEIGHTS}
    x = torch.randint(0, net.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = net(x)
    if family == "dream":  # the folder's names are transformers' own: peft loads the file as it is
        reference = peft.PeftModel.from_pretrained(reference_model(folder), str(out)).eval()
        theirs = reference_logits(reference, x, bidirectional=True)
        assert (theirs - ours).abs().max() <= 1e-4
    # back into the zoo: a fresh base plus the adapter, unmerged and merged, and through zoo.load
    for merge in (False, True):
        base, _ = load_public_net(folder)
        with torch.no_grad():
            assert torch.allclose(load_adapter(base, out, source=folder, merge=merge)(x), ours, atol=1e-5)
    pipe = zoo.load(folder, adapter=out)
    with torch.no_grad():
        assert torch.allclose(pipe.net(x), ours, atol=1e-5)
    assert not any("lora" in n for n, _ in pipe.net.named_modules())  # zoo.load merges it for sampling
