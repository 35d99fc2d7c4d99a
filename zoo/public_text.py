"""The text side of a public checkpoint folder: its tokenizer and the token ids it marks (mask, EOS,
end of turn, BOS, padding), each read from the folder's own files, never hard-coded. Used by the
pipelines that sample from such a folder and by the data modules that fine-tune one.

- config.json: ``mask_token_id``, ``eos_token_id``, ``bos_token_id``, ``pad_token_id``;
- generation_config.json: more ids that end an answer (``eos_token_id``, an int or a list);
- tokenizer.json, else vocab.json + merges.txt with tokenizer_config.json's added tokens;
- tokenizer_config.json: ``bos_token``, ``eos_token`` (an instruct model's end of turn).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoo.pretrained import CONFIG, CheckpointError, read_json

# The Qwen2 pre-tokenizer split (Qwen2Tokenizer's), for a folder that ships vocab.json + merges.txt
QWEN2_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
               r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


def _token_text(value) -> str | None:
    """tokenizer_config.json writes a special token as a string or as {"content": ...}."""
    return value.get("content") if isinstance(value, dict) else value


def load_tokenizer(directory: Path):
    """A ``tokenizers.Tokenizer`` from tokenizer.json, else from vocab.json + merges.txt (byte-level BPE
    with the Qwen2 split) plus the added tokens of tokenizer_config.json."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    path = directory / "tokenizer.json"
    if path.is_file():
        try:
            return Tokenizer.from_file(str(path))
        except Exception as e:  # the tokenizers library raises a bare Exception on a bad file
            raise CheckpointError(f"{path}: cannot be read as a tokenizer ({e})") from None
    vocab, merges = directory / "vocab.json", directory / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        raise CheckpointError(f"{directory}: no tokenizer.json and no vocab.json + merges.txt")
    try:
        tok = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    except Exception as e:
        raise CheckpointError(f"{vocab} / {merges}: cannot be read as a BPE tokenizer ({e})") from None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    config = directory / "tokenizer_config.json"
    added = read_json(config).get("added_tokens_decoder", {}) if config.is_file() else {}
    for index, entry in sorted(added.items(), key=lambda kv: int(kv[0])):
        tok.add_special_tokens([AddedToken(entry["content"], special=True, normalized=False)])
        if tok.token_to_id(entry["content"]) != int(index):
            raise CheckpointError(f"{config}: added token {entry['content']!r} should have id {index}, "
                                  f"got {tok.token_to_id(entry['content'])} after {vocab}")
    return tok


@dataclass
class SpecialTokens:
    """Token ids a pipeline needs, each read from the folder's files."""

    mask_id: int | None  # masked diffusion only
    eos_id: int  # what answers are padded with (EOS fill writes it)
    stop_ids: tuple[int, ...]  # any of them ends an answer's text (EOS, end of turn)
    bos_id: int | None
    pad_id: int
    bos_token: str | None
    eos_token: str | None  # tokenizer_config.json's (an instruct model's end of turn)


def _ids(value) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else [v for v in value if isinstance(v, int)]


def read_special_tokens(directory: Path, tokenizer, mask_id: int | None) -> SpecialTokens:
    cfg = read_json(directory / CONFIG)
    gen_path, tok_path = directory / "generation_config.json", directory / "tokenizer_config.json"
    gen = read_json(gen_path) if gen_path.is_file() else {}
    tok_cfg = read_json(tok_path) if tok_path.is_file() else {}
    bos_token, eos_token = _token_text(tok_cfg.get("bos_token")), _token_text(tok_cfg.get("eos_token"))
    eos = _ids(cfg.get("eos_token_id")) or _ids(gen.get("eos_token_id"))
    if not eos and eos_token is not None and tokenizer.token_to_id(eos_token) is not None:
        eos = [tokenizer.token_to_id(eos_token)]
    if not eos:
        raise CheckpointError(f"{directory}: no EOS id in config.json, generation_config.json or tokenizer_config.json")
    stops = list(dict.fromkeys(eos + _ids(gen.get("eos_token_id")) +
                               ([tokenizer.token_to_id(eos_token)] if eos_token and tokenizer.token_to_id(eos_token)
                                is not None else [])))
    bos = (_ids(cfg.get("bos_token_id")) or _ids(gen.get("bos_token_id"))
           or ([tokenizer.token_to_id(bos_token)] if bos_token and tokenizer.token_to_id(bos_token) is not None else []))
    pad = _ids(cfg.get("pad_token_id")) or eos
    for name, value in (("mask_token_id", mask_id), ("eos_token_id", eos[0]), ("pad_token_id", pad[0])):
        if value is not None and not 0 <= value < tokenizer.get_vocab_size():
            raise CheckpointError(f"{directory / CONFIG}: {name}={value} is outside the tokenizer's "
                                  f"{tokenizer.get_vocab_size()} tokens")
    return SpecialTokens(mask_id, eos[0], tuple(stops), bos[0] if bos else None, pad[0], bos_token, eos_token)


def special_id(folder: str, role: str) -> int:
    """One id of a public folder (role: mask, eos, pad, bos), for a config: ``{_target_: zoo.public_text.special_id,
    folder: ..., role: mask}``."""
    from zoo.public import detect

    folder = Path(folder)
    special = read_special_tokens(folder, load_tokenizer(folder), detect(folder).mask_id)
    value = {"mask": special.mask_id, "eos": special.eos_id, "pad": special.pad_id, "bos": special.bos_id}[role]
    if value is None:
        raise CheckpointError(f"{folder}: no {role} token id in its files")
    return value
