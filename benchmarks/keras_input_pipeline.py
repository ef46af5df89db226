"""Does running a ``tf.data.Dataset.from_generator`` pipeline slow down later Keras training steps?

A study script (not a ``make bench`` module), kept because its answer decides how the Keras
text pipeline of chapter 02 should be built (``xfer_helpers.keras.text.text_dataset`` used
``from_generator`` until 2026-12-06). Each variant runs in a fresh Python process: build the chapter's
MiniLM classifier (``build_text_classifier``, masked mean, AdamW), optionally iterate a
three-element dataset first, then time ``train_on_batch`` (``timing.median_step_seconds``) on
``--steps`` batches of 32 random token ids, after 5 untimed ones; their lengths vary between 8
and 48, as length-grouped tweets do.

Variants:
- ``plain``: nothing before training;
- ``from_generator``: ``tf.data.Dataset.from_generator`` over three numbers, iterated once;
- ``from_tensor_slices``: the same three numbers from ``from_tensor_slices`` (control).

Printed: the median seconds per step and the ratio of each variant to ``plain``. Measured
2026-12-06 on a 2-core AMD EPYC (Zen 3, AVX2), TensorFlow 2.21, Keras 3: this script, twice,
0.68 / 0.72 s plain, 1.17 / 1.28 s after from_generator (1.71 / 1.77 x), 0.71 / 0.75 s after
from_tensor_slices. With the chapter's real tweets: median step 0.75-0.83 s plain, 1.4-1.6 s after a
from_generator pipeline had run (also when it runs during ``model.fit``: 83 s per epoch instead
of 41-50 s); Dataset.range, from_tensor_slices, py_function and numpy_function (alone or in
a map) left the step at 0.75-0.97 s.

Two replacements of ``text_dataset``'s generator were tried the same day (not kept): the same
batches from ``Dataset.range(n).map(numpy_function)``, and from constant tensors gathered in a
``map`` with the pass counter in a ``tf.Variable`` (no Python inside tf.data). Both kept the
``model.fit`` step at 0.65-0.73 s, but then ``model.fit`` waited 33-41 s before the first batch of
every later epoch (Keras makes a new iterator for each epoch of a finite dataset), which ate the
gain. A fix has to avoid both. One that does: the ``numpy_function`` variant with ``.repeat()`` and
``model.fit(..., steps_per_epoch=n_batches)``, so that Keras keeps one iterator for the whole run:
epochs of 64.9 s (the first, with the trace), 44.2 s and 46.7 s, against 100.5, 83.2 and 84.5 s for
the ``from_generator`` version (chapter 02's real tweets, 63 batches of 32 per epoch). It is what
``text_dataset`` does now (``Dataset.counter().map(numpy_function)``, endless; chapter 02 passes
``steps_per_epoch``).

Run: ``python benchmarks/keras_input_pipeline.py [--steps 20]`` (about 2.5 minutes).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_step_seconds  # noqa: E402  (benchmarks/timing.py)

VARIANTS = ("plain", "from_generator", "from_tensor_slices")
WARMUP = 5  # untimed steps first: the first ones trace the training step


def one_variant(variant: str, steps: int) -> float:
    """Train in this process; return the median seconds per step."""
    import numpy as np

    import xfer_helpers as xh
    tf = xh.env.import_tensorflow()
    xh.env.set_threads()
    import keras

    from xfer_helpers.keras import models, text

    if variant == "from_generator":
        sum(1 for _ in tf.data.Dataset.from_generator(lambda: iter([1, 2, 3]),
                                                      output_signature=tf.TensorSpec((), tf.int32)))
    elif variant == "from_tensor_slices":
        sum(1 for _ in tf.data.Dataset.from_tensor_slices(np.arange(3)))
    keras.utils.set_random_seed(0)
    model = text.build_text_classifier(models.minilm_encoder(), num_classes=3, pooling="mean")
    model.compile(optimizer=keras.optimizers.AdamW(5e-5, weight_decay=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    batches = iter([({"token_ids": rng.integers(1000, 20000, (32, length)).astype("int32"),
                      "padding_mask": np.ones((32, length), "int32")}, rng.integers(0, 3, 32).astype("int32"))
                    for length in rng.integers(8, 49, WARMUP + steps)])
    return median_step_seconds(lambda: model.train_on_batch(*next(batches)), steps, warmup=WARMUP)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20,
                        help=f"timed training steps per variant, after {WARMUP} untimed ones (default 20)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.variant:
        print(json.dumps(one_variant(args.variant, args.steps)))
        return 0
    medians = {}
    for variant in VARIANTS:
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--steps", str(args.steps)],
                             capture_output=True, text=True, check=True).stdout
        medians[variant] = json.loads(out.strip().splitlines()[-1])
        print(f"{variant:>20}: median step {medians[variant]:.3f} s "
              f"({medians[variant] / medians['plain']:.2f} x plain)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
