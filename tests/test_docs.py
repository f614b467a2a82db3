"""The documentation site builds with warnings as errors, as ``make docs`` does.

About 10-20 s: Sphinx reads every page and imports the package (PyMC included) for the
API reference. The HTML goes to a temporary folder; autosummary's stubs are written to
``docs/api/generated/`` (ignored by git), as in ``make docs``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_build_with_warnings_as_errors(tmp_path):
    html = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q"]
    cmd += ["-D", "nb_execution_mode=off"]  # tests/test_notebooks.py executes them
    cmd += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(html)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stderr[-6000:]}"

    for page in (
        "index.html",
        "getting-started.html",
        "user-guide/inference.html",
        "user-guide/prior.html",
        "relations.html",
        "tutorials.html",
        "architecture.html",
        "api/index.html",
    ):
        assert (html / page).is_file(), page

    # The API reference is generated from the docstrings, lazily imported names included.
    generated = html / "api" / "generated"
    for name in ("GaussianMixture", "PosteriorGaussianMixture", "build_model", "GMMPrior"):
        page = (generated / f"bayesgmm.{name}.html").read_text(encoding="utf-8")
        assert "Parameters" in page, name
    assert "lower_bounds_" in (generated / "bayesgmm.GaussianMixture.html").read_text()
    # The prior page carries the MAP update formulas (rendered by MathJax in the browser).
    prior = (html / "user-guide" / "prior.html").read_text(encoding="utf-8")
    assert "\\kappa_0 m_0" in prior
    assert "mathjax" in prior.lower()
