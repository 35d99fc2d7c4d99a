"""SentenceVAE: pooling ignores padding, the sentence LM is causal, the autoencoder reconstructs a tiny
set it overfits, the losses, and the pipelines' contract and errors."""

import pytest
import torch

import zoo
from datamodules.stdlib_code import EOS_ID, PAD_ID, train_tokenizer
from models.sentence_vae import (NextSentencePrediction, SentenceAutoencoder, SentenceAutoencoderPipeline, SentenceLM,
                                 SentenceLMPipeline, SentenceReconstruction)
from models.sentence_vae.network import focal_cross_entropy, shifted_input
from models.sentence_vae.objective import stop_labels
from models.sentence_vae.pipeline import decode_sentences
from zoo.nn import KVCache
from zoo.objectives.autoregressive import decode

VOCAB = 40


def autoencoder(pooling="sum", variational=False, dim=32, max_len=8) -> SentenceAutoencoder:
    torch.manual_seed(0)
    return SentenceAutoencoder(VOCAB, dim, 1, 1, 2, max_len, EOS_ID, pooling, variational).eval()


def sentence_lm(max_len=6) -> SentenceLM:
    torch.manual_seed(0)
    return SentenceLM(VOCAB, 32, 1, 1, 2, max_len, EOS_ID, lm_depth=2, max_sentences=8).eval()


@pytest.mark.parametrize("pooling", ["sum", "mean", "learned"])
def test_pooling_ignores_padding(pooling):
    net = autoencoder(pooling)
    tokens = torch.tensor([[5, 6, 7, EOS_ID, PAD_ID, PAD_ID]])
    junk = tokens.clone()
    junk[0, 4:] = torch.tensor([9, 11])
    length = torch.tensor([4])
    z = net.encode(tokens, length)
    assert torch.allclose(z, net.encode(junk, length), atol=1e-6)
    assert torch.allclose(z, net.encode(tokens[:, :4], length), atol=1e-6)
    assert not torch.allclose(z, net.encode(tokens, torch.tensor([3])), atol=1e-4)  # real ids do count


def test_unknown_pooling_and_bad_ids_raise():
    with pytest.raises(ValueError, match="unknown pooling"):
        SentenceAutoencoder(VOCAB, 32, 1, 1, 2, 8, EOS_ID, "max")
    net = autoencoder()
    with pytest.raises(ValueError, match="token ids"):
        net.encode(torch.tensor([[VOCAB, EOS_ID]]), torch.tensor([2]))
    with pytest.raises(ValueError, match="exceed"):
        net.encode(torch.full((1, 9), 5), torch.tensor([9]))


def test_sentence_lm_is_causal():
    """Sentence j + 1 is predicted from sentences <= j: changing sentence k leaves the predictions of
    sentences 1..k-1 (logits[:, :k-1]) and the stop logits after sentences 0..k-1 exactly as they were."""
    net = sentence_lm()
    g = torch.Generator().manual_seed(0)
    sentences = torch.randint(3, VOCAB, (2, 5, 6), generator=g)
    sentences[..., -1] = EOS_ID
    lengths = torch.full((2, 5), 6)
    logits, stop = net.logits_and_stop(sentences, lengths)
    k = 3
    changed = sentences.clone()
    changed[:, k:, :-1] = torch.randint(3, VOCAB, (2, 5 - k, 5), generator=g)
    logits2, stop2 = net.logits_and_stop(changed, lengths)
    assert torch.equal(logits[:, :k - 1], logits2[:, :k - 1])
    assert torch.equal(stop[:, :k], stop2[:, :k])
    assert not torch.allclose(logits[:, k], logits2[:, k])  # later predictions do see the change
    assert not torch.allclose(stop[:, k], stop2[:, k])


@pytest.mark.slow
def test_autoencoder_round_trip_on_a_tiny_overfit_set():
    torch.manual_seed(0)
    net = SentenceAutoencoder(VOCAB, 64, 1, 1, 4, 8, EOS_ID, "sum").train()
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([3, 5, 8, 4, 6, 2, 7, 5])
    tokens = torch.full((8, 8), PAD_ID)
    for i, n in enumerate(lengths.tolist()):
        tokens[i, :n - 1] = torch.randint(3, VOCAB, (n - 1,), generator=g)
        tokens[i, n - 1] = EOS_ID
    objective = SentenceReconstruction(focal_gamma=0.0)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        objective.loss(net, tokens, lengths).loss.backward()
        opt.step()
    net.eval()
    ids, out_lengths, nfe = decode_sentences(net, net.encode(tokens, lengths))
    assert torch.equal(out_lengths, lengths)
    assert torch.equal(ids, tokens)  # greedy decoding gives every sentence back exactly
    assert nfe == 7  # up to max_sentence_len - 1 decoder calls, one per id


def test_cached_decoding_with_kept_memory_terms_matches_teacher_forcing():
    net = autoencoder(max_len=6).eval()
    memory, tokens_in = torch.randn(3, 32), torch.randint(3, VOCAB, (3, 6))
    whole = net.decode_logits(memory, tokens_in)
    cache, terms = KVCache(), net.memory_terms(memory)
    steps = [net.decode_logits(memory, tokens_in[:, i:i + 1], cache, True, memory_terms=terms) for i in range(6)]
    assert torch.allclose(torch.cat(steps, 1), whole, atol=1e-5)
    other = net.decode_logits(memory, tokens_in[:, :1], KVCache(), True, memory_terms=net.memory_terms(-memory))
    assert not torch.allclose(other, whole[:, :1], atol=1e-3)  # the kept terms are what the decoder reads


def test_rows_that_end_leave_the_batch_without_changing_any_row():
    net, n = autoencoder(max_len=8), 12
    memory = torch.randn(n, 32, generator=torch.Generator().manual_seed(1))
    ids, lengths, nfe = decode_sentences(net, memory, 1.0, torch.Generator().manual_seed(0))
    assert len(set(lengths.tolist())) > 2  # rows ended apart: the batch shrank on the way
    cache = KVCache()  # the same loop with every row kept to the end: the same ids, the same draws

    def full_batch_step(token):
        token = torch.full((n,), EOS_ID) if token is None else token
        return net.decode_logits(memory, token[:, None], cache, update_cache=True)[:, -1]

    full = decode(full_batch_step, 7, temperature=1.0, generator=torch.Generator().manual_seed(0), eos_id=EOS_ID)
    real = torch.arange(8)[None] < lengths[:, None]
    assert torch.equal(ids[:, :7][real[:, :7]], full.tokens[real[:, :7]]) and nfe == full.nfe


def test_decode_sentences_caps_a_sentence_without_eos():
    net = autoencoder(max_len=5)
    with torch.no_grad():  # make EOS impossible: every row runs to the limit and gets EOS in its last slot
        net.head.weight[EOS_ID] = 0.0
    logits_bias = torch.zeros(VOCAB)
    logits_bias[EOS_ID] = -1e9
    net.head.register_forward_hook(lambda m, i, o: o + logits_bias)
    ids, lengths, _ = decode_sentences(net, torch.randn(3, 32))
    assert lengths.tolist() == [5, 5, 5] and (ids[:, -1] == EOS_ID).all() and (ids[:, :-1] != EOS_ID).all()


def test_losses():
    net = autoencoder(variational=True).train()
    tokens = torch.tensor([[5, 6, EOS_ID, PAD_ID], [7, 8, 9, EOS_ID]])
    out = SentenceReconstruction(focal_gamma=2.0, kl_weight=0.1).loss(net, tokens, torch.tensor([3, 4]),
                                                                      generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss) and out.metrics["kl"] > 0
    with pytest.raises(ValueError, match="variational"):
        SentenceReconstruction(kl_weight=0.1).loss(autoencoder(), tokens, torch.tensor([3, 4]))
    logits = torch.randn(4, VOCAB)
    targets = torch.tensor([1, 2, 3, 4])
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    assert torch.allclose(focal_cross_entropy(logits, targets, 0.0), ce)
    assert (focal_cross_entropy(logits, targets, 2.0) < ce).all()
    assert shifted_input(tokens, EOS_ID).tolist() == [[EOS_ID, 5, 6, EOS_ID], [EOS_ID, 7, 8, 9]]


def test_stop_labels_and_next_sentence_loss():
    lengths = torch.tensor([[3, 4, 2, 0], [2, 2, 2, 2]])
    labels, scored = stop_labels(lengths, ends=torch.tensor([True, False]))
    assert labels.tolist() == [[0, 0, 1, 0], [0, 0, 0, 0]]
    assert scored.tolist() == [[True, True, True, False], [True, True, True, False]]  # a cut chunk's last is unknown
    net = sentence_lm().train()
    sentences = torch.randint(3, VOCAB, (2, 4, 6))
    sentences[..., 5] = EOS_ID
    out = NextSentencePrediction().loss(net, sentences, torch.tensor([[6, 6, 6, 0], [6, 6, 6, 6]]),
                                        torch.tensor([True, False]))
    out.loss.backward()
    assert torch.isfinite(out.loss) and net.stop_head.weight.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["Return the value of the key.", "Raise an error, or return None.", "A list of items."] * 20
    return train_tokenizer(texts, 300)


def test_lm_pipeline_continues_text_and_checks_input(tokenizer, tmp_path):
    torch.manual_seed(0)
    net = SentenceLM(300, 32, 1, 1, 2, 8, EOS_ID, lm_depth=1, max_sentences=6).eval()
    pipe = SentenceLMPipeline(net, tokenizer, temperature=1.0, max_sentences=2)
    prompt = "Return the value of the key. Raise an error."
    out = pipe(prompt, stop=False, generator=torch.Generator().manual_seed(0))
    assert len(out.sentences[0]) == 2 and out.texts[0] == "".join(out.sentences[0])
    assert out.calls["sentence_steps"] == 2 and out.calls["encoder_calls"] == 2 and out.calls["decoder_steps"] >= 2
    assert out.nfe == sum(out.calls.values()) and int((out.tokens[0] == EOS_ID).sum()) == 2  # an EOS a sentence
    assert out.num_tokens == len(out.ids[0]) - 2
    again = pipe(prompt, stop=False, generator=torch.Generator().manual_seed(0))
    other = pipe(prompt, stop=False, generator=torch.Generator().manual_seed(1))
    assert again.texts == out.texts and other.texts != out.texts
    batch = pipe([prompt, "A list of items."], stop=False, generator=torch.Generator().manual_seed(0))
    assert len(batch.texts) == 2 and all(len(s) == 2 for s in batch.sentences)  # prompts of 2 and 1 sentences
    saved = sorted(p.read_text() for p in batch.save(tmp_path / "samples").iterdir())
    assert saved == sorted(f"{p}[{t}]\n" for p, t in zip([prompt, "A list of items."], batch.texts))
    for bad in ("", "   ", []):
        with pytest.raises(ValueError):
            pipe(bad)
    with pytest.raises(ValueError, match="max_sentences"):
        pipe(prompt, max_sentences=0)
    with pytest.raises(ValueError, match="no room"):
        pipe(" Word." * 6)


def test_lm_pipeline_rows_do_not_depend_on_their_batch():
    """Continuous batching: rows of one batch start their sentences at different decoder steps (and
    the shared cache drops old keys on the way), yet greedy rows match the same prompts run alone.
    The shipped model, since an untrained one writes sentences of one length."""
    pipe = zoo.load("sentence_vae-prose")
    prompts = ["Return the value of the key. Raise KeyError if it is missing.", "Create a new socket.",
               "This module provides functions for working with files."]
    batch = pipe(prompts, max_sentences=10, temperature=0.0, stop=False)
    alone = [pipe(p, max_sentences=10, temperature=0.0, stop=False) for p in prompts]
    assert batch.ids == [a.ids[0] for a in alone] and batch.texts == [a.texts[0] for a in alone]
    ends = [[i for i, t in enumerate(row) if t == EOS_ID] for row in batch.ids]
    assert len({tuple(e) for e in ends}) == 3  # the rows' sentences end at different steps
    assert batch.calls["decoder_steps"] > 4 * pipe.net.autoencoder.max_sentence_len  # long enough to drop keys
    assert batch.calls["decoder_steps"] < sum(a.calls["decoder_steps"] for a in alone)


def test_autoencoder_pipeline_encode_decode(tokenizer):
    torch.manual_seed(0)
    pipe = SentenceAutoencoderPipeline(SentenceAutoencoder(300, 32, 1, 1, 2, 8, EOS_ID).eval(), tokenizer)
    vectors = pipe.encode(["A list of items.", "Return the value."])
    assert vectors.shape == (2, 32)
    texts, nfe = pipe.decode(vectors)
    assert len(texts) == 2 and 1 <= nfe <= 7
    with pytest.raises(ValueError, match="at most 7"):
        pipe.encode(["Return the value of the key, or raise an error if it is missing."])
    with pytest.raises(ValueError):
        pipe.encode("not a list")
    with pytest.raises(ValueError, match="vectors"):
        pipe.decode(torch.zeros(2, 5))


class TinyProse:
    """A stand-in for StdlibProseDataModule: its test split is a handmade corpus."""

    def __init__(self, max_len=6, max_sentences=4):
        import numpy as np

        from datamodules.stdlib_prose import ProseCorpus

        sentences = [[7, 8], [9, 10, 11], [12], [13, 14, 15, 16], [20, 21], [22]]
        lengths = [len(s) for s in sentences]
        self.corpus = ProseCorpus({"tokens": np.array([i for s in sentences for i in s], dtype=np.uint16),
                                   "sentence_offsets": np.concatenate([[0], np.cumsum(lengths)]),
                                   "document_offsets": np.array([0, 4, 6])}, max_len, max_sentences)

    def dataset(self, split, view, sentence_ids=False):
        from datamodules.stdlib_prose import ProseView

        return ProseView(self.corpus, view, sentence_ids)


def test_both_models_are_scored_on_the_same_ids_and_kv_bytes_are_what_the_caches_hold():
    from models.sentence_vae import token_lm_prose
    from models.sentence_vae.evaluate import kv_bytes, reconstruction, sentence_lm_nll, token_lm_nll

    data, net = TinyProse(), sentence_lm()
    torch.manual_seed(0)
    token_net = token_lm_prose(vocab_size=VOCAB, dim=32, depth=3, num_heads=2, max_seq_len=64).eval()
    ours, theirs = sentence_lm_nll(net, data, batch_size=1), token_lm_nll(token_net, data, batch_size=2)
    # sentences 2..n: [9 10 11] [12] [13 14 15 16] of the first document, [22] of the second
    assert ours["text_tokens"] == theirs["text_tokens"] == 9 and ours["eos_scored"] == 4
    assert ours["ppl"] > 1 and theirs["ppl"] > 1
    memory = kv_bytes(net, token_net, data, max_chunks=1)
    assert memory["context_tokens"] == 10 and memory["context_sentences"] == 4
    assert memory["bytes_per_token"] == 2 * 2 * 32 * 4 * 4 / 10  # lm_depth x (k, v) x dim x fp32 x sentences
    assert memory["token_lm_bytes_per_token"] == 3 * 2 * 32 * 4  # depth x (k, v) x dim x fp32, per position
    assert (memory["layers"], memory["token_lm_layers"]) == (2, 3)
    assert memory["kv_memory_reduction_equal_depth"] == pytest.approx(1 - (2 * 32 * 4 * 4 / 10) / (2 * 32 * 4))
    decoder = net.autoencoder
    assert memory["decoder_cache_bytes"] == len(decoder.decoder) * 2 * 32 * 4 * 4 * decoder.max_sentence_len
    lm_bytes, token_bytes = 2 * 2 * 32 * 4 * 4, 3 * 2 * 32 * 4 * 11  # one chunk: 4 sentences; 10 ids + the start
    assert memory["kv_memory_reduction_with_decoder"] == pytest.approx(1 - (lm_bytes + memory["decoder_cache_bytes"]) / token_bytes)
    whole = kv_bytes(net, token_net, data)  # every test chunk
    assert whole["chunks"] == len(data.dataset("test", "documents")) > 1
    assert whole["context_tokens"] > memory["context_tokens"] and whole["context_sentences"] > 4
    recon = reconstruction(net.autoencoder, data)
    assert recon["sentences"] == 6 and 0 <= recon["exact_match"] <= 1 and 0 <= recon["token_accuracy"] <= 1


def test_length_groups_give_the_padded_batch_results():
    """Sentences computed in length groups (less padding) get the same vectors and losses as one
    padded batch."""
    from models.sentence_vae.network import length_groups
    from models.sentence_vae.objective import sentence_token_terms

    net = autoencoder(variational=True)
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([2, 8, 3, 5, 8, 1, 4])
    tokens = torch.full((7, 8), PAD_ID)
    for i, n in enumerate(lengths.tolist()):
        tokens[i, :n] = torch.randint(3, VOCAB, (n,), generator=g)
    groups = length_groups(lengths, 3)
    assert sorted(torch.cat([idx for idx, _ in groups]).tolist()) == list(range(7))
    assert [w for _, w in groups] == sorted(w for _, w in groups) and groups[0][1] < 8
    for a, b in zip(net.posterior_params(tokens, lengths), net.posterior_params(tokens, lengths, groups=3)):
        assert torch.allclose(a, b, atol=1e-5)
    memory = net.encode(tokens, lengths)
    one, grouped = (sentence_token_terms(net, memory, tokens, lengths, 0.0, groups=k) for k in (1, 3))
    assert torch.allclose(one["loss"], grouped["loss"], atol=1e-4)
    assert (one["ids"], one["right"], one["exact"]) == (grouped["ids"], grouped["right"], grouped["exact"])
    logits = net(tokens, lengths)
    real = torch.arange(8)[None] < lengths[:, None]
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")
    assert torch.allclose(one["loss"], (ce * real).sum(), atol=1e-4)


def test_the_token_baseline_saves_prose_as_text_files(tmp_path):
    out = zoo.load("token_lm-prose")(prompt=["Return the value."], gen_length=4,
                                     generator=torch.Generator().manual_seed(0))
    out.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["sample_000.txt"]
    assert (tmp_path / "sample_000.txt").read_text().startswith("Return the value.")
