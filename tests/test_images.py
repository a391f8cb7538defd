"""The lab's pictures: every label fits the box it stands in, and crosses no other box.

Widths are measured in DejaVu Sans (matplotlib's font, wider than the Helvetica and Arial
the pictures ask for), so a label that fits here fits in the browsers students use.
"""

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import matplotlib.font_manager as font_manager
import pytest
from PIL import ImageFont

from tests.helpers.lab import REPO

SVG = "{http://www.w3.org/2000/svg}"
PICTURES = sorted((REPO / "imgs").glob("*.svg"))
MARGIN = 4  # pixels between a label and its box's border


def _font(bold: bool, size: float) -> ImageFont.FreeTypeFont:
    weight = "bold" if bold else "normal"
    return ImageFont.truetype(font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans",
                                                                                weight=weight)), size)


def labels_and_boxes(path: Path) -> tuple[list, list]:
    root = ElementTree.parse(path).getroot()
    size = float(root.get("font-size", 13))
    boxes = [tuple(float(rect.get(key)) for key in ("x", "y", "width", "height")) for rect in root.iter(f"{SVG}rect")]
    labels = []
    for text in root.iter(f"{SVG}text"):
        font = _font(text.get("font-weight") == "bold", float(text.get("font-size", size)))
        width = font.getlength(text.text)
        x, y = float(text.get("x")), float(text.get("y"))
        left = {"middle": x - width / 2, "end": x - width}.get(text.get("text-anchor"), x)
        labels.append((text.text, (left, y - size * 0.8, width, size)))
    return labels, boxes


def inside(inner: tuple, outer: tuple, margin: float = 0) -> bool:
    x, y, width, height = inner
    ox, oy, owidth, oheight = outer
    return ox + margin <= x and x + width <= ox + owidth - margin and oy <= y and y + height <= oy + oheight


def crosses(label: tuple, box: tuple) -> bool:
    """The label overlaps the box without lying inside it."""
    x, y, width, height = label
    bx, by, bwidth, bheight = box
    overlaps = x < bx + bwidth and bx < x + width and y < by + bheight and by < y + height
    return overlaps and not inside(label, box)


@pytest.mark.parametrize("path", PICTURES, ids=[path.name for path in PICTURES])
def test_every_label_fits_its_box(path):
    labels, boxes = labels_and_boxes(path)
    root = ElementTree.parse(path).getroot()
    canvas = (0.0, 0.0, float(root.get("width")), float(root.get("height")))
    for text, label in labels:
        assert inside(label, canvas), f"{text!r} leaves the picture"
        crossed = [box for box in boxes if crosses(label, box)]
        assert not crossed, f"{text!r} ({label[2]:.0f} px wide) crosses the border of the box at {crossed[0][:2]}"
        holding = [box for box in boxes if inside(label, box)]
        if holding:  # the innermost box: the smallest that holds it
            innermost = min(holding, key=lambda box: box[2] * box[3])
            assert inside(label, innermost, MARGIN), f"{text!r} touches the border of its box"


def test_the_check_finds_a_label_wider_than_its_box(tmp_path):
    old = '<text x="453" y="111" text-anchor="middle">adaptive batching queue</text>'
    text = (REPO / "imgs" / "serving-setup.svg").read_text()
    assert old in text
    wide = tmp_path / "wide.svg"
    wide.write_text(text.replace(old, old.replace("adaptive batching queue",
                                                  "adaptive batching queue (max_batch_size/max_batch_time)")))
    with pytest.raises(AssertionError, match="crosses the border"):
        test_every_label_fits_its_box(wide)
