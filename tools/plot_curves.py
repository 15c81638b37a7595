#!/usr/bin/python3
"""Draw learning curves (e.g. FD_fmnist against kimg) from a JSONL file into a PNG.

  plot_curves.py IN.jsonl -o OUT.png [--title TEXT] [--x KEY] [--y KEY] [--series KEY]
                 [--xlabel TEXT] [--ylabel TEXT] [--hline VALUE:LABEL ...] [--logy]

The README shows a chart of FD_fmnist against thousands of images seen for each distillation
method. The machine that trains has numpy but no matplotlib and no PIL, and nothing may be
installed there, so this script draws the chart itself: a built-in 5x7 bitmap font, Bresenham
lines on a numpy RGB raster, "nice" 1/2/5 x 10^k ticks, a legend, and a minimal PNG encoder
(zlib + struct).

Input: one JSON object per line, e.g. {"method": "sid", "kimg": 12.8, "fd": 15.3} (defaults
--x kimg --y fd --series method). Lines whose y is missing, null or not finite (or not positive
with --logy) are skipped; each series is a polyline through its points sorted by x, with a
square marker at each point. --hline 7.5:teacher draws a dashed reference line (repeatable).

Bad input prints one line, "plot_curves: FILE:LINE: problem", exits 1 and writes nothing.
The PNG is written to OUT.tmp and renamed, so OUT is never left half-written.
"""
import argparse
import json
import math
import os
import struct
import sys
import zlib

import numpy as np

W, H = 800, 500
S = 2                      # text scale: one font pixel is S x S image pixels
CH_W, CH_H = 6 * S, 7 * S  # advance and height of one character
WHITE, BLACK, GRID = (255, 255, 255), (0, 0, 0), (228, 228, 228)
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
           (148, 103, 189), (140, 86, 75), (227, 119, 194), (23, 190, 207),
           (188, 189, 34), (0, 0, 128)]
HLINE_COLOURS = [(70, 70, 70), (150, 150, 150), (0, 0, 0)]
INSET = 10                 # pixels between the frame and the outermost data


class PlotError(Exception):
    pass


# ---- font: rows of 5 bits (bit 4 = leftmost column) as hex; 7 rows, or 9 for descenders ----
_FONT_HEX = {
    "0": "0e11131519110e", "1": "040c040404040e", "2": "0e11010204081f", "3": "1f02040201110e",
    "4": "02060a121f0202", "5": "1f101e0101110e", "6": "0608101e11110e", "7": "1f010204080808",
    "8": "0e11110e11110e", "9": "0e11110f01020c",
    "A": "0e11111f111111", "B": "1e11111e11111e", "C": "0e11101010110e", "D": "1c12111111121c",
    "E": "1f10101e10101f", "F": "1f10101e101010", "G": "0e11101711110f", "H": "1111111f111111",
    "I": "0e04040404040e", "J": "0702020202120c", "K": "11121418141211", "L": "1010101010101f",
    "M": "111b1515111111", "N": "11111915131111", "O": "0e11111111110e", "P": "1e11111e101010",
    "Q": "0e11111115120d", "R": "1e11111e141211", "S": "0f10100e01011e", "T": "1f040404040404",
    "U": "1111111111110e", "V": "11111111110a04", "W": "1111111515150a", "X": "11110a040a1111",
    "Y": "11110a04040404", "Z": "1f01020408101f",
    "a": "00000e010f110f", "b": "1010161911111e", "c": "00000e1010110e", "d": "01010d1311110f",
    "e": "00000e111f100e", "f": "0609081c080808", "g": "00000f1111110f010e", "h": "10101619111111",
    "i": "04000c0404040e", "j": "02000602020202120c", "k": "10101214181412", "l": "0c04040404040e",
    "m": "00001a15151111", "n": "00001619111111", "o": "00000e1111110e", "p": "00001e1111111e1010",
    "q": "00000f1111110f0101", "r": "00001619101010", "s": "00000f100e011e", "t": "08081c08080906",
    "u": "0000111111130d", "v": "00001111110a04", "w": "0000111115150a", "x": "0000110a040a11",
    "y": "0000111111130d010e", "z": "00001f0204081f",
    " ": "00000000000000", ".": "00000000000c0c", ",": "000000000c0408", "-": "0000001f000000",
    "+": "0004041f040400", "(": "02040808080402", ")": "08040202020408", ":": "000c0c000c0c00",
    "/": "00010204081000", "=": "00001f001f0000", "_": "0000000000001f", "%": "18190204081303",
    "?": "0e110102040004",
}
GLYPHS = {ch: np.array([[(b >> (4 - c)) & 1 for c in range(5)]
                       for b in bytes.fromhex(h.ljust(18, "0"))], bool)
          for ch, h in _FONT_HEX.items()}


def text_width(text):
    return max(len(text) * CH_W - S, 0)


def text_mask(text):
    """Boolean mask of `text` at scale S, 9 rows with descenders; unknown characters become '?'."""
    mask = np.zeros((9, max(6 * len(text) - 1, 0)), bool)
    for i, ch in enumerate(text):
        mask[:, 6 * i:6 * i + 5] = GLYPHS.get(ch, GLYPHS["?"])
    return mask.repeat(S, axis=0).repeat(S, axis=1)


def draw_text(img, x, y, text, colour=BLACK, anchor="lt", vertical=False):
    """Anchor is horizontal l/c/r then vertical t/m/b (of the 7-row body: descenders hang below);
    vertical text reads bottom to top."""
    mask = text_mask(text)
    body = CH_H
    if vertical:
        mask = np.rot90(mask)
        body = mask.shape[0]
    h, w = mask.shape
    x -= {"l": 0, "c": w // 2, "r": w}[anchor[0]]
    y -= {"t": 0, "m": body // 2, "b": body}[anchor[1]]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 < x1 and y0 < y1:
        img[y0:y1, x0:x1][mask[y0 - y:y1 - y, x0 - x:x1 - x]] = colour


# ---- raster primitives ----
def fill_rect(img, x0, y0, x1, y1, colour):
    """Fill the rectangle with inclusive corners, clipped to the image."""
    x0, x1 = sorted((int(x0), int(x1)))
    y0, y1 = sorted((int(y0), int(y1)))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W - 1), min(y1, H - 1)
    if x0 <= x1 and y0 <= y1:
        img[y0:y1 + 1, x0:x1 + 1] = colour


def bresenham(x0, y0, x1, y1):
    """Integer points of the segment (x0, y0)-(x1, y1), both ends included."""
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x1 > x0 else -1), (1 if y1 > y0 else -1)
    err = dx + dy
    while True:
        yield x0, y0
        if x0 == x1 and y0 == y1:
            return
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def line(img, x0, y0, x1, y1, colour, width=1):
    """A line `width` pixels thick: a square brush stamped along the Bresenham path."""
    lo = -(width // 2)
    for x, y in bresenham(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))):
        fill_rect(img, x + lo, y + lo, x + lo + width - 1, y + lo + width - 1, colour)


def dashed_hline(img, x0, x1, y, colour, width=2, dash=10, gap=6):
    for x in range(int(x0), int(x1) + 1, dash + gap):
        line(img, x, y, min(x + dash - 1, x1), y, colour, width)


def rect(img, x0, y0, x1, y1, colour):
    for a, b, c, d in ((x0, y0, x1, y0), (x0, y1, x1, y1), (x0, y0, x0, y1), (x1, y0, x1, y1)):
        fill_rect(img, a, b, c, d, colour)


# ---- axes ----
def linear_ticks(lo, hi, n=6):
    """Axis bounds rounded out to a 1/2/5 x 10^k step, the ticks, and their labels."""
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))
    a, b = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = [a + i * step for i in range(int(round((b - a) / step)) + 1)]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if max(abs(a), abs(b)) >= 1e6 or step < 1e-4:
        labels = ["%.3g" % t for t in ticks]
    else:
        labels = ["%.*f" % (decimals, t + 0.0) for t in ticks]
    return a, b, ticks, labels


def log_ticks(lo, hi):
    """Bounds and ticks of a log axis: 1..9, 1/2/5 or 1 per decade depending on its span."""
    decades = math.log10(hi / lo)
    mults = range(1, 10) if decades < 1 else (1, 2, 5) if decades <= 4 else (1,)
    kmin, kmax = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    cands = [m * 10.0 ** k for k in range(kmin, kmax + 1) for m in mults]
    a = max(c for c in cands if c <= lo * (1 + 1e-9))
    b = min(c for c in cands if c >= hi * (1 - 1e-9))
    if b <= a:
        i = cands.index(a)
        a, b = cands[i - 1], cands[i + 1]
    ticks = [c for c in cands if a * (1 - 1e-9) <= c <= b * (1 + 1e-9)]
    return a, b, ticks, ["%g" % t for t in ticks]


class Axes:
    """Maps data coordinates into the plot box (px0, py0)-(px1, py1), inset by INSET."""

    def __init__(self, box, xr, yr, logy):
        self.box, self.xr, self.logy = box, xr, logy
        self.yr = (math.log10(yr[0]), math.log10(yr[1])) if logy else yr

    def px(self, x):
        x0, _, x1, _ = self.box
        return x0 + INSET + (x - self.xr[0]) / (self.xr[1] - self.xr[0]) * (x1 - x0 - 2 * INSET)

    def py(self, y):
        _, y0, _, y1 = self.box
        v = math.log10(y) if self.logy else y
        return y1 - INSET - (v - self.yr[0]) / (self.yr[1] - self.yr[0]) * (y1 - y0 - 2 * INSET)


# ---- legend ----
def draw_legend(img, box, entries):
    """entries: (label, colour, is_hline). Placed in the plot corner covering the least ink."""
    row, sample = CH_H + 8, 30
    w = 10 + sample + 8 + max(text_width(e[0]) for e in entries) + 10
    h = 8 + len(entries) * row
    px0, py0, px1, py1 = box
    corners = [(px1 - 10 - w, py0 + 10), (px0 + 10, py0 + 10),
               (px1 - 10 - w, py1 - 10 - h), (px0 + 10, py1 - 10 - h)]

    def ink(c):
        region = img[max(c[1], 0):c[1] + h, max(c[0], 0):c[0] + w].reshape(-1, 3)
        return int(np.sum(np.any(region != WHITE, 1) & np.any(region != GRID, 1)))

    x, y = min(corners, key=ink)  # min() keeps the first (top right) on ties
    fill_rect(img, x, y, x + w, y + h, WHITE)
    rect(img, x, y, x + w, y + h, BLACK)
    for i, (label, colour, is_hline) in enumerate(entries):
        cy = y + 4 + i * row + row // 2
        if is_hline:
            dashed_hline(img, x + 10, x + 10 + sample, cy, colour, dash=8, gap=5)
        else:
            line(img, x + 10, cy, x + 10 + sample, cy, colour, 2)
            fill_rect(img, x + 10 + sample // 2 - 2, cy - 2, x + 10 + sample // 2 + 2, cy + 2, colour)
        draw_text(img, x + 10 + sample + 8, cy, label, BLACK, "lm")


# ---- chart ----
def render(series, hlines, title, xlabel, ylabel, logy):
    img = np.full((H, W, 3), 255, np.uint8)
    xs = [p[0] for pts in series.values() for p in pts]
    ys = [p[1] for pts in series.values() for p in pts] + [v for v, _ in hlines]
    x0, x1, xticks, xlabels = linear_ticks(min(xs), max(xs))
    ticks_fn = (lambda lo, hi: log_ticks(lo, hi)) if logy else linear_ticks
    y0, y1, yticks, ylabels = ticks_fn(min(ys), max(ys))

    top = 12 + CH_H + 14 if title else 20
    left = 10 + (CH_H + 10 if ylabel else 0) + max(map(text_width, ylabels)) + 6 + 5
    right = W - max(20, text_width(xlabels[-1]) // 2 + 6)
    bottom = H - (5 + 6 + CH_H + (10 + CH_H if xlabel else 0) + 10)
    box = (left, top, right, bottom)
    ax = Axes(box, (x0, x1), (y0, y1), logy)

    for t in xticks:
        line(img, ax.px(t), top, ax.px(t), bottom, GRID)
    for t in yticks:
        line(img, left, ax.py(t), right, ax.py(t), GRID)
    for i, (v, _) in enumerate(hlines):
        dashed_hline(img, left + 1, right - 1, round(ax.py(v)), HLINE_COLOURS[i % len(HLINE_COLOURS)])
    for i, pts in enumerate(series.values()):
        colour = PALETTE[i % len(PALETTE)]
        pix = [(ax.px(x), ax.py(y)) for x, y in sorted(pts)]
        for (ax0, ay0), (ax1, ay1) in zip(pix, pix[1:]):
            line(img, ax0, ay0, ax1, ay1, colour, 2)
        for px, py in pix:
            fill_rect(img, round(px) - 3, round(py) - 3, round(px) + 3, round(py) + 3, colour)

    rect(img, left, top, right, bottom, BLACK)
    for t, lab in zip(xticks, xlabels):
        line(img, ax.px(t), bottom, ax.px(t), bottom + 5, BLACK)
        draw_text(img, round(ax.px(t)), bottom + 11, lab, BLACK, "ct")
    for t, lab in zip(yticks, ylabels):
        line(img, left - 5, ax.py(t), left, ax.py(t), BLACK)
        draw_text(img, left - 11, round(ax.py(t)), lab, BLACK, "rm")
    if title:
        draw_text(img, (left + right) // 2, 12, title, BLACK, "ct")
    if xlabel:
        draw_text(img, (left + right) // 2, H - 10, xlabel, BLACK, "cb")
    if ylabel:
        draw_text(img, 10, (top + bottom) // 2, ylabel, BLACK, "lm", vertical=True)

    entries = [(name, PALETTE[i % len(PALETTE)], False) for i, name in enumerate(series)]
    entries += [(lab, HLINE_COLOURS[i % len(HLINE_COLOURS)], True) for i, (_, lab) in enumerate(hlines)]
    draw_legend(img, box, entries)
    return img


def png_bytes(img):
    """Encode an H x W x 3 uint8 array as an RGB PNG (filter 0 on every row)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    h, w, _ = img.shape
    raw = np.hstack([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)]).tobytes()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write_atomic(path, data):
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise PlotError("%s: cannot write: %s" % (path, e.strerror or e))


# ---- input ----
def number(v, where, key):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PlotError("%s: %r is not a number" % (where, key))
    return float(v)


def read_series(path, xkey, ykey, skey, logy):
    """{series name: [(x, y), ...]} in order of first appearance."""
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        raise PlotError("%s: cannot read: %s" % (path, e.strerror or e))
    series = {}
    with f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            where = "%s:%d" % (path, n)
            try:
                obj = json.loads(text)
            except ValueError:
                raise PlotError(where + ": not JSON") from None
            if not isinstance(obj, dict):
                raise PlotError(where + ": not a JSON object")
            if obj.get(ykey) is None:
                continue
            y = number(obj[ykey], where, ykey)
            if not math.isfinite(y) or (logy and y <= 0):
                continue
            if xkey not in obj:
                raise PlotError("%s: missing %r" % (where, xkey))
            x = number(obj[xkey], where, xkey)
            if not math.isfinite(x):
                raise PlotError("%s: %r is not finite" % (where, xkey))
            name = obj.get(skey)
            series.setdefault(ykey if name is None else str(name), []).append((x, y))
    if not series:
        raise PlotError("%s: no plottable points (no finite %r values)" % (path, ykey))
    return series


def hline_arg(s):
    value, _, label = s.partition(":")
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected VALUE:LABEL, got %r" % s) from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError("value of %r is not finite" % s)
    return v, label or "y = %g" % v


def main(argv=None):
    p = argparse.ArgumentParser(prog="plot_curves", description=__doc__.split("\n")[0])
    p.add_argument("input", help="JSONL file, one object per line")
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.add_argument("--title", help="chart title (default: Y vs X)")
    p.add_argument("--x", default="kimg", help="key of the x value (default kimg)")
    p.add_argument("--y", default="fd", help="key of the y value (default fd)")
    p.add_argument("--series", default="method", help="key naming the series (default method)")
    p.add_argument("--xlabel", help="x axis label (default: the x key)")
    p.add_argument("--ylabel", help="y axis label (default: the y key)")
    p.add_argument("--hline", type=hline_arg, action="append", default=[], metavar="VALUE:LABEL",
                   help="dashed reference line, repeatable")
    p.add_argument("--logy", action="store_true", help="logarithmic y axis")
    a = p.parse_args(argv)
    try:
        if a.logy and any(v <= 0 for v, _ in a.hline):
            raise PlotError("--hline values must be positive with --logy")
        series = read_series(a.input, a.x, a.y, a.series, a.logy)
        title = a.title if a.title is not None else "%s vs %s" % (a.y, a.x)
        img = render(series, a.hline, title, a.xlabel if a.xlabel is not None else a.x,
                     a.ylabel if a.ylabel is not None else a.y, a.logy)
        write_atomic(a.output, png_bytes(img))
    except PlotError as e:
        print("plot_curves: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
