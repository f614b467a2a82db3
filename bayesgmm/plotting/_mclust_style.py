"""mclust's look for the BIC plot: one symbol and one colour per covariance family.

From mclust 6's ``mclust.options()``: ``bicPlotSymbols`` (R plotting characters) and
``bicPlotColors`` (``"gray"`` and ``"black"`` for EII and VII, then
``colorRampPalette(c("forestgreen", "royalblue1", "red3"), space = "Lab")(12)`` over
EEI, EVI, VEI, VVI, EEE, EVE, VEE, VVE, EEV, VEV, EVV, VVV; E and V as EII and VII).
``plot.mclustBIC`` draws points joined by solid lines (``type = "b"``, ``lty = 1``) with a
two-column legend. The R plotting characters become matplotlib marker paths here (open
ones unfilled, 15-17 filled).
"""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path

__all__ = ["MCLUST_BIC_STYLE", "lab_ramp", "mclust_style"]

# mclust's names in the order of its bicPlotSymbols / bicPlotColors vectors.
_ORDER = ("EII", "VII", "EEI", "EVI", "VEI", "VVI", "EEE", "EVE", "VEE", "VVE",
          "EEV", "VEV", "EVV", "VVV", "E", "V")  # fmt: skip
_PCH = (17, 2, 16, 10, 13, 1, 15, 5, 8, 9, 12, 7, 14, 0, 17, 2)

# R's colours by name (grDevices::col2rgb).
_R_COLORS = {
    "gray": "#BEBEBE",
    "black": "#000000",
    "forestgreen": "#228B22",
    "royalblue1": "#4876FF",
    "red3": "#CD0000",
}

_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_SRGB_TO_XYZ = np.array(
    [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
)
_EPS = (6.0 / 29.0) ** 3


def _hex_to_rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)]) / 255.0


def _rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    t = (_SRGB_TO_XYZ @ linear) / _WHITE_D65
    f = np.where(t > _EPS, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    fy = (lab[0] + 16) / 116
    f = np.array([fy + lab[1] / 500, fy, fy - lab[2] / 200])
    t = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    linear = np.linalg.solve(_SRGB_TO_XYZ, t * _WHITE_D65)
    rgb = np.where(
        linear <= 0.0031308, 12.92 * linear, 1.055 * np.abs(linear) ** (1 / 2.4) - 0.055
    )
    return np.clip(rgb, 0.0, 1.0)


def lab_ramp(colors: list[str], n: int) -> list[str]:
    """``n`` colours interpolated linearly in CIE Lab (D65) through ``colors`` (hex),
    as R's ``colorRampPalette(colors, space = "Lab")(n)``."""
    labs = np.array([_rgb_to_lab(_hex_to_rgb(c)) for c in colors])
    knots = np.linspace(0.0, 1.0, len(colors))
    out = []
    for x in np.linspace(0.0, 1.0, n):
        lab = np.array([np.interp(x, knots, labs[:, i]) for i in range(3)])
        rgb = np.round(_lab_to_rgb(lab) * 255).astype(int)
        out.append("#{:02X}{:02X}{:02X}".format(*rgb))
    return out


def _polygon(points) -> Path:
    points = np.asarray(points, dtype=float)
    codes = [Path.MOVETO] + [Path.LINETO] * (len(points) - 1) + [Path.CLOSEPOLY]
    return Path(np.vstack([points, points[:1]]), codes)


def _segments(pairs) -> Path:
    vertices, codes = [], []
    for a, b in pairs:
        vertices += [a, b]
        codes += [Path.MOVETO, Path.LINETO]
    return Path(np.asarray(vertices, dtype=float), codes)


_SQUARE = _polygon([(-1, -1), (1, -1), (1, 1), (-1, 1)])
_CIRCLE = Path.unit_circle()
_DIAMOND = _polygon([(0, -1), (1, 0), (0, 1), (-1, 0)])
_TRIANGLE = _polygon([(-1, -0.8), (1, -0.8), (0, 1)])
_PLUS = _segments([((-1, 0), (1, 0)), ((0, -1), (0, 1))])
_R = 1 / np.sqrt(2)
_CROSS = _segments([((-1, -1), (1, 1)), ((-1, 1), (1, -1))])
_CROSS_IN = _segments([((-_R, -_R), (_R, _R)), ((-_R, _R), (_R, -_R))])


def _compound(*paths: Path) -> Path:
    return Path.make_compound_path(*paths)


# R plotting character -> (matplotlib marker, filled)
_MARKER_OF_PCH = {
    0: (_SQUARE, False),
    1: (_CIRCLE, False),
    2: (_TRIANGLE, False),
    5: (_DIAMOND, False),
    7: (_compound(_SQUARE, _CROSS), False),
    8: (_compound(_PLUS, _CROSS_IN), False),
    9: (_compound(_DIAMOND, _PLUS), False),
    10: (_compound(_CIRCLE, _PLUS), False),
    12: (_compound(_SQUARE, _PLUS), False),
    13: (_compound(_CIRCLE, _CROSS_IN), False),
    14: (_compound(_SQUARE, _polygon([(-1, -1), (1, -1), (0, 1)])), False),
    15: (_SQUARE, True),
    16: (_CIRCLE, True),
    17: (_TRIANGLE, True),
}

_COLORS = ["gray", "black"]
_PALETTE = lab_ramp([_R_COLORS[c] for c in ("forestgreen", "royalblue1", "red3")], 12)

#: mclust name -> (R plotting character, matplotlib marker, filled, colour as hex).
MCLUST_BIC_STYLE: dict[str, tuple[int, Path, bool, str]] = {}
for _i, (_name, _pch) in enumerate(zip(_ORDER, _PCH, strict=True)):
    if _name in ("EII", "E"):
        _color = _R_COLORS["gray"]
    elif _name in ("VII", "V"):
        _color = _R_COLORS["black"]
    else:
        _color = _PALETTE[_i - 2]
    MCLUST_BIC_STYLE[_name] = (_pch, *_MARKER_OF_PCH[_pch], _color)


def mclust_style(mclust_name: str) -> dict:
    """Keyword arguments for ``Axes.plot`` in mclust's style for one family."""
    _, marker, filled, color = MCLUST_BIC_STYLE[mclust_name]
    return {
        "color": color,
        "marker": marker,
        "markerfacecolor": color if filled else "none",
        "markeredgecolor": color,
        "linestyle": "-",
    }
