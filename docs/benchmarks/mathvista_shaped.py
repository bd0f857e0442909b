"""A MathVista-testmini-shaped data directory for speed runs where the real images cannot be had.

    python docs/benchmarks/mathvista_shaped.py MathVista/data/testmini.json OUT_DIR

Reads the real annotations (`data/testmini.json` of the MathVista repository: questions, choices,
answer types and each image's width and height) and writes OUT_DIR/testmini.json plus one JPEG per
item at the item's own size, with a simple line drawing on it, so that `harness eval --suite
mathvista_testmini --data-dir OUT_DIR` sees the real prompts and the real image sizes (hence the real
number of image tokens) of all 1,000 items. The accuracy of such a run means nothing; its speed does.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

from PIL import Image, ImageDraw


def draw(width: int, height: int, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    for _ in range(12):
        xy = [rng.randrange(width), rng.randrange(height), rng.randrange(width), rng.randrange(height)]
        pen.line(xy, fill=(rng.randrange(200), rng.randrange(200), rng.randrange(200)),
                 width=max(1, min(width, height) // 150))
    return image


def main(annotations: str, out: str) -> None:
    rows = json.loads(Path(annotations).read_text())
    out_dir = Path(out)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(annotations, out_dir / "testmini.json")
    rng = random.Random(0)
    for row in rows.values():
        meta = row["metadata"]
        image = draw(int(meta["img_width"]), int(meta["img_height"]), rng)
        image.save(out_dir / row["image"], quality=85)
    print(f"{len(rows)} items written to {out_dir}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    main(sys.argv[1], sys.argv[2])
