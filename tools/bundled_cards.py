"""Write a model card for every entry of the bundled registry (``registry/``).

Each card is composed by the same code ``zoo publish --card`` uses
(:func:`zoo.weights.card.compose`) from the entry's index record, its weights' metadata
(transform, class names) and its recipe's settings, plus the intended use and limitations
stated below; the index then lists it as the entry's ``card`` (relative URL, sha256, size).
Run it again after re-publishing an entry:

    python tools/bundled_cards.py
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

from zoo.weights import card as cards
from zoo.weights.files import read_metadata

REGISTRY = Path(__file__).resolve().parents[1] / "registry"

INTENDED_USE = (
    "Teaching and testing: a small model trained by zoo on a dataset that ships with "
    "scikit-learn (or that zoo generates), to try zoo's predict, evaluate, fine-tune and "
    "benchmark commands without a download"
)
LIMITATIONS = (
    "Trained on a few hundred to a few thousand samples of a toy or classic teaching dataset; "
    "the recorded metrics hold for that dataset's test split only. Not for real decisions "
    "(medical ones included)"
)


def main() -> None:
    index_path = REGISTRY / "index.json"
    index = json.loads(index_path.read_text())
    for entry in index["entries"]:
        name = entry["name"]
        meta = read_metadata(REGISTRY / entry["files"][0]["url"])
        recipe = entry.get("recipe")
        settings = tomllib.loads((REGISTRY / recipe).read_text()) if recipe else None
        facts = {
            **{k: entry.get(k) for k in ("kwargs", "metrics", "dataset", "recipe", "created")},
            "model": f"{entry['plugin']}/{entry['model']}",
            "summary": entry.get("summary"),
            "settings": settings,
            "transform": meta.get("transform"),
            "classes": meta.get("classes"),
        }
        user = {
            "license": entry["license"],
            "intended_use": INTENDED_USE,
            "limitations": LIMITATIONS,
        }
        fields, body = cards.compose(name, facts, user)
        assert not cards.missing(fields), name
        data = cards.render(fields, body).encode("utf-8")
        url = f"{name}.md"
        (REGISTRY / url).write_bytes(data)
        entry["card"] = {"url": url, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    index_path.write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
