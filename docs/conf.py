"""Sphinx configuration of the bayesgmm documentation site (``make docs``).

The site is built with warnings as errors (``sphinx-build -W``). Formulas are rendered by
a copy of MathJax shipped with the site (``sphinx-mathjax-offline``), so they show without
internet access. Markdown pages and the
teaching notebooks are read by myst-nb; ``docs/notebooks`` is a link to the repository's
``notebooks/`` folder. ``make docs`` executes them in their fast mode (``BAYESGMM_FAST=1``,
a few minutes) so the pages show their figures; the docs test in the test suite builds with
``-D nb_execution_mode=off`` (the notebooks have their own execution test). The API
reference is generated from the numpydoc docstrings by autosummary into
``api/generated/`` (not tracked by git).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import bayesgmm

DOCS = Path(__file__).resolve().parent
HAS_NOTEBOOKS = any((DOCS / "notebooks").glob("*.ipynb"))

# -- project -----------------------------------------------------------------------------
project = "bayesgmm"
author = "bayesgmm developers"
copyright = "bayesgmm developers"
version = release = bayesgmm.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # ships MathJax 3 with the site (_static/mathjax/) and points mathjax_path at it, so
    # formulas render offline (sphinx.ext.mathjax alone loads MathJax from a CDN)
    "sphinx-mathjax-offline",
    "numpydoc",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "**/.ipynb_checkpoints",
    "notebooks/README.md",  # the folder's own readme; the site has tutorials.md
    "Thumbs.db",
    ".DS_Store",
]
nitpicky = False

# -- API reference: autodoc + autosummary + numpydoc -------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # the numpydoc type lines already say it, with shapes
autodoc_member_order = "groupwise"
autodoc_preserve_defaults = True  # show default=range(1, 10), not its repr at import time
numpydoc_show_class_members = False  # the class template lists members via autodoc
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- markdown and notebooks (myst-nb) -----------------------------------------------------
myst_enable_extensions = ["amsmath", "dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# Executed in their fast mode (small draws): the kernels inherit this environment.
os.environ.setdefault("BAYESGMM_FAST", "1")
# The inline backend, so that the kernels' figures end up in the pages: with
# MPLBACKEND=Agg (what the test suite sets) a notebook draws its figures but shows none.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_merge_streams = True

# -- HTML ---------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"bayesgmm {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "getting-started": [], "relations": []}


# -- links to public names -------------------------------------------------------------
def _link_public_name(app, env, node, contnode):
    """Resolve ``bayesgmm.priors.GMMPrior`` (as docstrings write it) to ``bayesgmm.GMMPrior``.

    The reference documents each object once, under its public name; docstrings often
    name the defining module instead. Try the target with leading module parts dropped.
    """
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("bayesgmm."):
        return None
    domain = env.get_domain("py")
    parts = target.split(".")[1:]
    for start in range(1, len(parts)):
        candidate = ".".join(["bayesgmm", *parts[start:]])
        if candidate in domain.objects:
            return domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
            )
    return None


def _skip_generated_members(app, what, name, obj, skip, options):
    """Leave out members that Python or scikit-learn generate, not our docstrings.

    - the ``set_*_request`` methods scikit-learn adds to every estimator subclass
      (metadata routing): their docstrings refer to scikit-learn's own glossary and
      labels, which do not exist here, so they would fail the ``-W`` build;
    - a NamedTuple's "Alias for field number N" accessors: the class docstring's
      Attributes section already describes the fields.
    """
    if what != "class":
        return None
    if re.fullmatch(r"set_\w+_request", name):
        return True
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def _no_empty_notebook_glob(app, docname, source):
    """Until the first notebook exists, say so instead of an empty ``notebooks/*`` glob
    (an empty glob is a warning, and this Sphinx gives it no type to suppress)."""
    if docname == "tutorials" and not HAS_NOTEBOOKS:
        toctree = re.compile(r"```\{toctree\}.*?notebooks/\*\n```\n", re.DOTALL)
        source[0] = toctree.sub("*No notebook has been added yet.*\n", source[0])


def setup(app):
    app.connect("source-read", _no_empty_notebook_glob)
    app.connect("missing-reference", _link_public_name)
    app.connect("autodoc-skip-member", _skip_generated_members)
