"""The documentation site builds with warnings as errors, as ``make docs`` does.

About 10-20 s: Sphinx reads every page and imports the package (PyMC included) for the
API reference. The HTML goes to a temporary folder (built once for all tests here);
autosummary's stubs are written to ``docs/api/generated/`` (ignored by git), as in
``make docs``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """The site built with ``-W`` (notebooks not executed), once per module."""
    tmp_path = tmp_path_factory.mktemp("docs")
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q"]
    cmd += ["-D", "nb_execution_mode=off"]  # tests/test_notebooks.py executes them
    cmd += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stderr[-6000:]}"
    return out


def test_docs_build_with_warnings_as_errors(html):
    for page in (
        "index.html",
        "getting-started.html",
        "user-guide/inference.html",
        "user-guide/prior.html",
        "user-guide/missing.html",
        "relations.html",
        "tutorials.html",
        "notebooks/07_missing_data.html",
        "notebooks/08_case_study.html",
        "architecture.html",
        "api/index.html",
    ):
        assert (html / page).is_file(), page

    # The API reference is generated from the docstrings, lazily imported names included.
    generated = html / "api" / "generated"
    for name in ("GaussianMixture", "PosteriorGaussianMixture", "build_model", "GMMPrior"):
        page = (generated / f"bayesgmm.{name}.html").read_text(encoding="utf-8")
        assert "Parameters" in page, name
    for name in ("default_ci_prob", "relabel_draws"):  # the interval level, relabelling
        page = (generated / f"bayesgmm.{name}.html").read_text(encoding="utf-8")
        assert "Examples" in page, name
    assert "lower_bounds_" in (generated / "bayesgmm.GaussianMixture.html").read_text()
    assert (generated / "bayesgmm.datasets.load_penguins.html").is_file()
    # The prior page carries the MAP update formulas (rendered by MathJax in the browser).
    prior = (html / "user-guide" / "prior.html").read_text(encoding="utf-8")
    assert "\\kappa_0 m_0" in prior
    assert "mathjax" in prior.lower()
    # The missing-values page carries the conditional covariance of the E-step.
    # The uncertainty page says which interval level the package uses, and why.
    uncertainty = (html / "user-guide" / "uncertainty.html").read_text(encoding="utf-8")
    assert "Which interval level" in uncertainty
    missing = (html / "user-guide" / "missing.html").read_text(encoding="utf-8")
    assert "\\Sigma_{k,MO} \\Sigma_{k,OO}^{-1} \\Sigma_{k,OM}" in missing


_SCRIPT_SRC = re.compile(r"<script\b[^>]*\bsrc=\"([^\"]+)\"", re.IGNORECASE)


def test_math_renders_offline(html):
    """Pages with formulas load MathJax from the site itself, and no page loads a script
    from the network (an offline reader would see raw LaTeX)."""
    pages = sorted(html.rglob("*.html"))
    with_math = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        sources = _SCRIPT_SRC.findall(text)
        remote = [s for s in sources if re.match(r"(https?:)?//", s)]
        assert not remote, f"{page.relative_to(html)} loads {remote}"
        mathjax = [s for s in sources if "mathjax" in s.lower()]
        if mathjax:
            with_math += 1
            for src in mathjax:  # a relative path to a file that is in the build
                assert (page.parent / src.split("?")[0]).resolve().is_file(), src
    assert with_math >= 5  # the user guide's pages, the API pages with formulas, ...
    for name in ("user-guide/missing.html", "user-guide/prior.html"):
        text = (html / name).read_text(encoding="utf-8")
        assert "_static/mathjax/tex-chtml.js" in text, name
    fonts = html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert any(fonts.glob("*.woff")), "MathJax's fonts are not in the build"


def test_missing_values_page_example_runs():
    """The example on the user guide's page on missing values runs, warns and prints what
    the page says (its last line, as a comment)."""
    text = (DOCS / "user-guide" / "missing.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1
    expected = blocks[0].rstrip().splitlines()[-1].removeprefix("# ")
    result = subprocess.run(
        [sys.executable, "-c", blocks[0]],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 of 344 rows have no observed value" in result.stderr
    assert result.stdout.strip() == expected
