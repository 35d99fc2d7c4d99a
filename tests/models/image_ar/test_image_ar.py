"""The image tokenizer, the AR teacher and the classifier metrics of models/image_ar."""

import pytest
import torch

import zoo
from models.image_ar import ClassConditionalAR, ImageARPipeline, VQAutoencoder
from models.image_kit.metrics import cls_fid, image_metrics, precision_recall
from models.image_kit.pipeline import check_labels


def small_vq() -> VQAutoencoder:
    torch.manual_seed(0)
    return VQAutoencoder(in_channels=1, width=8, downsample=1, codebook_size=16, code_dim=4).eval()


def test_tokenizer_round_trip_shapes():
    vq = small_vq()
    images = torch.rand(3, 1, 8, 8)
    codes = vq.encode(images)
    assert codes.shape == (3, 4, 4) and codes.dtype == torch.long
    assert 0 <= codes.min() and codes.max() < 16
    recon = vq.decode(codes)
    assert recon.shape == images.shape and 0 <= recon.min() and recon.max() <= 1
    # Decoding the tokens equals the (clamped) straight-through forward pass: tokens lose nothing more.
    assert torch.allclose(recon, vq(images).clamp(0, 1), atol=1e-6)


def test_codes_are_the_nearest_unit_vectors():
    vq = small_vq()
    z = vq.encode_latents(torch.rand(2, 1, 8, 8))
    assert torch.allclose(z.norm(dim=1), torch.ones(1), atol=1e-5)
    codes, zq, _ = vq.quantize(z)
    best = torch.cdist(z.permute(0, 2, 3, 1).reshape(-1, 4), vq.normalized_codebook()).argmin(-1)
    assert torch.equal(codes.flatten(), best)  # cosine = Euclidean nearest on the unit sphere


def tiny_teacher():
    torch.manual_seed(0)
    return zoo.create_model("image_ar-mnist", num_codes=16, seq_len=6, dim=32, depth=2, num_heads=2).eval()


def test_teacher_is_causal_and_its_cached_sampling_matches_the_full_pass():
    net = tiny_teacher()
    x = torch.randint(0, 16, (2, 6))
    y = x.clone()
    y[:, 3] = (y[:, 3] + 1) % 16
    labels = torch.tensor([1, 2])
    a, b = net(x, None, labels), net(y, None, labels)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6) and not torch.allclose(a[:, 4:], b[:, 4:])
    # Greedy KV-cache decoding picks the arg-max of the full (uncached) pass at every position.
    tokens = ClassConditionalAR().sample(net, labels, temperature=0.0).tokens
    assert torch.equal(net(tokens, None, labels).argmax(-1), tokens)


def test_guidance_one_is_the_conditional_model_and_labels_matter():
    net = tiny_teacher()
    labels = torch.tensor([0, 9])
    g = lambda: torch.Generator().manual_seed(0)
    plain = ClassConditionalAR().sample(net, labels, guidance_scale=1.0, generator=g())
    assert plain.nfe == 6 and plain.tokens.shape == (2, 6)
    with pytest.raises(ValueError, match="class labels"):
        net(plain.tokens, None, torch.tensor([0, 11]))


def test_label_dropout_uses_the_null_class():
    net = tiny_teacher()
    x = torch.randint(0, 16, (4, 6))
    labels = torch.tensor([1, 2, 3, 4])
    null = torch.full_like(labels, 10)
    always = ClassConditionalAR(label_dropout=0.999999).loss(net, x, labels, torch.Generator().manual_seed(0))
    assert torch.allclose(always.loss, torch.nn.functional.cross_entropy(net(x, None, null).transpose(1, 2), x))


def test_check_labels_says_what_is_allowed():
    assert check_labels([3, 7], None, 10, None, "cpu").tolist() == [3, 7]
    assert check_labels(None, 5, 10, torch.Generator().manual_seed(0), "cpu").shape == (5,)
    for bad, match in (([10], r"\[0, 9\]"), ([-1], r"\[0, 9\]"), ([], "empty")):
        with pytest.raises(ValueError, match=match):
            check_labels(bad, None, 10, None, "cpu")
    with pytest.raises(ValueError, match="batch_size"):
        check_labels(None, None, 10, None, "cpu")
    with pytest.raises(ValueError, match="disagrees"):
        check_labels([1, 2], 3, 10, None, "cpu")


def test_teacher_pipeline_returns_images(tmp_path):
    vq = zoo.create_model("vq-mnist", width=8, downsample=1, codebook_size=16, code_dim=4)  # 8x8 -> 4x4 tokens
    net = zoo.create_model("image_ar-mnist", num_codes=16, seq_len=16, dim=32, depth=1, num_heads=2)
    pipe = ImageARPipeline(net, tokenizer=vq, guidance_scale=2.0, temperature=1.0)
    out = pipe(class_labels=[3, 7], generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (2, 1, 8, 8) and out.nfe == 16 and out.labels.tolist() == [3, 7]
    assert out.save(tmp_path).is_file()
    pipe.save_pretrained(tmp_path / "ckpt")
    again = zoo.load(tmp_path / "ckpt")(class_labels=[3, 7], generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.tokens, out.tokens)


def test_metrics_separate_equal_from_different_sets():
    torch.manual_seed(0)
    clf = zoo.create_model("digit_cnn-mnist").eval()
    real = torch.rand(200, 1, 28, 28) * 0.5
    same = real[torch.randperm(200)]
    other = torch.rand(200, 1, 28, 28) * 0.5 + 0.5
    same_fid, other_fid = cls_fid(clf, real, same), cls_fid(clf, real, other)
    assert abs(same_fid) < 1e-3 and other_fid > 0.05 and other_fid > 100 * abs(same_fid)
    feats = torch.randn(300, 8)
    assert precision_recall(feats, feats) == (1.0, 1.0)
    p, r = precision_recall(feats, feats + 100.0)
    assert p == 0.0 and r == 0.0
    m = image_metrics(clf, real, same, fake_labels=clf(same).argmax(-1))
    assert m["class_accuracy"] == 1.0 and m["precision"] == 1.0
