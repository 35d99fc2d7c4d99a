"""Public checkpoints as pipelines: LLaDA and Dream / DiffuCoder (masked diffusion), Qwen2 and LLaMA
causal LMs (the study's AR baselines), read from their own folders (``zoo.public``) with their own
tokenizer files.

What comes from which file:
- config.json: the network (``zoo.public``), ``mask_token_id``, ``eos_token_id``, ``bos_token_id``,
  ``pad_token_id``;
- generation_config.json: more ids that end an answer (``eos_token_id``, an int or a list);
- tokenizer.json (else vocab.json + merges.txt): the tokenizer; tokenizer_config.json: the added
  tokens (for the vocab.json form), ``bos_token`` / ``eos_token`` (the instruct models' end of turn),
  ``chat_template``, rendered with jinja2 as ``transformers`` renders it.

Sampling follows each family's reference code by default (``DEFAULTS``): LLaDA's ``generate()``
(linear schedule, low-confidence remasking, blocks of 32) and Dream's ``diffusion_generate`` (its time
grid, entropy ranking, one block, the logit shift); both leave the mask token among the proposals as
the references do. Every setting is a keyword of the call.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from models.text_kit.pipeline import ARCodePipeline, CodeOutput, CodePipeline, prompt_rows
from zoo.checks import check_bool
from zoo.objectives.autoregressive import ar_sample
from zoo.objectives.masked_sampling import sample
from zoo.pipeline import Pipeline
from zoo.pretrained import CheckpointError
from zoo.public import detect, load_public_net, read_json
from zoo.lora import load_adapter
from zoo.public_text import SpecialTokens, load_tokenizer, read_special_tokens

SPECIAL_FILE = "special_tokens.json"  # the ids of a public model saved in the zoo's format
# Each family's reference decoding (LLaDA's generate(), Dream's diffusion_generate as its README calls it).
DEFAULTS = {
    "llada": {"schedule": "linear", "policy": "low_confidence", "block_length": 32, "eps": 1e-3},
    "dream": {"schedule": "time_grid", "policy": "entropy", "block_length": None, "eps": 1e-3},
}
# Dream's names for its remasking algorithms -> the zoo's policies
DREAM_ALGS = {"origin": "origin", "maskgit_plus": "low_confidence", "topk_margin": "margin", "entropy": "entropy"}
def render_chat(template: str, messages: list[dict], special: SpecialTokens, add_generation_prompt: bool = True) -> str:
    """A chat template rendered as ``transformers``' ``apply_chat_template`` does: a sandboxed jinja2
    environment, trim_blocks and lstrip_blocks, loop controls, ``raise_exception`` and ``tojson``."""
    from jinja2.exceptions import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            bos_token=special.bos_token or "", eos_token=special.eos_token or "")


class PublicTextMixin:
    """What the diffusion and AR pipelines of a public folder share: ids, stops, chat, loading."""

    settings = ("family", "chat_template")

    def _init_public(self, tokenizer, special: SpecialTokens):
        self.tokenizer, self.special = tokenizer, special
        self.mask_id, self.eos_id, self.pad_id = special.mask_id, special.eos_id, special.pad_id

    @classmethod
    def from_public(cls, directory, device=None, dtype=None, adapter=None) -> Pipeline:
        directory = Path(directory)
        layout = detect(directory)
        tokenizer = load_tokenizer(directory)
        special = read_special_tokens(directory, tokenizer, layout.mask_id)
        if tokenizer.get_vocab_size() > layout.config.vocab_size:
            raise CheckpointError(f"{directory}: the tokenizer has {tokenizer.get_vocab_size()} tokens, the network "
                                  f"{layout.config.vocab_size}: not this model's tokenizer")
        tok_cfg = directory / "tokenizer_config.json"
        template = read_json(tok_cfg).get("chat_template") if tok_cfg.is_file() else None
        net, _ = load_public_net(directory, device=device, dtype=dtype)
        meta = {"source": str(directory), "layout": layout.model}
        if adapter is not None:  # a LoRA adapter (peft's files) folded into the weights: sampling costs nothing more
            net = load_adapter(net, adapter, source=directory, merge=True)
            meta["adapter"] = str(adapter)
        return cls(net, tokenizer, special, meta=meta, family=layout.model, chat_template=template)

    @classmethod
    def load_components(cls, directory: Path, net) -> dict:
        """A public model saved in the zoo's format (``save_pretrained``, after fine-tuning, say): its
        tokenizer.json and special_tokens.json beside the weights."""
        tokenizer = load_tokenizer(directory)
        path = directory / SPECIAL_FILE
        record = read_json(path)
        try:
            special = SpecialTokens(**{**record, "stop_ids": tuple(record["stop_ids"])})
        except (TypeError, KeyError) as e:
            raise CheckpointError(f"{path}: not a SpecialTokens record ({e})") from None
        return {"tokenizer": tokenizer, "special": special}

    def save_components(self, directory: Path) -> None:
        self.tokenizer.save(str(directory / "tokenizer.json"))
        (directory / SPECIAL_FILE).write_text(json.dumps(asdict(self.special), indent=2))

    def chat_prompt(self, user: str) -> str:
        """``user`` as one user turn in the model's chat template, ending where the answer starts."""
        template = self.pipeline_kwargs.get("chat_template")
        if not template:
            raise ValueError("chat=True: this checkpoint's tokenizer_config.json has no chat_template (a base model)")
        return render_chat(template, [{"role": "user", "content": user}], self.special)

    def empty_prompt_ids(self) -> list[int]:
        start = self.special.bos_id if self.special.bos_id is not None else self.eos_id
        return [start] if getattr(self.net, "predicts_next", False) else []

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Each row's text up to its first stop id (EOS or end of turn)."""
        stops = set(self.special.stop_ids)
        texts = []
        for row in ids.tolist():
            cut = next((i for i, token in enumerate(row) if token in stops), len(row))
            texts.append(self.tokenizer.decode([t for t in row[:cut] if t not in (self.mask_id, self.pad_id)]))
        return texts

    def _chat(self, prompt, chat: bool):
        check_bool("chat", chat)
        if not chat or prompt is None:
            return prompt
        return self.chat_prompt(prompt) if isinstance(prompt, str) else [self.chat_prompt(p) for p in prompt]


class PublicDiffusionPipeline(PublicTextMixin, CodePipeline):
    """LLaDA, Dream or DiffuCoder from its own folder: ``zoo.load("/path/to/LLaDA-8B-Instruct",
    device="cuda")``. Args: net, tokenizer, special (SpecialTokens), family, chat_template."""

    def __init__(self, net, tokenizer, special: SpecialTokens, meta: dict | None = None, **pipeline_kwargs):
        Pipeline.__init__(self, net, meta=meta, **pipeline_kwargs)
        if special.mask_id is None:
            raise CheckpointError("a masked-diffusion model needs mask_token_id in its config.json")
        self._init_public(tokenizer, special)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, batch_size: int | None = None,
                 steps: int | None = None, gen_length: int = 128, block_length: int | None = None,
                 policy: str | None = None, temperature: float = 0.0, threshold: float = 0.9,
                 schedule: str | None = None, eps: float | None = None, alg: str | None = None,
                 alg_temp: float = 0.0, x_init: torch.Tensor | None = None, eos_fill: bool = False,
                 cache: str | None = None, refresh_every: int | None = None, chat: bool = False,
                 propose_mask: bool = True, heal: bool = False, generator: torch.Generator | None = None) -> CodeOutput:
        """Complete ``prompt`` with ``gen_length`` tokens (``chat=True``: the prompt is one user turn in
        the model's chat template). Unset settings follow the family's reference decoding (``DEFAULTS``);
        ``alg`` takes Dream's names (origin, maskgit_plus, topk_margin, entropy) in place of ``policy``,
        ``alg_temp`` draws positions as Dream does, ``eps`` sets Dream's time grid. ``block_length``
        None: the family's default, 0: one block; ``heal``: token healing at the prompt's end (as the
        zoo's code pipeline). See zoo.objectives.masked_sampling for the rest."""
        start = time.perf_counter()
        defaults = DEFAULTS[self.pipeline_kwargs["family"]]
        if alg is not None:
            if alg not in DREAM_ALGS:
                raise ValueError(f"alg={alg!r} is unknown; Dream's algorithms are {sorted(DREAM_ALGS)}")
            if policy is not None:
                raise ValueError("give policy or alg, not both")
            policy = DREAM_ALGS[alg]
        schedule = schedule or defaults["schedule"]
        if schedule == "time_grid":
            from zoo.objectives.transfer_schedules import TimeGridSchedule
            schedule = TimeGridSchedule(defaults["eps"] if eps is None else eps)
        if block_length is None:
            block_length = defaults["block_length"]
        if block_length == 0 or (block_length is not None and block_length > gen_length):
            block_length = None  # one block
        text_prompts = self._chat(prompt, chat)
        ids, valid, removed = self._prompts(text_prompts, batch_size, heal)
        out = sample(self.net, mask_id=self.mask_id, prompt=ids, prompt_valid=valid,
                     batch_size=None if ids is not None else (batch_size or 1),
                     gen_length=gen_length, steps=gen_length if steps is None else steps,
                     block_length=block_length, policy=policy or defaults["policy"], temperature=temperature,
                     threshold=threshold, x_init=x_init, eos_id=self.eos_id, eos_fill=eos_fill, schedule=schedule,
                     position_temperature=alg_temp, propose_mask=propose_mask, cache=cache,
                     refresh_every=refresh_every, max_seq_len=self.net.max_seq_len,
                     logits_hook=self.healing_hook(removed), generator=generator, device=self.device)
        gen = out.generated.cpu()
        return CodeOutput(texts=self.unheal(self.decode(gen), removed), tokens=gen, nfe=out.nfe,
                          seconds=time.perf_counter() - start, prompts=prompt_rows(text_prompts, len(gen)))


class PublicARPipeline(PublicTextMixin, ARCodePipeline):
    """A Qwen2 or LLaMA causal LM from its own folder (an AR baseline of the study), with a KV cache."""

    def __init__(self, net, tokenizer, special: SpecialTokens, meta: dict | None = None, **pipeline_kwargs):
        Pipeline.__init__(self, net, meta=meta, **pipeline_kwargs)
        self._init_public(tokenizer, special)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, batch_size: int | None = None,
                 steps: int | None = None, gen_length: int = 128, temperature: float = 0.0,
                 x_init: torch.Tensor | None = None, chat: bool = False, heal: bool = False,
                 generator: torch.Generator | None = None) -> CodeOutput:
        """Complete ``prompt`` with up to ``gen_length`` tokens, stopping when every row has emitted a
        stop id (EOS or end of turn)."""
        if x_init is not None:
            raise ValueError("an autoregressive model cannot infill: x_init is not supported")
        if steps is not None and steps != gen_length:
            raise ValueError(f"steps={steps}: an autoregressive model decodes one token per step")
        start = time.perf_counter()
        text_prompts = self._chat(prompt, chat)
        ids, valid, removed = self._prompts(text_prompts, batch_size, heal)
        out = ar_sample(self.net, eos_id=self.eos_id, stop_ids=self.special.stop_ids, prompt=ids, prompt_valid=valid,
                        batch_size=batch_size or 1, bos_id=self.empty_prompt_ids()[0], gen_length=gen_length,
                        temperature=temperature, max_seq_len=self.net.max_seq_len,
                        logits_hook=self.healing_hook(removed), generator=generator, device=self.device)
        gen = out.generated.cpu()
        return CodeOutput(texts=self.unheal(self.decode(gen), removed), tokens=gen, nfe=out.nfe,
                          seconds=time.perf_counter() - start, prompts=prompt_rows(text_prompts, len(gen)))
