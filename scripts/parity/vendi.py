"""Parity of ``vendi`` (pixel kernel) with the official ``vendi_score.image_utils.pixel_vendi_score``."""

from __future__ import annotations

from _common import file_pixels, main, version_of, write_photos


def ours(work, args):
    import rewardbench

    paths = write_photos(work / "photos")
    pixels = [file_pixels(p)[0] for p in paths]  # mixed sizes: a ragged list, as decoded from the files
    out = {}
    for path, resize in (("exact", "pil"), ("torch", "torch")):
        out[path] = [float(rewardbench.load_reward("vendi", pixel_resize=resize)(pixels).scores[0])]
    return [{"case": "pixels", "reward": "vendi", "paths": out, "note": "one group of the 5 photos"}]


def official(work, args):
    from PIL import Image
    from vendi_score import image_utils

    images = [Image.open(p) for p in write_photos(work / "photos")]
    return {"pixels": {"scores": [float(image_utils.pixel_vendi_score(images))],
                       "official": version_of("vendi-score")}}


if __name__ == "__main__":
    main(ours, official)
