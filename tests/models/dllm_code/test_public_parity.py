"""Public checkpoints against their reference code, on tiny random folders in each exact layout:
logits against ``transformers``' LlamaForCausalLM / Qwen2ForCausalLM (a full 4-D mask for the
bidirectional ones), and greedy decodings against step-by-step statements of LLaDA's ``generate()`` and
Dream's ``diffusion_generate`` (written from their published code, not from the zoo's sampler)."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import zoo
from models.dllm_code.tiny_public import write_tiny_folder
from zoo.objectives.masked_sampling import sample
from zoo.objectives.transfer_schedules import TimeGridSchedule
from zoo.public import load_public_net

transformers = pytest.importorskip("transformers")

# LLaDA's block names -> LLaMA's (from modeling_llada.LLaDALlamaBlock: x = act(ff_proj(x)) * up_proj(x); ff_out(x))
LLADA_TO_LLAMA = {"attn_norm": "input_layernorm", "ff_norm": "post_attention_layernorm", "q_proj": "self_attn.q_proj",
                  "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj", "attn_out": "self_attn.o_proj",
                  "ff_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "ff_out": "mlp.down_proj"}
DROP = ("architectures", "model_type", "torch_dtype", "mask_token_id")


def reference_model(folder):
    """The folder's weights in transformers' own implementation of the same architecture."""
    cfg = json.loads((folder / "config.json").read_text())
    state = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update(load_file(f))
    if cfg["model_type"] == "llada":
        hf_state = {}
        for name, tensor in state.items():
            top = {"model.transformer.wte.weight": "model.embed_tokens.weight", "model.transformer.ln_f.weight":
                   "model.norm.weight", "model.transformer.ff_out.weight": "lm_head.weight"}
            if name in top:
                hf_state[top[name]] = tensor
            else:
                _, _, _, i, block_name, kind = name.split(".")
                hf_state[f"model.layers.{i}.{LLADA_TO_LLAMA[block_name]}.{kind}"] = tensor
        config = transformers.LlamaConfig(
            vocab_size=cfg["embedding_size"], hidden_size=cfg["d_model"], intermediate_size=cfg["mlp_hidden_size"],
            num_hidden_layers=cfg["n_layers"], num_attention_heads=cfg["n_heads"], num_key_value_heads=cfg["n_kv_heads"],
            rms_norm_eps=cfg["rms_norm_eps"], rope_theta=cfg["rope_theta"], tie_word_embeddings=cfg["weight_tying"],
            max_position_embeddings=cfg["max_sequence_length"])
        model = transformers.LlamaForCausalLM(config)
    else:
        hf_state = state
        kwargs = {k: v for k, v in cfg.items() if k not in DROP}
        cls = (transformers.LlamaConfig, transformers.LlamaForCausalLM) if cfg["model_type"] == "llama" else \
            (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)
        model = cls[1](cls[0](**kwargs))
    missing, unexpected = model.load_state_dict(hf_state, strict=False)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    assert set(missing) <= tied and not unexpected, (missing, unexpected)
    return model.eval()


def reference_logits(model, x, bidirectional: bool):
    with torch.no_grad():
        if bidirectional:
            return model(x, attention_mask=torch.ones(x.shape[0], 1, x.shape[1], x.shape[1], dtype=torch.bool)).logits
        return model(x).logits


LAYOUTS = [("llada", {}), ("llada", {"tie": True, "kv_heads": 4}), ("dream", {}), ("qwen2", {}),
           ("qwen2", {"tie": True}), ("llama", {}), ("llama", {"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}),
           ("llama", {"rope_scaling": {"rope_type": "linear", "factor": 2.0}})]


@pytest.mark.parametrize("family,options", LAYOUTS, ids=[f"{f}-{'-'.join(o) or 'plain'}" for f, o in LAYOUTS])
def test_logits_equal_transformers(family, options, tmp_path):
    folder = write_tiny_folder(tmp_path / family, family, seed=3, shards=2, **options)
    net, layout = load_public_net(folder)
    assert layout.model == family and net.causal == (family in ("qwen2", "llama")) and net.shift == (family == "dream")
    x = torch.randint(0, net.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    theirs = reference_logits(reference_model(folder), x, bidirectional=not net.causal)
    with torch.no_grad():
        ours = net(x)
    print(f"{family} {options}: max |logit difference| {(ours - theirs).abs().max().item():.3g}")
    assert (ours - theirs).abs().max().item() <= 1e-4
    # the attention really is what the family says: bidirectional differs from causal on the same weights
    if not net.causal:
        assert (reference_logits(reference_model(folder), x, bidirectional=False) - ours).abs().max() > 1e-2


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_ar_cache_decoding_equals_recomputing_the_whole_sequence(family, tmp_path):
    pipe = zoo.load(write_tiny_folder(tmp_path / family, family, seed=1))
    out = pipe(prompt="def add(a, b):\n", gen_length=12)
    ids = torch.tensor([pipe.tokenizer.encode("def add(a, b):\n").ids])
    model = reference_model(tmp_path / family)
    with torch.no_grad():
        for _ in range(12):
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    reference = ids[0, -12:]
    stops = [i for i, t in enumerate(reference.tolist()) if t in pipe.special.stop_ids]
    end = stops[0] + 1 if stops else 12
    assert out.tokens[0, :end].tolist() == reference[:end].tolist()


# --- the reference samplers, step by step ---------------------------------------------------------------

def llada_generate(model, prompt, steps, gen_length, block_length, mask_id, remasking="low_confidence",
                   threshold=None):
    """LLaDA's generate() (Fast-dLLM's llada/generate.py, temperature 0): blocks left to right, each its
    share of the steps; get_num_transfer_tokens' even split; low-confidence (float64 softmax) top-k, or
    with a threshold every masked token of the block whose confidence reaches it, the best one always."""
    x = torch.full((1, prompt.shape[1] + gen_length), mask_id, dtype=torch.long)
    x[:, :prompt.shape[1]] = prompt
    num_blocks = gen_length // block_length
    steps = steps // num_blocks
    nfe = 0
    for b in range(num_blocks):
        lo, hi = prompt.shape[1] + b * block_length, prompt.shape[1] + (b + 1) * block_length
        mask_num = (x[:, lo:hi] == mask_id).sum(1, keepdim=True)
        num_transfer = torch.zeros(1, steps, dtype=torch.int64) + mask_num // steps
        num_transfer[0, :int(mask_num % steps)] += 1
        i = 0
        while True:
            nfe += 1
            mask_index = x == mask_id
            logits = model(x)
            mask_index[:, hi:] = False
            x0 = logits.argmax(-1)
            p = F.softmax(logits.double(), -1)
            x0_p = torch.gather(p, -1, x0[..., None])[..., 0]
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, torch.tensor(-float("inf"), dtype=torch.float64))
            k = int(mask_index.sum()) if threshold is not None else int(num_transfer[0, i])
            _, select = torch.topk(confidence[0], k=k)
            transfer = torch.zeros_like(x0, dtype=torch.bool)
            transfer[0, select] = True
            if threshold is not None:
                for j in range(1, k):
                    if confidence[0, select[j]] < threshold:
                        transfer[0, select[j]] = False
            x[transfer] = x0[transfer]
            i += 1
            if (x[:, lo:hi] == mask_id).sum() == 0:
                break
    return x, nfe


def dream_generate(model, prompt, steps, gen_length, mask_id, alg, eps=1e-3, attention_mask=None):
    """Dream's diffusion_generate / _sample (temperature 0, alg_temp None): the logits shifted right by
    one, times linspace(1, eps, steps + 1), int(mean masks * (1 - s / t)) tokens a step (all at the
    last), chosen by top-k of the algorithm's confidence over the whole sequence. With left padding
    (``attention_mask`` 0 on pads): positions cumsum - 1 (pads 1), and a pairwise mask, real with real."""
    x = F.pad(prompt, (0, gen_length), value=mask_id)
    tok_idx, pairwise = None, None
    if attention_mask is not None and (attention_mask == 0).any():
        attention_mask = F.pad(attention_mask, (0, gen_length), value=1)
        tok_idx = attention_mask.long().cumsum(-1) - 1
        tok_idx.masked_fill_(attention_mask == 0, 1)
        pairwise = attention_mask[:, None, None, :].bool() & attention_mask[:, None, :, None].bool()
    timesteps = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        mask_index = x == mask_id
        logits = model(x) if pairwise is None else model(x, pairwise, tok_idx)
        logits = torch.cat([logits[:, :1], logits[:, :-1]], 1)
        probs = torch.softmax(logits[mask_index], -1)
        confidence, x0 = probs.max(-1)
        if alg == "topk_margin":
            top = torch.sort(probs, -1, descending=True).values
            confidence = top[:, 0] - top[:, 1]
        elif alg == "entropy":
            confidence = torch.sum(probs * torch.log(probs + 1e-10), -1)
        t, s = timesteps[i], timesteps[i + 1]
        num_mask_token = mask_index.sum() / mask_index.shape[0]
        k = int(num_mask_token * (1 - s / t)) if i < steps - 1 else int(num_mask_token)
        full = torch.full_like(x, -torch.inf, dtype=logits.dtype)
        full[mask_index] = confidence
        if k > 0:
            _, index = torch.topk(full, k)
            x_ = torch.zeros_like(x) + mask_id
            x_[mask_index] = x0.clone()
            rows = torch.arange(x.shape[0])[:, None].expand_as(index)
            x[rows, index] = x_[rows, index]
    return x, steps


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("public")
    return {f: write_tiny_folder(root / f, f, seed=7) for f in ("llada", "dream")}


def _prompt(pipe, n_rows=1):
    ids = pipe.tokenizer.encode("def fibonacci(n):\n    if n").ids
    return torch.tensor([ids] * n_rows)


@pytest.mark.parametrize("steps,gen_length,block_length", [(32, 32, 32), (32, 32, 8), (16, 32, 8), (8, 32, 32)])
@pytest.mark.parametrize("policy", ["low_confidence", "threshold"])
def test_llada_greedy_decoding_equals_the_reference(folders, steps, gen_length, block_length, policy):
    pipe = zoo.load(folders["llada"])
    model = reference_model(folders["llada"])
    prompt = _prompt(pipe)
    threshold = 0.0049 if policy == "threshold" else None  # a random model is unsure (top-1 about 1/200): a bar near its median
    ref, ref_nfe = llada_generate(lambda x: reference_logits(model, x, True), prompt, steps, gen_length, block_length,
                                  pipe.mask_id, threshold=threshold)
    out = sample(pipe.net, mask_id=pipe.mask_id, prompt=prompt, gen_length=gen_length, steps=steps,
                 block_length=block_length, policy=policy, threshold=threshold or 0.9, propose_mask=True)
    assert out.tokens.tolist() == ref.tolist()
    assert out.nfe == ref_nfe
    if policy == "threshold":
        assert ref_nfe < gen_length  # the bar did commit several tokens in a step


@pytest.mark.parametrize("steps", [32, 16, 5])
@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy"])
def test_dream_greedy_decoding_equals_the_reference(folders, alg, steps):
    pipe = zoo.load(folders["dream"])
    model = reference_model(folders["dream"])
    prompt = _prompt(pipe, n_rows=2)
    ref, ref_nfe = dream_generate(lambda x: reference_logits(model, x, True), prompt.clone(), steps, 32,
                                  pipe.mask_id, alg)
    out = pipe(prompt=["def fibonacci(n):\n    if n"] * 2, gen_length=32, steps=steps, alg=alg)
    assert out.tokens.tolist() == ref[:, prompt.shape[1]:].tolist() and out.nfe == ref_nfe
    # the same through the sampler with Dream's pieces named
    direct = sample(pipe.net, mask_id=pipe.mask_id, prompt=prompt, gen_length=32, steps=steps,
                    policy={"maskgit_plus": "low_confidence", "topk_margin": "margin", "entropy": "entropy"}[alg],
                    schedule=TimeGridSchedule(1e-3), propose_mask=True)
    assert direct.tokens.tolist() == ref.tolist()


def test_dream_time_grid_commits_what_the_reference_grid_says():
    """Counts per step for 32 masks over 5 steps: int(remaining * (1 - t_{i+1}/t_i)), all at the last step."""
    schedule = TimeGridSchedule(1e-3)
    remaining = torch.tensor([32])
    schedule.start_block(remaining, 5)
    counts = []
    for step in range(5):
        k, _ = schedule.count(step, remaining)
        counts.append(int(k))
        remaining = remaining - k
    times = torch.linspace(1, 1e-3, 6)
    left, expected = 32.0, []
    for i in range(5):
        k = int(torch.tensor(left) * (1 - times[i + 1] / times[i])) if i < 4 else int(left)
        expected.append(k)
        left -= k
    assert counts == expected and sum(counts) == 32 and counts[0] == 6


def test_dream_origin_moves_each_token_with_the_grid_probability(folders):
    """origin commits a Binomial(remaining, 1 - s/t) count of random positions: over many rows the mean
    share at the first of 4 steps is 1 - t_1 / t_0 = 0.2498."""
    pipe = zoo.load(folders["dream"])
    torch.manual_seed(0)
    first = []

    class Counting(torch.nn.Module):
        shift, causal, max_seq_len, vocab_size = True, False, 1024, pipe.net.vocab_size

        def forward(self, x, t=None, cond=None, valid=None):
            first.append(((x == pipe.mask_id).sum(1)).float())
            return pipe.net(x)

    prompt = _prompt(pipe, n_rows=64)
    sample(Counting(), mask_id=pipe.mask_id, prompt=prompt, gen_length=32, steps=4, policy="origin",
           schedule=TimeGridSchedule(1e-3), generator=torch.Generator().manual_seed(0))
    share = 1 - first[1].mean().item() / 32
    assert abs(share - (1 - 0.75025 / 1.0)) < 0.03
    assert first[1].std() > 0  # a random count per row, not a fixed one


@pytest.mark.parametrize("family", ["llada", "dream", "qwen2"])
def test_an_export_in_the_public_layout_reloads_identically(family, tmp_path):
    """A loaded (say, fine-tuned) model written back under the tensor names it came with, in shards:
    zoo.load and transformers read it to the same logits."""
    from zoo.public import save_public

    folder = write_tiny_folder(tmp_path / family, family, seed=9)
    net, _ = load_public_net(folder)
    with torch.no_grad():
        net.blocks[0].attn.q.weight.add_(0.01)  # a change a fine-tuning would make
    out = save_public(net, folder, tmp_path / "export", shard_bytes=20_000)
    assert len(list(out.glob("model-*.safetensors"))) > 1 and (out / "model.safetensors.index.json").is_file()
    assert (out / "tokenizer.json").read_bytes() == (folder / "tokenizer.json").read_bytes()
    x = torch.randint(0, net.vocab_size, (1, 24), generator=torch.Generator().manual_seed(0))
    reloaded, _ = load_public_net(out)
    with torch.no_grad():
        assert torch.equal(reloaded(x), net(x))
        theirs = reference_logits(reference_model(out), x, bidirectional=not net.causal)
    assert (theirs - net(x)).abs().max() <= 1e-4
    assert type(zoo.load(out)).__name__ == type(zoo.load(folder)).__name__


@pytest.mark.parametrize("alg", ["maskgit_plus", "entropy"])
def test_dream_left_padded_batch_equals_the_reference(folders, alg):
    """Prompts of different lengths in one batch: Dream's reference with its attention mask and position
    ids, against the zoo's left padding."""
    pipe = zoo.load(folders["dream"])
    model = reference_model(folders["dream"])
    texts = ["def fibonacci(n):\n    if n", "x = 1\n"]
    ids = [pipe.tokenizer.encode(t).ids for t in texts]
    width = max(map(len, ids))
    prompt = torch.tensor([[pipe.pad_id] * (width - len(i)) + i for i in ids])
    attention = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])

    def run(x, pairwise=None, positions=None):
        with torch.no_grad():
            if pairwise is None:
                return reference_logits(model, x, True)
            return model(x, attention_mask=pairwise, position_ids=positions).logits

    ref, _ = dream_generate(run, prompt.clone(), 16, 32, pipe.mask_id, alg, attention_mask=attention)
    out = pipe(prompt=texts, gen_length=32, steps=16, alg=alg)
    assert out.tokens.tolist() == ref[:, width:].tolist()
