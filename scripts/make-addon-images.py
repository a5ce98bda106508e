#!/usr/bin/env python3
"""Draws the add-on store's pictures, cb2mqtt/icon.png (128x128) and
cb2mqtt/logo.png (250x100), with the standard library only (zlib PNG
writer, anti-aliased by 4x4 supersampling). The picture: a coin (a tip)
sending out three arcs (a broadcast, MQTT), and on the logo the word
cb2mqtt in a small block font. Run it again after changing it:

    python3 scripts/make-addon-images.py
"""

import math
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SS = 4  # supersampling factor

BG = (34, 28, 56)        # deep violet
COIN = (247, 160, 36)    # orange
COIN_DARK = (196, 110, 16)
ARC = (84, 196, 214)     # teal
TEXT = (240, 240, 245)

# 5x7 glyphs for the letters of "cb2mqtt".
FONT = {
    "c": ["     ", "     ", " ####", "#    ", "#    ", "#    ", " ####"],
    "b": ["#    ", "#    ", "#### ", "#   #", "#   #", "#   #", "#### "],
    "2": [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
    "m": ["     ", "     ", "## # ", "# # #", "# # #", "# # #", "# # #"],
    "q": ["     ", "     ", " ####", "#   #", "#   #", " ####", "    #"],
    "t": [" #   ", " #   ", "#### ", " #   ", " #   ", " #   ", "  ## "],
}


def png(path, width, height, pixels):
    """pixels: rows of (r, g, b, a) tuples."""
    raw = b"".join(b"\x00" + b"".join(struct.pack("4B", *p) for p in row) for row in pixels)

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def render(width, height, shade):
    """shade(x, y) -> (r, g, b, a) at a point in picture units; averaged over
    SS x SS samples per pixel."""
    rows = []
    for py in range(height):
        row = []
        for px in range(width):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(SS):
                for sx in range(SS):
                    r, g, b, a = shade(px + (sx + 0.5) / SS, py + (sy + 0.5) / SS)
                    acc[0] += r * a
                    acc[1] += g * a
                    acc[2] += b * a
                    acc[3] += a
            n = SS * SS
            alpha = acc[3] / n
            if alpha > 0:
                color = tuple(int(round(c / acc[3])) for c in acc[:3])
            else:
                color = (0, 0, 0)
            row.append(color + (int(round(alpha * 255)),))
        rows.append(row)
    return rows


def rounded_rect(x, y, w, h, r):
    cx = min(max(x, r), w - r)
    cy = min(max(y, r), h - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r and 0 <= x <= w and 0 <= y <= h


def emblem(x, y, cx, cy, s):
    """The coin and its arcs around (cx, cy), s = coin radius; None outside."""
    d = math.hypot(x - cx, y - cy)
    if d <= s:
        if d >= s * 0.78:
            return COIN_DARK
        # a "T" for tokens on the coin
        u, v = (x - cx) / s, (y - cy) / s
        if (-0.42 <= u <= 0.42 and -0.45 <= v <= -0.25) or (-0.11 <= u <= 0.11 and -0.45 <= v <= 0.5):
            return COIN_DARK
        return COIN
    ang = math.degrees(math.atan2(cy - y, x - cx))  # up-right quadrant
    if -50 <= ang <= 50:
        for k in (1, 2, 3):
            ring = s * (1.0 + 0.62 * k)
            if abs(d - ring) <= s * 0.15:
                return ARC
    return None


def icon():
    size = 128

    def shade(x, y):
        if not rounded_rect(x, y, size, size, 24):
            return (0, 0, 0, 0.0)
        c = emblem(x, y, 44, 64, 26)
        return (c or BG) + (1.0,)

    png(os.path.join(ROOT, "cb2mqtt", "icon.png"), size, size, render(size, size, shade))


def logo():
    w, h = 250, 100
    word = "cb2mqtt"
    cell, gap = 3.4, 1  # font pixel size, columns between letters
    text_x, text_y = 98, 50 - 3.5 * cell

    def glyph_at(x, y):
        col = int((x - text_x) // cell)
        row = int((y - text_y) // cell)
        if row < 0 or row >= 7 or col < 0:
            return False
        letter, inside = divmod(col, 5 + gap)
        if letter >= len(word) or inside >= 5:
            return False
        return FONT[word[letter]][row][inside] == "#"

    def shade(x, y):
        if not rounded_rect(x, y, w, h, 18):
            return (0, 0, 0, 0.0)
        c = emblem(x, y, 34, 50, 20)
        if c:
            return c + (1.0,)
        if glyph_at(x, y):
            return TEXT + (1.0,)
        return BG + (1.0,)

    png(os.path.join(ROOT, "cb2mqtt", "logo.png"), w, h, render(w, h, shade))


if __name__ == "__main__":
    icon()
    logo()
