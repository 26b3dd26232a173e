"""Shapes and invariants of the rankers."""
import pytest
import torch

from modeling.ml.ranker import ImageOnlyRanker, RankerConfig, TagRanker, build_ranker

D = 32


def batch(B=3, T=5, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    image_tokens = torch.randn(B, T, D, generator=g)
    tag_tokens = torch.randn(B, K, D, generator=g)
    tag_mask = torch.ones(B, K, dtype=torch.bool)
    tag_mask[1, 2:] = False   # image 1 has two tags
    tag_mask[2] = False       # image 2 has none
    return image_tokens, tag_tokens, tag_mask


def small(**kw):
    torch.manual_seed(0)
    return RankerConfig(input_dim=D, width=16, heads=2, **kw)


@pytest.mark.parametrize("kind", ["tags", "image_only"])
def test_output_shapes_and_ranges(kind):
    model = build_ranker(kind, small(ensemble=3)).eval()
    out = model(*batch())
    assert out["logits"].shape == (3, 3, 10)
    assert out["head_means"].shape == (3, 3)
    assert out["dist"].shape == (3, 10)
    assert out["mean"].shape == (3,)
    assert torch.allclose(out["dist"].sum(-1), torch.ones(3), atol=1e-5)
    assert ((out["mean"] >= 1) & (out["mean"] <= 10)).all()
    # the mean is the expectation of the distribution over 1..10
    assert torch.allclose(out["mean"], out["dist"] @ torch.arange(1.0, 11.0), atol=1e-5)


def test_tag_attention_sums_to_one_per_tagged_image_and_zero_without_tags():
    model = TagRanker(small(layers=2)).eval()
    att = model(*batch())["tag_attention"]
    assert att.shape == (3, 4)
    assert torch.allclose(att[0].sum(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(att[1].sum(), torch.tensor(1.0), atol=1e-5)
    assert (att[1, 2:] == 0).all()            # padded slots get nothing
    assert (att[2] == 0).all()                 # no tags: everything went to the null tag


def test_image_without_tags_is_scored_and_padding_is_ignored():
    model = TagRanker(small()).eval()
    image_tokens, tag_tokens, tag_mask = batch()
    out = model(image_tokens, tag_tokens, tag_mask)
    assert torch.isfinite(out["mean"]).all()
    # changing what sits in masked slots changes nothing
    noisy = tag_tokens.clone()
    noisy[~tag_mask] = 100.0
    assert torch.allclose(model(image_tokens, noisy, tag_mask)["mean"], out["mean"], atol=1e-5)
    # an image with an all-false mask scores like one given no tag tensor at all
    none = model(image_tokens[2:], None, None)["mean"]
    assert torch.allclose(none, out["mean"][2:], atol=1e-5)
    empty = model(image_tokens[2:], tag_tokens[2:, :0], tag_mask[2:, :0])["mean"]
    assert torch.allclose(empty, out["mean"][2:], atol=1e-5)


def test_tags_change_the_score_and_their_order_does_not():
    model = TagRanker(small()).eval()
    image_tokens, tag_tokens, tag_mask = batch()
    base = model(image_tokens, tag_tokens, tag_mask)["mean"]
    shuffled = model(image_tokens, tag_tokens[:, [3, 1, 0, 2]], tag_mask[:, [3, 1, 0, 2]])["mean"]
    assert torch.allclose(base, shuffled, atol=1e-5)
    other = model(image_tokens, torch.randn_like(tag_tokens), tag_mask)["mean"]
    assert not torch.allclose(base[:2], other[:2], atol=1e-4)


def test_image_only_ranker_ignores_tags():
    model = ImageOnlyRanker(small()).eval()
    image_tokens, tag_tokens, tag_mask = batch()
    a = model(image_tokens, tag_tokens, tag_mask)["mean"]
    b = model(image_tokens, torch.randn_like(tag_tokens), tag_mask)["mean"]
    assert torch.equal(a, b)
    assert model(image_tokens)["tag_attention"] is None


def test_scores_are_per_image_independent_of_the_batch():
    model = TagRanker(small()).eval()
    image_tokens, tag_tokens, tag_mask = batch(B=6, seed=1)
    together = model(image_tokens, tag_tokens, tag_mask)["mean"]
    alone = torch.cat([model(image_tokens[i:i + 1], tag_tokens[i:i + 1], tag_mask[i:i + 1])["mean"] for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("method", ["ensemble", "mc_dropout"])
def test_predict_returns_mean_dist_uncertainty(method):
    model = TagRanker(small(uncertainty=method, ensemble=4, dropout=0.3, mc_samples=8))
    model.train()
    mean, dist, unc = model.predict(*batch())
    assert mean.shape == (3,) and dist.shape == (3, 10) and unc.shape == (3,)
    assert (unc >= 0).all() and (unc > 0).any()
    assert not model.training                          # predict leaves the model in eval mode
    assert torch.allclose(dist.sum(-1), torch.ones(3), atol=1e-5)
    if method == "mc_dropout":
        assert len(model.score_heads.heads) == 1
    else:
        assert len(model.score_heads.heads) == 4
        mean2, _, unc2 = model.predict(*batch())       # ensembles are deterministic
        assert torch.equal(mean, mean2) and torch.equal(unc, unc2)


def test_gradients_reach_every_parameter():
    model = TagRanker(small(layers=2))
    out = model(*batch())
    (out["head_means"].sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        TagRanker(small(uncertainty="bayes"))
    with pytest.raises(ValueError):
        build_ranker("pairs", small())
