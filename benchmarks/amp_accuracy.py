"""Does mixed precision keep the accuracy? The helpers' ``fit`` in float32 and in mixed precision.

Fine-tunes EfficientNet-Lite0 (every layer except BatchNorm, as in chapter 01) on a
Fashion-MNIST subset, once per framework, precision and seed, with the same data and
seeds. Reports test accuracy, training images/s and the speed-up over float32, and
writes ``bench-results/amp_accuracy.json``.

- PyTorch: ``fit(amp=None)``, ``fit(amp="auto")`` (bfloat16 or float16 autocast) and
  ``fit(amp="auto", channels_last=True)``.
- Keras: the ``float32`` policy and ``set_mixed_precision(True)`` (``mixed_float16``).

It is meant for a GPU: on a CPU mixed precision is emulated and slow, so there it
needs ``--smoke`` (a tiny run with bfloat16, to check that the script works, not to
measure anything). Not part of ``make bench``: it trains for minutes.

Usage:
    python benchmarks/amp_accuracy.py                        # on a GPU, full-profile image size
    python benchmarks/amp_accuracy.py --n-train 2000 --epochs 2
    python benchmarks/amp_accuracy.py --smoke                # on a CPU, seconds
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import xfer_helpers as xh   # first: it preloads Triton before TensorFlow (see README)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import machine_info  # noqa: E402  (benchmarks/run.py)


def torch_runs(data, size, epochs, batch, seeds, on_gpu):
    import torch

    from xfer_helpers.pytorch import models, transfer
    from xfer_helpers.pytorch.data import to_dataloader
    from xfer_helpers.pytorch.training import fit, predict
    x_train, y_train, x_test, y_test = (a.transpose(0, 3, 1, 2).copy() if a.ndim == 4 else a for a in data)
    amp = "auto" if on_gpu else "bf16"
    variants = {"fp32": dict(amp=None), "amp": dict(amp=amp), "amp+channels_last": dict(amp=amp, channels_last=True)}
    rows = []
    for variant, options in variants.items():
        for seed in seeds:
            xh.seed_everything(seed)
            model = models.efficientnet_lite0(num_classes=10)
            transfer.unfreeze(model)
            transfer.freeze_batchnorm(model)
            history = fit(model, to_dataloader(x_train, y_train, batch_size=batch, shuffle=True, seed=seed),
                          epochs=epochs, lr=3e-4, progress=False, **options)
            accuracy = float((predict(model, x_test, batch_size=256).argmax(1) == y_test).mean())
            rows.append({"framework": "PyTorch", "variant": variant, "seed": seed, "accuracy": accuracy,
                         "images_per_s": history["samples_per_second"][-1]})
            print(rows[-1], flush=True)
            del model
            torch.cuda.empty_cache() if on_gpu else None
    return rows


def keras_runs(data, size, epochs, batch, seeds, on_gpu):
    import keras

    from xfer_helpers.keras import models, transfer
    from xfer_helpers.keras.data import to_tf_dataset
    from xfer_helpers.keras.training import fit, set_mixed_precision
    x_train, y_train, x_test, y_test = data
    rows = []
    for variant in ("fp32", "amp"):
        for seed in seeds:
            policy = set_mixed_precision(variant == "amp", dtype="float16" if on_gpu else "bfloat16")
            keras.utils.set_random_seed(seed)
            model = models.efficientnet_lite0(num_classes=10, image_size=size)
            transfer.unfreeze(model)                      # BatchNorm stays frozen
            model.compile(optimizer=keras.optimizers.AdamW(3e-4),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            history = fit(model, to_tf_dataset(x_train, y_train, batch_size=batch, shuffle=True, seed=seed),
                          epochs=epochs, progress=False)
            logits = model.predict(x_test, batch_size=256, verbose=0)
            rows.append({"framework": "Keras", "variant": variant, "policy": policy, "seed": seed,
                         "accuracy": float((logits.argmax(1) == y_test).mean()),
                         "images_per_s": history["samples_per_second"][-1]})
            print(rows[-1], flush=True)
            set_mixed_precision(False)
            del model
            keras.backend.clear_session()
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per framework and variant: mean accuracy, seed spread, images/s, and the change from fp32.

    ``same_accuracy`` is True when the mean accuracy is within the larger of the fp32 seed
    spread (max - min over seeds) and one point of it.

    Example:
        >>> rows = [{"framework": "PyTorch", "variant": v, "seed": s, "accuracy": a, "images_per_s": r}
        ...         for v, s, a, r in [("fp32", 0, 0.90, 100), ("fp32", 1, 0.92, 100),
        ...                            ("amp", 0, 0.91, 250), ("amp", 1, 0.91, 250)]]
        >>> [(r["variant"], r["speedup"], r["same_accuracy"]) for r in summarise(rows)]
        [('fp32', 1.0, True), ('amp', 2.5, True)]
    """
    out = []
    for framework in dict.fromkeys(r["framework"] for r in rows):
        mine = [r for r in rows if r["framework"] == framework]
        base = [r for r in mine if r["variant"] == "fp32"]
        base_accuracy = statistics.mean(r["accuracy"] for r in base)
        spread = max(r["accuracy"] for r in base) - min(r["accuracy"] for r in base)
        base_speed = statistics.mean(r["images_per_s"] for r in base)
        for variant in dict.fromkeys(r["variant"] for r in mine):
            runs = [r for r in mine if r["variant"] == variant]
            accuracy = statistics.mean(r["accuracy"] for r in runs)
            speed = statistics.mean(r["images_per_s"] for r in runs)
            out.append({"framework": framework, "variant": variant, "accuracy": round(accuracy, 4),
                        "accuracy_change": round(accuracy - base_accuracy, 4), "fp32_seed_spread": round(spread, 4),
                        "same_accuracy": abs(accuracy - base_accuracy) <= max(spread, 0.01),
                        "images_per_s": round(speed, 1), "speedup": round(speed / base_speed, 2)})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run: checks the script, measures nothing")
    parser.add_argument("--out", type=Path, default=HERE.parent / "bench-results" / "amp_accuracy.json")
    args = parser.parse_args(argv)
    xh.setup_notebook(seed=0, verbose=False)
    on_gpu = xh.env.torch_device().type == "cuda"
    if args.smoke:
        args.n_train, args.n_test, args.epochs, args.batch, args.image_size, args.seeds = 64, 64, 1, 32, 32, [0]
    elif not on_gpu:
        print("No GPU here: mixed precision on a CPU is emulated and slow, so this comparison means nothing.\n"
              "Run it on a machine with an NVIDIA GPU, or use --smoke to check that the script works.")
        return 2

    from xfer_helpers import datasets
    from xfer_helpers.pretrained import EFFICIENTNET_LITE0
    raw = datasets.load_fashion_mnist(n_train=args.n_train, n_test=args.n_test, seed=0)
    mean, std = EFFICIENTNET_LITE0["mean"], EFFICIENTNET_LITE0["std"]
    data = (datasets.prepare_images(raw.x_train, args.image_size, mean, std), raw.y_train,
            datasets.prepare_images(raw.x_test, args.image_size, mean, std), raw.y_test)
    settings = dict(size=args.image_size, epochs=args.epochs, batch=args.batch, seeds=args.seeds, on_gpu=on_gpu)
    rows = torch_runs(data, **settings) + keras_runs(data, **settings)
    summary = summarise(rows)
    report = {"machine": machine_info(), "smoke": args.smoke,
              "settings": {k: getattr(args, k) for k in ("n_train", "n_test", "epochs", "batch", "image_size", "seeds")},
              "runs": rows, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\n{'framework':9} {'variant':18} {'accuracy':>8} {'change':>7} {'same':>5} {'images/s':>9} {'speed-up':>8}")
    for r in summary:
        print(f"{r['framework']:9} {r['variant']:18} {r['accuracy']:8.3f} {r['accuracy_change']:+7.3f} "
              f"{'yes' if r['same_accuracy'] else 'NO':>5} {r['images_per_s']:9.1f} {r['speedup']:8.2f}")
    print(f"\nReport: {args.out}" + ("  (smoke run: the numbers mean nothing)" if args.smoke else ""))
    return 0 if all(r["same_accuracy"] for r in summary) or args.smoke else 1


if __name__ == "__main__":
    sys.exit(main())
