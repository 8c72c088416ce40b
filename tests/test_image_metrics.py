"""Image metrics, the metrics classifier and its cache, and the DCGAN networks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from image_sets import as_dataset, image_data

import raygan.metrics.classifier as classifier_module
import raygan.metrics.image as image_module
from raygan.config import load_config
from raygan.core.dcgan import DCGANDiscriminator, DCGANGenerator
from raygan.core.init import init_dcgan_weights
from raygan.data import Dataset, load_dataset
from raygan.data.images import ImageData
from raygan.metrics.classifier import (
    CLASSIFIER_MAX_IMAGES,
    DEFAULT_SETTINGS,
    ClassifierSettings,
    LeNet,
    ReferenceCNN,
    WideCNN,
    build_classifier,
    classifier_cache_key,
    classifier_data,
    classifier_subset,
    data_fingerprint,
    load_or_train_classifier,
    max_pool2,
    random_shift,
    split_indices,
    train_classifier,
)
from raygan.metrics.frechet import (
    feature_statistics,
    features_frechet_distance,
    frechet_distance,
)
from raygan.metrics.image import (
    ClassifierExtractor,
    FeatureScorer,
    InceptionFID,
    InceptionWeightsMissingError,
    inception_fid_available,
    inception_score,
    is_torchscript,
    label_tvd,
    reference_split,
)

# digits8x8 trains in about a second; more epochs than the default make it reliable.
DIGITS_SETTINGS = ClassifierSettings(epochs=8)
# the reference CNN on digits8x8 at a third of its MNIST budget (about 2 s)
DIGITS_REFERENCE = ClassifierSettings(epochs=10, lr=3e-3, shift=2)


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return image_data("digits8x8")


def _gaussian(n: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64) * scale + shift


def test_fid_of_a_feature_set_with_itself_is_zero_and_grows_with_a_shift() -> None:
    features = _gaussian(4000, 16, seed=0)
    stats = feature_statistics(features)
    assert stats[0].dtype == np.float64 and stats[1].shape == (16, 16)
    assert frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-6)
    # Same covariance, means 1 apart in each of 16 dimensions: FID = |mu1 - mu2|^2 = 16.
    shifted = feature_statistics(_gaussian(4000, 16, seed=1, shift=1.0))
    assert frechet_distance(*stats, *shifted) == pytest.approx(16.0, rel=0.1)
    # Covariances I and 4I: trace(I + 4I - 2 * 2I) = 16.
    scaled = feature_statistics(_gaussian(4000, 16, seed=2, scale=2.0))
    assert frechet_distance(*stats, *scaled) == pytest.approx(16.0, rel=0.15)


def test_fid_matches_the_sqrtm_formula_on_correlated_covariances() -> None:
    # the eigenvalue form must agree with the textbook trace(sqrtm(S1 @ S2)) form
    from scipy import linalg

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 12)), rng.normal(size=(12, 12))
    s1, s2 = a @ a.T + 0.1 * np.eye(12), b @ b.T + 0.1 * np.eye(12)
    m1, m2 = rng.normal(size=12), rng.normal(size=12)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = (m1 - m2) @ (m1 - m2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize(("n", "dim"), [(40, 300), (300, 300), (2, 50), (500, 60)])
def test_fid_of_features_equals_the_covariance_form(n: int, dim: int) -> None:
    # fewer samples than features: the N x N form, else the F x F form; the same value
    rng = np.random.default_rng(n + dim)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)  # correlated features
    features = torch.from_numpy(rng.normal(size=(n, dim)) @ mixing + 0.3)
    reference = feature_statistics(torch.from_numpy(rng.normal(size=(2 * dim, dim)) @ mixing))
    expected = frechet_distance(*feature_statistics(features), *reference)
    assert expected > 1.0
    # with N <= F the F x F form takes square roots of the rounding noise of N - F zero
    # eigenvalues (about 1e-8 relative here); the N x N form has none of them
    assert features_frechet_distance(features, *reference) == pytest.approx(
        expected, rel=1e-6 if n <= dim else 1e-12
    )
    # against 2I the trace of sqrtm(S1 @ S2) is sqrt(2) times the sum of the singular values
    # of the centred features / sqrt(N - 1): an exact value to compare with
    centred = features.numpy() - features.numpy().mean(axis=0)
    exact = (np.sum(centred**2) / (n - 1) + 2 * dim + float(np.sum(features.numpy().mean(0) ** 2))
             - 2 * np.sqrt(2) * np.linalg.svd(centred, compute_uv=False).sum() / np.sqrt(n - 1))
    twice = (np.zeros(dim), 2 * np.eye(dim))
    assert features_frechet_distance(features, *twice) == pytest.approx(exact, rel=1e-10)
    # a feature set against its own statistics (of rank N - 1 < F in the N x N form)
    own = feature_statistics(features)
    assert features_frechet_distance(features, *own) == pytest.approx(
        frechet_distance(*own, *own), abs=1e-6 * float(np.trace(own[1]))
    )
    with pytest.raises(ValueError, match="mismatch"):
        features_frechet_distance(features[:, 1:], *reference)
    with pytest.raises(ValueError, match="not finite"):
        features_frechet_distance(features, reference[0], np.full_like(reference[1], np.nan))


def test_fid_handles_singular_covariances() -> None:
    features = _gaussian(300, 8, seed=3)
    features[:, :4] = 0.0  # four dead dimensions make both covariances singular
    stats = feature_statistics(features)
    other = feature_statistics(_gaussian(300, 8, seed=4, shift=0.5) * (features != 0))
    value = frechet_distance(*stats, *other)
    assert math.isfinite(value) and value > 0.0
    assert frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-4)


def test_fid_rejects_mismatched_shapes() -> None:
    a = feature_statistics(_gaussian(50, 4, seed=0))
    b = feature_statistics(_gaussian(50, 5, seed=0))
    with pytest.raises(ValueError, match="mismatch"):
        frechet_distance(*a, *b)
    with pytest.raises(ValueError):
        feature_statistics(torch.zeros(1, 4))


def test_inception_score_extremes() -> None:
    k = 7
    confident = torch.nn.functional.one_hot(torch.arange(700) % k, k).float()
    assert inception_score(confident) == pytest.approx(k, rel=1e-6)
    assert inception_score(confident, splits=5) == pytest.approx(k, rel=1e-6)
    single = torch.nn.functional.one_hot(torch.zeros(100, dtype=torch.long), k).float()
    assert inception_score(single) == pytest.approx(1.0, abs=1e-6)
    uncertain = torch.full((100, k), 1.0 / k)
    assert inception_score(uncertain) == pytest.approx(1.0, abs=1e-6)


def test_label_tvd_extremes() -> None:
    k = 10
    uniform = np.full(k, 1.0 / k)
    balanced = torch.nn.functional.one_hot(torch.arange(500) % k, k).float()
    assert label_tvd(balanced, uniform) == pytest.approx(0.0, abs=1e-12)
    single = torch.nn.functional.one_hot(torch.full((50,), 3), k).float()
    assert label_tvd(single, uniform) == pytest.approx(0.9)
    half = torch.nn.functional.one_hot(torch.arange(100) % 2, k).float()
    assert label_tvd(half, uniform) == pytest.approx(0.8)
    # against a skewed real histogram, the same histogram scores 0
    skewed = np.array([0.5, 0.5] + [0.0] * 8)
    assert label_tvd(half, skewed) == pytest.approx(0.0, abs=1e-12)
    assert label_tvd(single, skewed) == pytest.approx(1.0)


def test_max_pool2_equals_max_pool2d_and_shifts_keep_content() -> None:
    x = torch.randn(5, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(max_pool2(x), torch.nn.functional.max_pool2d(x, 2))
    shifted = random_shift(x, 2, torch.Generator().manual_seed(1))
    assert shifted.shape == x.shape and not torch.equal(shifted, x)
    # a shift moves pixels without changing them: every value is an input pixel or the fill
    for i in range(5):
        values = set(shifted[i].flatten().tolist()) - {-1.0}
        assert values <= set(x[i].flatten().tolist())
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)


@pytest.mark.parametrize("size", [8, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch", ["lenet", "reference", "wide"])
def test_classifiers_serve_all_sizes(size: int, channels: int, arch: str) -> None:
    model = build_classifier(arch, (channels, size, size), 10).eval()
    x = torch.zeros(2, channels, size, size)
    assert model.features(x).shape == (2, model.feature_dim)
    assert model(x).shape == (2, 10)


def test_mnist_classifier_and_statistics_keys_are_unchanged_from_a_dataset() -> None:
    # the metrics read the run's uint8 Dataset now: the MNIST-5k classifier must be the one
    # trained (and cached) before, bit for bit, and its statistics keyed the same
    ds = load_dataset(load_config(None, ["data.name=mnist5k"]).data, 0)
    old = image_data("mnist5k")
    new = classifier_data(ds)
    assert torch.equal(new.images, old.images) and torch.equal(new.labels, old.labels)
    settings = DEFAULT_SETTINGS["reference"]
    assert classifier_cache_key(new, settings, "reference") == "4b66f4c7f1f2fd87bc2cf4b2"
    assert data_fingerprint(ds) == data_fingerprint(old)


def test_classifiers_train_on_a_capped_seeded_subset() -> None:
    assert np.array_equal(classifier_subset(5000, (1, 28, 28)), np.arange(5000))
    assert len(classifier_subset(70_000, (1, 28, 28))) == CLASSIFIER_MAX_IMAGES
    big = classifier_subset(200_000, (3, 64, 64))  # 1 GiB of float32 64x64 colour images
    assert len(big) == 21_845 and np.all(np.diff(big) > 0)
    assert np.array_equal(big, classifier_subset(200_000, (3, 64, 64)))


@pytest.mark.parametrize("size", [32, 64])
def test_colour_images_get_the_wide_classifier_and_report_its_accuracy(
    size: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_distances import two_shapes

    from raygan.metrics.registry import MetricContext

    pixels, labels = two_shapes(400, size, seed=0)
    ctx = MetricContext(Dataset.from_pixels("shapes", pixels, labels), tmp_path, eval_samples=100)
    accuracy = ctx.scorer("reference").extractor.accuracy
    assert accuracy > 0.9
    assert isinstance(ctx.scorer("reference").extractor.model, WideCNN)
    assert f"held-out accuracy {100 * accuracy:.1f} %" in capsys.readouterr().err
    assert len(list(tmp_path.glob("classifier-wide-shapes-*.pt"))) == 1


def test_reference_cnn_has_the_reference_architecture() -> None:
    model = ReferenceCNN(1, 10)
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(10, 1, 5, 5), (10,), (20, 10, 5, 5), (20,), (50, 320), (50,), (10, 50),
                      (10,)]
    assert model.feature_dim == 10  # the FID features are the 10 class logits


def test_reference_cnn_reaches_98_percent_on_mnist5k(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the shipped classifier, measured again on its held-out split here; that a retrain
    # reaches the same is `python scripts/ship_classifiers.py --check` (minutes, not a test)
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the shipped MNIST-5k classifier should have been loaded")

    monkeypatch.setattr(classifier_module, "train_classifier", no_training)
    data = image_data("mnist5k")
    settings = DEFAULT_SETTINGS["reference"]
    model, recorded = load_or_train_classifier(data, settings, tmp_path, arch="reference")
    assert recorded >= 0.98
    assert not model.training
    _, held = split_indices(len(data), settings.holdout_fraction, settings.seed)
    measured = classifier_module.accuracy(model, data.images[held], data.labels[held])
    # another CPU may round a logit differently: one image of 500 either way
    assert abs(measured - recorded) <= 1 / len(held) + 1e-9


def test_reference_cnn_training_ignores_and_keeps_the_global_rng(digits: ImageData) -> None:
    # Its dropout must not draw from the caller's generator: two runs seeded differently
    # before training must get the same classifier, and the caller's stream must go on as if
    # nothing had been trained.
    settings = ClassifierSettings(epochs=1, lr=3e-3, shift=2)
    weights = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model, _ = train_classifier(digits, settings, arch="reference")
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        after = torch.rand(3)
        torch.manual_seed(seed)
        assert torch.equal(after, torch.rand(3))
    assert torch.equal(weights[0], weights[1])


def test_classifier_refuses_unlabelled_data() -> None:
    data = ImageData(torch.zeros(10, 3, 8, 8), torch.full((10,), -1), "celeba", 0)
    with pytest.raises(ValueError, match="no class labels"):
        train_classifier(data, ClassifierSettings(epochs=1))


def test_classifier_cache_loads_without_training(
    digits: ImageData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, accuracy = load_or_train_classifier(digits, DIGITS_SETTINGS, tmp_path)
    assert accuracy >= 0.9
    assert len(list(tmp_path.glob("classifier-*.pt"))) == 1

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached classifier should have been loaded")

    monkeypatch.setattr(classifier_module, "train_classifier", no_training)
    cached, cached_accuracy = load_or_train_classifier(digits, DIGITS_SETTINGS, tmp_path)
    assert cached_accuracy == accuracy and not cached.training
    batch = digits.images[:64]
    with torch.no_grad():
        assert torch.allclose(cached(batch), model(batch))
    # Different settings are a different cache entry, so they must train again.
    with pytest.raises(AssertionError, match="cached classifier"):
        load_or_train_classifier(digits, ClassifierSettings(epochs=8, seed=1), tmp_path)


def _reference_scorer(data: ImageData, cache: Path, n_eval: int = 500) -> FeatureScorer:
    model, acc = load_or_train_classifier(data, DIGITS_REFERENCE, cache, arch="reference")
    extractor = ClassifierExtractor(model, acc, "digits-reference")
    return FeatureScorer.create(extractor, as_dataset(data), cache, n_eval)


def test_reference_and_floor_sets_are_disjoint_and_fixed() -> None:
    ref, floor = reference_split(5000, 1000)
    assert len(ref) == 1000 and len(floor) == 1000
    assert not set(ref.tolist()) & set(floor.tolist())
    assert torch.equal(ref, reference_split(5000, 1000)[0])
    ref, floor = reference_split(1797, 1000)  # digits8x8: half each, the rest for the floor
    assert len(ref) == 898 and len(floor) == 899
    with pytest.raises(ValueError, match="too few"):
        reference_split(3, 1000)


def test_floor_is_cached_and_reused(
    digits: ImageData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer = _reference_scorer(digits, tmp_path)
    assert set(scorer.floors) == {"fid", "tvd"}
    assert len(list(tmp_path.glob("real-stats-*.npz"))) == 1

    def no_features(*args: object, **kwargs: object) -> None:
        raise AssertionError("cached statistics should have been loaded")

    monkeypatch.setattr(image_module, "feature_statistics", no_features)
    again = _reference_scorer(digits, tmp_path)
    assert again.floors == scorer.floors
    assert np.array_equal(again.reference.mu, scorer.reference.mu)
    assert again.histogram is not None and scorer.histogram is not None
    assert np.array_equal(again.histogram, scorer.histogram)
    # another evaluation size is another floor set, so it must be computed
    with pytest.raises(AssertionError, match="cached statistics"):
        _reference_scorer(digits, tmp_path, n_eval=300)


def test_reference_fid_real_is_near_the_floor_and_planted_bad_sets_are_far(
    digits: ImageData, tmp_path: Path
) -> None:
    scorer = _reference_scorer(digits, tmp_path)
    assert isinstance(scorer.extractor, ClassifierExtractor)
    assert scorer.extractor.accuracy >= 0.95
    # real images the reference set does not hold, the floor set's size
    ref, floor = reference_split(len(digits), 500)
    held = sorted(set(range(len(digits))) - set(ref.tolist()) - set(floor.tolist()))
    real = digits.images[torch.tensor(held)]
    real_scores = scorer.score(real)
    assert set(real_scores) == {"fid", "inception_score", "tvd"}
    assert real_scores["fid"] == pytest.approx(scorer.fid(real))
    assert real_scores["fid"] < 3 * scorer.floors["fid"] + 1.0
    assert real_scores["tvd"] < 0.1 and real_scores["inception_score"] > 4.0
    noise = torch.rand(500, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    zeros = digits.images[digits.labels == 0][:150]
    noise_scores, one_scores = scorer.score(noise), scorer.score(zeros)
    assert noise_scores["fid"] > 20 * scorer.floors["fid"]
    assert one_scores["fid"] > 20 * scorer.floors["fid"]
    # one class of 10 balanced classes: TVD = 1 - p_real(0), about 0.9
    assert scorer.histogram is not None
    assert one_scores["tvd"] == pytest.approx(1 - scorer.histogram[0], abs=0.01)
    assert one_scores["tvd"] == pytest.approx(0.9, abs=0.02)
    assert one_scores["inception_score"] < 1.5
    with pytest.raises(ValueError, match="shape"):
        scorer.fid(torch.zeros(10, 1, 28, 28))


def test_classifier_outputs_are_probabilities(digits: ImageData) -> None:
    model = LeNet(1, 10)
    features, probs = ClassifierExtractor(model, 0.0, "k", batch_size=7).outputs(
        digits.images[:30]
    )
    assert features.shape == (30, model.feature_dim) and probs is not None
    assert probs.shape == (30, 10)
    assert torch.allclose(probs.sum(1), torch.ones(30), atol=1e-5)


def test_inception_fid_explains_missing_weights(tmp_path: Path) -> None:
    assert not inception_fid_available(None)
    assert not inception_fid_available(str(tmp_path / "missing.pth"))
    for path in (None, str(tmp_path / "missing.pth")):
        with pytest.raises(InceptionWeightsMissingError) as info:
            InceptionFID(path)
        message = str(info.value)
        assert "\n" not in message
        assert "inception_v3_google-0cc3c7bd.pth" in message
        assert "inception-2015-12-05.pt" in message
        assert "https://" in message and "metrics.inception_weights" in message


class _TinyDetector(torch.nn.Module):
    """Stands in for stylegan2-ada's TorchScript Inception: the same call and output shape."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 2048)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(x / 255.0, 1).flatten(1)
        return self.proj(pooled)


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_inception_fid_reads_a_torchscript_file(tmp_path: Path) -> None:
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(_TinyDetector()).save(str(path))
    state = tmp_path / "state.pth"
    torch.save({"w": torch.zeros(2)}, state)
    assert is_torchscript(path) and not is_torchscript(state)
    fid = InceptionFID(str(path))
    images = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    features = fid.features(images)
    assert features.shape == (4, 2048) and torch.isfinite(features).all()
    # the detector gets images in [0, 255]: white input (1 in [-1, 1]) pools to 1s
    white = fid.features(torch.ones(1, 3, 8, 8))
    with torch.no_grad():
        expected = torch.jit.load(str(path)).proj(torch.ones(1, 3))
    assert torch.allclose(white, expected, atol=1e-5)


def test_inception_fid_features_with_random_weights(tmp_path: Path) -> None:
    from torchvision.models import inception_v3

    weights = tmp_path / "inception.pth"
    # Random (default-initialised) weights: the test only checks the plumbing, not the values.
    model = inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(model.state_dict(), weights)
    assert inception_fid_available(str(weights))
    fid = InceptionFID(str(weights))
    gray = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    features = fid.features(gray)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (32, 3), (64, 3), (8, 1)])
def test_dcgan_shapes(size: int, channels: int) -> None:
    g = DCGANGenerator(16, (channels, size, size), width=8)
    d = DCGANDiscriminator((channels, size, size), width=8)
    gen = torch.Generator().manual_seed(0)
    init_dcgan_weights(g, gen)
    init_dcgan_weights(d, gen)
    images = g(torch.randn(2, 16, generator=gen))
    assert images.shape == (2, channels, size, size)
    assert images.abs().max() <= 1.0
    assert d(images).shape == (2,)  # train mode, batch of 2
    d.eval()
    g.eval()
    assert d(g(torch.randn(1, 16, generator=gen))).shape == (1,)


@pytest.mark.parametrize(
    ("shape", "match"), [((1, 48, 48), "28x28"), ((3, 32, 28), "28x28"), ((1, 28), "C, H, W")]
)
def test_dcgan_rejects_unsupported_shapes(shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DCGANGenerator(16, shape)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        DCGANDiscriminator(shape)  # type: ignore[arg-type]


def test_dcgan_init_is_seeded_and_matches_the_paper() -> None:
    def build(seed: int) -> DCGANGenerator:
        g = DCGANGenerator(32, (3, 64, 64), width=16)
        init_dcgan_weights(g, torch.Generator().manual_seed(seed))
        return g

    a, b, c = build(0), build(0), build(1)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))
    modules = list(a.modules())
    convs = [m.weight.flatten() for m in modules if isinstance(m, torch.nn.ConvTranspose2d)]
    conv = torch.cat(convs)
    assert conv.mean().abs() < 0.002 and conv.std().item() == pytest.approx(0.02, rel=0.05)
    bn = torch.cat([m.weight for m in modules if isinstance(m, torch.nn.BatchNorm2d)])
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01)
    biases = [p for name, p in a.named_parameters() if name.endswith("bias")]
    assert biases and all(float(b.detach().abs().sum()) == 0.0 for b in biases)
