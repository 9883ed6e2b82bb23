"""How fast is getting a ready model from a weights file? ``zoo.load`` against the classic paths.

Three ways to a ready ResNet-50 (eval mode, weights loaded) from a file on disk, timed side by
side in one process, interleaved (A B C A B C ...) so machine noise hits all alike:

- classic:      build (random init) + ``torch.load(weights_only=True)`` + ``load_state_dict``
- safetensors:  build (random init) + ``safetensors.torch.load_file`` + ``load_state_dict``
- zoo.load:     rebuild from the file's metadata on the ``meta`` device + assign the tensors

All three must give identical outputs on one input. Printed: the median time of each and the
ratios against classic. Goal: zoo.load at least 4x faster than classic.

    python benchmarks/load_speed.py [--model resnet50] [--rounds 7] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", help="zoo model entry [resnet50]")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds of each path [7]")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [torch's]")
    args = parser.parse_args(argv)

    import torch
    from safetensors.torch import load_file

    import zoo
    from zoo import api
    from zoo.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    entry = api.get_entry("model", args.model)
    original = zoo.create_model(args.model).eval()
    kwargs = dict(original.zoo_spec.kwargs)

    def build() -> torch.nn.Module:
        return build_model(entry, kwargs)

    with tempfile.TemporaryDirectory() as tmp:
        st_path = zoo.export(original, Path(tmp) / "model.safetensors")
        pt_path = Path(tmp) / "model.pt"
        torch.save(original.state_dict(), pt_path)

        def classic() -> torch.nn.Module:
            model = build()
            model.load_state_dict(torch.load(pt_path, weights_only=True, map_location="cpu"))
            return model.eval()

        def safetensors_path() -> torch.nn.Module:
            model = build()
            model.load_state_dict(load_file(str(st_path)))
            return model.eval()

        def zoo_load() -> torch.nn.Module:
            return zoo.load(st_path)

        paths = {"classic": classic, "build+safetensors": safetensors_path, "zoo.load": zoo_load}
        shape = (1, 3, 224, 224) if "input_size" in entry.meta else None
        x = torch.randn(*(shape or (2, *_features(kwargs))))
        with torch.inference_mode():
            want = original(x)
            for name, fn in paths.items():  # warm-up, and check the outputs once
                got = fn()(x)
                if not torch.equal(got, want):
                    print(f"FAIL: {name} output differs from the original", file=sys.stderr)
                    return 1

        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, fn in paths.items():
                start = time.perf_counter()
                model = fn()
                times[name].append(time.perf_counter() - start)
                del model

    medians = {name: statistics.median(ts) for name, ts in times.items()}
    base = medians["classic"]
    print(f"{args.model}: ready model from a weights file, median of {args.rounds} rounds")
    print(f"  (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"{'path':<20}{'median ms':>11}{'min ms':>9}{'speed-up vs classic':>22}")
    for name, med in medians.items():
        print(f"{name:<20}{med * 1e3:>11.1f}{min(times[name]) * 1e3:>9.1f}{base / med:>21.2f}x")
    ratio = base / medians["zoo.load"]
    verdict = "PASS" if ratio >= 4 else "MISS"
    print(f"goal: zoo.load >= 4x faster than classic: {ratio:.2f}x {verdict}; outputs identical")
    return 0


def _features(kwargs: dict) -> tuple[int, ...]:
    return (int(kwargs.get("in_features", 16)),)


if __name__ == "__main__":
    sys.exit(main())
