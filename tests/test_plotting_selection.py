"""plot_model_selection in mclust's layout: what it draws is what the table says."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgb

from bayesgmm import select_model
from bayesgmm.core.covariance import MCLUST_FAMILIES
from bayesgmm.datasets import load_faithful
from bayesgmm.plotting import plot_model_selection
from bayesgmm.plotting._mclust_style import MCLUST_BIC_STYLE, lab_ramp


@pytest.fixture(scope="module")
def selection():
    return select_model(load_faithful(), range(1, 4), "all", init_params="hc", n_init=1)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("criterion", ["bic", "icl"])
@pytest.mark.parametrize("mclust_sign", [False, True])
def test_lines_are_the_table_in_either_sign(selection, criterion, mclust_sign):
    ax = plot_model_selection(selection, criterion=criterion, mclust_sign=mclust_sign)
    table = selection.table
    assert [line.get_label() for line in ax.lines] == list(MCLUST_FAMILIES)
    sign = -1.0 if mclust_sign else 1.0
    for line, cov in zip(ax.lines, MCLUST_FAMILIES, strict=True):
        rows = table[table["covariance_type"] == cov].sort_values("n_components")
        np.testing.assert_array_equal(line.get_xdata(), rows["n_components"])
        np.testing.assert_array_equal(line.get_ydata(), sign * rows[criterion])
        assert line.get_linestyle() == "-"
    # the circled model is the table's best (lowest in our sign, highest in mclust's)
    best = table.loc[table[criterion].idxmin()]
    np.testing.assert_allclose(
        ax.collections[0].get_offsets(), [[best["n_components"], sign * best[criterion]]]
    )
    if mclust_sign:
        assert ax.get_ylabel() == f"{criterion.upper()} (mclust sign: higher is better)"
        assert ax.collections[0].get_offsets()[0, 1] == max(
            np.nanmax(line.get_ydata()) for line in ax.lines
        )
    else:
        assert ax.get_ylabel() == f"{criterion.upper()} (lower is better)"
    np.testing.assert_array_equal(ax.get_xticks(), [1, 2, 3])
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(MCLUST_FAMILIES)
    assert legend._ncols == 2


def test_each_family_in_mclusts_symbol_and_colour(selection):
    ax = plot_model_selection(selection, mclust_sign=True)
    colours = [to_hex(line.get_color()) for line in ax.lines]
    assert len(set(colours)) == 14
    markers = [line.get_marker() for line in ax.lines]
    for name, line, colour in zip(MCLUST_FAMILIES, ax.lines, colours, strict=True):
        pch, _, filled, expected = MCLUST_BIC_STYLE[name]
        assert colour == expected.lower()
        face = line.get_markerfacecolor()
        assert (face != "none") == filled == (pch in (15, 16, 17))
    # mclust's bicPlotSymbols: EII a filled triangle, VII an open one, ...
    expected_pch = [17, 2, 16, 13, 10, 1, 15, 5, 8, 9, 12, 7, 14, 0]  # in MCLUST_FAMILIES order
    assert [MCLUST_BIC_STYLE[name][0] for name in MCLUST_FAMILIES] == expected_pch
    faces = [line.get_markerfacecolor() != "none" for line in ax.lines]
    assert len({(id(m), f) for m, f in zip(markers, faces, strict=True)}) == 14


def test_lab_ramp_ends_at_its_colours_and_is_linear_in_lightness():
    ends = ["#228B22", "#4876FF", "#CD0000"]  # forestgreen, royalblue1, red3
    ramp = lab_ramp(ends, 12)
    assert (ramp[0], ramp[-1]) == (ends[0], ends[-1])
    assert (MCLUST_BIC_STYLE["EEI"][3], MCLUST_BIC_STYLE["VVV"][3]) == (ends[0], ends[-1])
    assert (MCLUST_BIC_STYLE["EII"][3], MCLUST_BIC_STYLE["VII"][3]) == ("#BEBEBE", "#000000")
    # three colours, three knots: the middle of a two-colour ramp is the Lab midpoint,
    # whose lightness (CIE L*, from relative luminance) is the mean of the ends'
    two = lab_ramp(ends[:2], 3)

    def lightness(hex_colour):
        rgb = np.array(to_rgb(hex_colour))
        lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        y = lin @ [0.2126, 0.7152, 0.0722]
        return 116 * np.cbrt(y) - 16

    assert lightness(two[1]) == pytest.approx(
        (lightness(ends[0]) + lightness(ends[1])) / 2, abs=0.6
    )


def test_four_types_keep_their_names_and_one_legend_column():
    sel = select_model(load_faithful(), range(1, 3), ["full", "tied"], n_init=1, random_state=0)
    ax = plot_model_selection(sel)
    assert [line.get_label() for line in ax.lines] == ["full (VVV)", "tied (EEE)"]
    assert ax.get_legend()._ncols == 1
    assert to_hex(ax.lines[0].get_color()) == MCLUST_BIC_STYLE["VVV"][3].lower()
