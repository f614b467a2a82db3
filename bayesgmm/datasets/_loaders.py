"""Loaders for the classic data sets shipped with :mod:`bayesgmm.datasets`.

The CSV files live in ``bayesgmm/datasets/data/`` and are read through
:func:`importlib.resources.files`, so the loaders work from a source checkout, an
installed wheel or a zip import alike. Provenance and cross-checks for every file are
documented in ``bayesgmm/datasets/data/SOURCES.md``.

Every loader returns a fresh :class:`pandas.DataFrame` (mutating it does not affect later
calls) whose numeric columns are ``float64`` and whose label columns are
:class:`pandas.Categorical` with a fixed category order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from importlib.resources import files
from typing import Literal

import pandas as pd

__all__ = [
    "list_datasets",
    "load_acidity",
    "load_banknote",
    "load_diabetes",
    "load_enzyme",
    "load_faithful",
    "load_galaxies",
    "load_iris",
    "load_penguins",
    "load_precip",
    "load_thyroid",
    "load_trees",
    "load_wreath",
]

_PACKAGE = "bayesgmm.datasets"
# Index columns written by R's write.csv / Rdatasets or by pandas' to_csv; dropped if present.
_INDEX_COLUMNS = frozenset({"rownames", "", "Unnamed: 0"})

GalaxiesVersion = Literal["rg97", "mass"]
_GALAXIES_VERSIONS: tuple[str, ...] = ("rg97", "mass")


def _read_csv(
    filename: str,
    numeric: Mapping[str, str],
    categorical: Mapping[str, tuple[str, Sequence[str]]] | None = None,
    *,
    allow_missing: Collection[str] = (),
) -> pd.DataFrame:
    """Read one packaged CSV file and validate it.

    Parameters
    ----------
    filename : str
        Name of the file inside ``bayesgmm/datasets/data/``.
    numeric : mapping of str to str
        ``{column in file: column in result}`` for the numeric columns; they are parsed
        as ``float64`` and must not contain missing values unless listed in
        ``allow_missing``.
    categorical : mapping of str to (str, sequence of str), optional
        ``{column in file: (column in result, categories)}`` for label columns; every
        value must be one of ``categories``, which also fixes the category order.
    allow_missing : collection of str, optional
        Columns (names in the file) that may have missing values (empty, ``NA`` or
        ``NaN`` in the file): NaN in a numeric column, a missing label in a categorical
        one.

    Returns
    -------
    pandas.DataFrame
        The renamed columns, in the same order as in the file, with a default
        ``RangeIndex``.

    Raises
    ------
    ValueError
        If the file's columns are not exactly the expected ones (ignoring a leading
        index column), or if a value is non-numeric, an unknown label, or missing in a
        column not listed in ``allow_missing``.
    """
    categorical = dict(categorical or {})
    expected = [*categorical, *numeric]
    dtypes: dict[str, str | type] = dict.fromkeys(numeric, "float64")
    dtypes.update(dict.fromkeys(categorical, str))

    resource = files(_PACKAGE) / "data" / filename
    with resource.open("r", encoding="utf-8", newline="") as handle:
        raw = pd.read_csv(
            handle,
            dtype=dtypes,
            keep_default_na=False,
            na_values=["", "NA", "NaN", "nan"],
        )

    raw = raw.drop(columns=[c for c in raw.columns if str(c) in _INDEX_COLUMNS])
    if sorted(map(str, raw.columns)) != sorted(expected):
        raise ValueError(
            f"{filename}: expected columns {expected}, found {[str(c) for c in raw.columns]}"
        )

    out: dict[str, tuple[str, object]] = {}  # column in file -> (column in result, values)
    for name, (new_name, levels) in categorical.items():
        labels = raw[name]
        unknown = labels.notna() & ~labels.isin(levels)
        if (name not in allow_missing and labels.isna().any()) or unknown.any():
            bad = sorted(set(labels[unknown].tolist()))
            raise ValueError(f"{filename}: column {name!r} has missing or unknown labels {bad}")
        out[name] = (new_name, pd.Categorical(labels.to_numpy(), categories=list(levels)))
    for name, new_name in numeric.items():
        column = raw[name].astype("float64")
        if name not in allow_missing and column.isna().any():
            raise ValueError(f"{filename}: column {name!r} has missing values")
        out[name] = (new_name, column.to_numpy(copy=True))
    return pd.DataFrame(dict(out[str(c)] for c in raw.columns))


def list_datasets() -> list[str]:
    """Names of the bundled data sets.

    Returns
    -------
    list of str
        Sorted names ``NAME`` such that ``bayesgmm.datasets.load_NAME`` exists.

    Examples
    --------
    >>> from bayesgmm.datasets import list_datasets
    >>> list_datasets()  # doctest: +NORMALIZE_WHITESPACE
    ['acidity', 'banknote', 'diabetes', 'enzyme', 'faithful', 'galaxies', 'iris',
     'penguins', 'precip', 'thyroid', 'trees', 'wreath']
    """
    return sorted(name.removeprefix("load_") for name in __all__ if name.startswith("load_"))


def load_faithful() -> pd.DataFrame:
    """Old Faithful geyser eruptions (R's ``datasets::faithful``).

    Waiting time between eruptions and the duration of the eruption for the Old
    Faithful geyser in Yellowstone National Park, Wyoming, USA: 272 observations.
    The classic bimodal example for two-component mixtures.

    Returns
    -------
    pandas.DataFrame
        272 rows, 2 ``float64`` columns:

        - ``eruptions``: eruption time (minutes);
        - ``waiting``: waiting time to the next eruption (minutes).

    Notes
    -----
    Source: Rdatasets (vincentarelbundock/Rdatasets @ 1dcc2bf5,
    ``csv/datasets/faithful.csv``), identical to ``Faithful`` in the R package mixAK;
    column means 3.487783 / 70.897059.

    References
    ----------
    .. [1] W. Härdle (1991). *Smoothing Techniques with Implementation in S*.
       Springer.
    .. [2] A. Azzalini and A. W. Bowman (1990). A look at some data on the Old
       Faithful geyser. *Applied Statistics* 39, 357-365.

    Examples
    --------
    >>> from bayesgmm.datasets import load_faithful
    >>> df = load_faithful()
    >>> df.shape
    (272, 2)
    >>> df.mean().round(3).tolist()
    [3.488, 70.897]
    """
    return _read_csv("faithful.csv", {"eruptions": "eruptions", "waiting": "waiting"})


def load_galaxies(version: GalaxiesVersion = "rg97") -> pd.DataFrame:
    """Velocities of 82 galaxies in the Corona Borealis region.

    Recession velocities of 82 galaxies from six well-separated conic sections of an
    unfilled survey of the Corona Borealis region (Postman, Huchra and Geller, 1986);
    the standard benchmark for mixtures with an unknown number of components.

    Parameters
    ----------
    version : {"rg97", "mass"}, default "rg97"
        ``"rg97"``: the values used by Richardson and Green (1997), in units of
        1000 km/s, as distributed in P. J. Green's R package Nmix. ``"mass"``: R's
        ``MASS::galaxies`` in km/s, which carries a documented typo at observation 78
        (26690 instead of 26960). Apart from that observation and the unit, the two
        versions are identical.

    Returns
    -------
    pandas.DataFrame
        82 rows (sorted ascending), one ``float64`` column: ``velocity_kkms``
        (1000 km/s) for ``"rg97"`` or ``velocity_kms`` (km/s) for ``"mass"``.

    Raises
    ------
    ValueError
        If ``version`` is not ``"rg97"`` or ``"mass"``.

    Notes
    -----
    Sources: ``"rg97"`` from cran/Nmix @ 22a27ea5 ``data/galx.rda`` (identical to
    ``Galaxy`` in mixAK); ``"mass"`` from Rdatasets @ 1dcc2bf5
    ``csv/MASS/galaxies.csv`` (identical to ``galaxy`` in BNPdensity, x1000;
    mean 20828.17).

    References
    ----------
    .. [1] M. Postman, J. P. Huchra and M. J. Geller (1986). Probes of large-scale
       structures in the Corona Borealis region. *Astronomical Journal* 92, 1238-1247.
    .. [2] K. Roeder (1990). Density estimation with confidence sets exemplified by
       superclusters and voids in galaxies. *JASA* 85, 617-624.
    .. [3] S. Richardson and P. J. Green (1997). On Bayesian analysis of mixtures with
       an unknown number of components. *JRSS B* 59, 731-792.
    .. [4] W. N. Venables and B. D. Ripley (2002). *Modern Applied Statistics with S*,
       4th ed. Springer.

    Examples
    --------
    >>> from bayesgmm.datasets import load_galaxies
    >>> df = load_galaxies()
    >>> df.shape
    (82, 1)
    >>> float(df["velocity_kkms"].iloc[77])
    26.96
    >>> float(load_galaxies(version="mass")["velocity_kms"].iloc[77])
    26690.0
    """
    if version == "rg97":
        return _read_csv("galaxies_rg97.csv", {"velocity_kkms": "velocity_kkms"})
    if version == "mass":
        return _read_csv("galaxies.csv", {"velocity": "velocity_kms"})
    allowed = ", ".join(repr(v) for v in _GALAXIES_VERSIONS)
    raise ValueError(f"version must be one of {allowed}; got {version!r}")


def load_acidity() -> pd.DataFrame:
    """Acidity index of 155 lakes (``mclust::acidity``).

    Acidity index measured in a sample of 155 lakes in north-central Wisconsin (as
    described by Richardson and Green, 1997; some R packages say "north-eastern United
    States"), expressed, following Crawford et al., as ``log(ANC + 50)`` where ANC is
    the acid-neutralising capacity. Used for univariate mixtures by Richardson and Green
    (1997) and McLachlan and Peel (2000, Sec. 6.6.2).

    Returns
    -------
    pandas.DataFrame
        155 rows, one ``float64`` column: ``acidity``.

    Notes
    -----
    Source: cran/mclust @ 74421f00 (v6.1) ``data/acidity.rda``; identical to the copies
    in BNPdensity, Nmix (``lnacid``) and mixAK. Contains tied values.

    References
    ----------
    .. [1] S. L. Crawford, M. H. DeGroot, J. B. Kadane and M. J. Small (1992). Modeling
       lake-chemistry distributions: approximate Bayesian methods for estimating a
       finite-mixture model. *Technometrics* 34, 441-453.
    .. [2] S. L. Crawford (1994). An application of the Laplace method to finite
       mixture distributions. *JASA* 89, 259-267.
    .. [3] S. Richardson and P. J. Green (1997). On Bayesian analysis of mixtures with
       an unknown number of components. *JRSS B* 59, 731-792.

    Examples
    --------
    >>> from bayesgmm.datasets import load_acidity
    >>> load_acidity().shape
    (155, 1)
    """
    return _read_csv("acidity.csv", {"acidity": "acidity"})


def load_enzyme() -> pd.DataFrame:
    """Enzymatic activity in the blood of 245 individuals.

    Activity of an enzyme involved in the metabolism of carcinogenic substances,
    measured in the blood of 245 unrelated individuals (Bechtel et al., 1993); the
    bimodality suggests slow and fast metabolisers. One of the three Richardson and
    Green (1997) data sets.

    Returns
    -------
    pandas.DataFrame
        245 rows, one ``float64`` column: ``enzyme``.

    Notes
    -----
    Source: cran/BNPdensity @ 314c943b ``data/enzyme.rda``; identical to Nmix
    (``enz``) and mixAK (``Enzyme``). BNPdensity's help page says 244 observations, but
    the data (like Richardson and Green's) have 245. Contains tied values.

    References
    ----------
    .. [1] Y. D. Bechtel, C. Bonaiti-Pellie, N. Poisson, J. Magnette and P. R. Bechtel
       (1993). A population and family study of N-acetyltransferase using caffeine
       urinary metabolites. *Clinical Pharmacology & Therapeutics* 54, 134-141.
    .. [2] S. Richardson and P. J. Green (1997). On Bayesian analysis of mixtures with
       an unknown number of components. *JRSS B* 59, 731-792.

    Examples
    --------
    >>> from bayesgmm.datasets import load_enzyme
    >>> load_enzyme().shape
    (245, 1)
    """
    return _read_csv("enzyme.csv", {"enzyme": "enzyme"})


def load_iris() -> pd.DataFrame:
    """Edgar Anderson's iris data (R's ``datasets::iris``).

    Sepal and petal length and width (cm) of 50 flowers from each of three species of
    iris.

    Returns
    -------
    pandas.DataFrame
        150 rows: ``float64`` columns ``sepal_length``, ``sepal_width``,
        ``petal_length``, ``petal_width`` and categorical ``species`` (``setosa``,
        ``versicolor``, ``virginica``).

    Notes
    -----
    Source: Rdatasets @ 1dcc2bf5 ``csv/datasets/iris.csv`` (R column names such as
    ``Sepal.Length`` are renamed to snake case).

    References
    ----------
    .. [1] E. Anderson (1935). The irises of the Gaspe Peninsula. *Bulletin of the
       American Iris Society* 59, 2-5.
    .. [2] R. A. Fisher (1936). The use of multiple measurements in taxonomic problems.
       *Annals of Eugenics* 7, 179-188.

    Examples
    --------
    >>> from bayesgmm.datasets import load_iris
    >>> df = load_iris()
    >>> df.shape
    (150, 5)
    >>> df["species"].cat.categories.tolist()
    ['setosa', 'versicolor', 'virginica']
    """
    return _read_csv(
        "iris.csv",
        {
            "Sepal.Length": "sepal_length",
            "Sepal.Width": "sepal_width",
            "Petal.Length": "petal_length",
            "Petal.Width": "petal_width",
        },
        {"Species": ("species", ("setosa", "versicolor", "virginica"))},
    )


def load_diabetes() -> pd.DataFrame:
    """Reaven and Miller's diabetes data, corrected version.

    Three measurements on 145 non-obese adult subjects classified as normal, chemical
    diabetes or overt diabetes (Reaven and Miller, 1979). This is the *corrected*
    version: the legacy ``mclust::diabetes`` mislabels its columns and has a typo, which
    are fixed here exactly as in the mclust >= 6.1.2 vignette (rename
    ``glucose -> fpg``, ``insulin -> glucose``, ``sspg -> insulin``, then set
    ``glucose`` of observation 104 to 455 instead of 45).

    Returns
    -------
    pandas.DataFrame
        145 rows: categorical ``class`` (``Normal`` 76, ``Chemical`` 36, ``Overt`` 33)
        and ``float64`` columns

        - ``fpg``: fasting plasma glucose (mg/dl);
        - ``glucose``: area under the plasma glucose curve of a three-hour oral glucose
          tolerance test (OGTT);
        - ``insulin``: area under the plasma insulin curve of the OGTT.

    Notes
    -----
    Source: derived from cran/mclust @ 74421f00 ``data/diabetes.rda`` as described
    above (see ``man/diabetes.Rd`` @ 7eb32e4d, "Diabetes Data (flawed)").

    References
    ----------
    .. [1] G. M. Reaven and R. G. Miller (1979). An attempt to define the nature of
       chemical diabetes using a multidimensional analysis. *Diabetologia* 16, 17-24.

    Examples
    --------
    >>> from bayesgmm.datasets import load_diabetes
    >>> df = load_diabetes()
    >>> df.shape
    (145, 4)
    >>> float(df["glucose"].iloc[103])
    455.0
    """
    return _read_csv(
        "diabetes_corrected.csv",
        {"fpg": "fpg", "glucose": "glucose", "insulin": "insulin"},
        {"class": ("class", ("Normal", "Chemical", "Overt"))},
    )


def load_banknote() -> pd.DataFrame:
    """Swiss banknote data (``mclust::banknote``).

    Six measurements (mm) of 100 genuine and 100 counterfeit old Swiss 1000-franc bank
    notes (Flury and Riedwyl, 1988).

    Returns
    -------
    pandas.DataFrame
        200 rows: categorical ``status`` (``genuine``, ``counterfeit``) and ``float64``
        columns ``length`` (length of the bill), ``left`` and ``right`` (width of the
        left and right edges), ``bottom`` and ``top`` (bottom and top margin widths),
        ``diagonal`` (length of the image diagonal).

    Notes
    -----
    Source: cran/mclust @ 7eb32e4d ``data/banknote.txt`` (column names lower-cased).

    References
    ----------
    .. [1] B. Flury and H. Riedwyl (1988). *Multivariate Statistics: A Practical
       Approach*. Chapman and Hall.

    Examples
    --------
    >>> from bayesgmm.datasets import load_banknote
    >>> df = load_banknote()
    >>> df.shape
    (200, 7)
    >>> df["status"].cat.categories.tolist()
    ['genuine', 'counterfeit']
    """
    columns = ("Length", "Left", "Right", "Bottom", "Top", "Diagonal")
    return _read_csv(
        "banknote.csv",
        {name: name.lower() for name in columns},
        {"Status": ("status", ("genuine", "counterfeit"))},
    )


def load_thyroid() -> pd.DataFrame:
    """Thyroid gland data (``mclust::thyroid``).

    Five laboratory tests on 215 patients whose thyroid state is classified as normal
    (euthyroidism), hyperthyroidism or hypothyroidism (Coomans et al., 1983; the UCI
    "new-thyroid" data).

    Returns
    -------
    pandas.DataFrame
        215 rows: categorical ``diagnosis`` (``Normal`` 150, ``Hyper`` 35, ``Hypo`` 30)
        and ``float64`` columns

        - ``RT3U``: T3-resin uptake test (percentage);
        - ``T4``: total serum thyroxin, by radioimmunoassay;
        - ``T3``: total serum triiodothyronine, by radioimmunoassay;
        - ``TSH``: basal thyroid-stimulating hormone, by radioimmunoassay;
        - ``DTSH``: maximal absolute difference of TSH after injection of 200 micrograms
          of thyrotropin-releasing hormone, compared with the basal value (can be
          negative).

    Notes
    -----
    Source: cran/mclust @ 74421f00 ``data/thyroid.rda``.

    References
    ----------
    .. [1] D. Coomans, M. Broeckaert, M. Jonckheer and D. L. Massart (1983). Comparison
       of multivariate discrimination techniques for clinical data - application to the
       thyroid functional state. *Methods of Information in Medicine* 22, 93-101.

    Examples
    --------
    >>> from bayesgmm.datasets import load_thyroid
    >>> df = load_thyroid()
    >>> df.shape
    (215, 6)
    >>> df["diagnosis"].cat.categories.tolist()
    ['Normal', 'Hyper', 'Hypo']
    """
    columns = ("RT3U", "T4", "T3", "TSH", "DTSH")
    return _read_csv(
        "thyroid.csv",
        {name: name for name in columns},
        {"Diagnosis": ("diagnosis", ("Normal", "Hyper", "Hypo"))},
    )


def load_wreath() -> pd.DataFrame:
    """Simulated "wreath" data (``mclust::wreath``).

    1000 points in two dimensions simulated from a 14-component Gaussian mixture whose
    components are arranged in a wreath (Fraley, Raftery and Wehrens, 2005). The
    generating labels are not available.

    Returns
    -------
    pandas.DataFrame
        1000 rows, 2 ``float64`` columns: ``x1``, ``x2``.

    Notes
    -----
    Source: cran/mclust @ 74421f00 ``data/wreath.rda``.

    References
    ----------
    .. [1] C. Fraley, A. E. Raftery and R. Wehrens (2005). Incremental model-based
       clustering for large datasets with small clusters. *Journal of Computational
       and Graphical Statistics* 14, 529-546.

    Examples
    --------
    >>> from bayesgmm.datasets import load_wreath
    >>> load_wreath().shape
    (1000, 2)
    """
    return _read_csv("wreath.csv", {"x1": "x1", "x2": "x2"})


def load_trees() -> pd.DataFrame:
    """Black cherry trees (R's ``datasets::trees``).

    Diameter, height and volume of timber of 31 felled black cherry trees.

    Returns
    -------
    pandas.DataFrame
        31 rows, 3 ``float64`` columns: ``girth`` (tree diameter in inches, measured
        4 ft 6 in above the ground, despite the name), ``height`` (ft) and ``volume``
        (cubic ft of timber).

    Notes
    -----
    Source: Rdatasets @ 1dcc2bf5 ``csv/datasets/trees.csv`` (column names
    lower-cased); column means 13.248 / 76.000 / 30.171 as printed in mclust TR 597.

    References
    ----------
    .. [1] T. A. Ryan, B. L. Joiner and B. F. Ryan (1976). *The Minitab Student
       Handbook*. Duxbury Press.
    .. [2] A. C. Atkinson (1985). *Plots, Transformations and Regression*. Oxford
       University Press.

    Examples
    --------
    >>> from bayesgmm.datasets import load_trees
    >>> df = load_trees()
    >>> df.shape
    (31, 3)
    >>> df.mean().round(3).tolist()
    [13.248, 76.0, 30.171]
    """
    return _read_csv("trees.csv", {"Girth": "girth", "Height": "height", "Volume": "volume"})


def load_precip() -> pd.DataFrame:
    """Average annual precipitation in 70 US cities (R's ``datasets::precip``).

    Average amount of precipitation (rainfall, inches per year) for 70 United States
    (and Puerto Rico) cities.

    Returns
    -------
    pandas.DataFrame
        70 rows, one ``float64`` column: ``precip`` (inches). The city names of the R
        object are not included.

    Notes
    -----
    Source: Rdatasets @ 1dcc2bf5 ``csv/datasets/precip.csv``. Contains tied values.

    References
    ----------
    .. [1] *Statistical Abstracts of the United States* (1975).
    .. [2] D. R. McNeil (1977). *Interactive Data Analysis*. Wiley.

    Examples
    --------
    >>> from bayesgmm.datasets import load_precip
    >>> load_precip().shape
    (70, 1)
    """
    return _read_csv("precip.csv", {"precip": "precip"})


_PENGUIN_MEASUREMENTS = (
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "delta_15n",
    "delta_13c",
)


def load_penguins() -> pd.DataFrame:
    r"""Palmer penguins: size and blood isotopes of 344 penguins, with missing values.

    Measurements of adult Adélie, Chinstrap and Gentoo penguins nesting on three
    islands of the Palmer Archipelago, Antarctica, 2007-2009 (Gorman, Williams and
    Fraser, 2014; the Palmer Station LTER "raw" penguin data). Unlike the other
    bundled data sets it has **missing values**: two birds have no measurement at all,
    and the blood isotope ratios are missing for 14 and 13 birds (the field notes say,
    for example, "Not enough blood for isotopes"); the sex of 11 birds is unknown.

    Returns
    -------
    pandas.DataFrame
        344 rows: categorical label columns ``species`` (``Adelie`` 152,
        ``Chinstrap`` 68, ``Gentoo`` 124), ``island`` (``Biscoe``, ``Dream``,
        ``Torgersen``) and ``sex`` (``female``, ``male``; missing for 11 birds), then
        six ``float64`` columns with NaN where a value is missing:

        - ``bill_length_mm``, ``bill_depth_mm``: culmen (upper bill ridge) length and
          depth (mm);
        - ``flipper_length_mm``: flipper length (mm);
        - ``body_mass_g``: body mass (g);
        - ``delta_15n``, ``delta_13c``: the stable isotope ratios
          :math:`\delta^{15}N` and :math:`\delta^{13}C` of the blood (parts per
          thousand), markers of the diet.

        As for the other loaders, the labels are columns of the same frame: take the
        measurements with ``df.select_dtypes("number")`` (a frame with NaN, which
        :class:`~bayesgmm.GaussianMixture` accepts) and the labels with
        ``df["species"]``.

    Notes
    -----
    Source: ``palmerpenguins/data/penguins-raw.csv`` of the PyPI package
    ``palmerpenguins`` 0.1.6 (MIT licence; the data themselves are CC0, Palmer
    Station LTER data policy). Columns kept: species (shortened to its common name),
    island, sex (lower-cased) and the six numeric measurements, values copied
    verbatim, ``NA`` where missing; the culmen columns are renamed ``bill_*`` as in the
    package's tidy ``penguins.csv``, which agrees with this file on every shared
    column. See ``data/SOURCES.md``.

    References
    ----------
    .. [1] K. B. Gorman, T. D. Williams and W. R. Fraser (2014). Ecological sexual
       dimorphism and environmental variability within a community of Antarctic
       penguins (genus *Pygoscelis*). *PLoS ONE* 9(3), e90081.
    .. [2] A. M. Horst, A. P. Hill and K. B. Gorman (2020). palmerpenguins: Palmer
       Archipelago (Antarctica) penguin data. R package version 0.1.0.

    Examples
    --------
    >>> from bayesgmm.datasets import load_penguins
    >>> df = load_penguins()
    >>> df.shape
    (344, 9)
    >>> X = df.select_dtypes("number")
    >>> X.isna().sum().tolist()
    [2, 2, 2, 2, 14, 13]
    >>> df["species"].value_counts().sort_index().tolist()
    [152, 68, 124]
    """
    return _read_csv(
        "penguins.csv",
        {name: name for name in _PENGUIN_MEASUREMENTS},
        {
            "species": ("species", ("Adelie", "Chinstrap", "Gentoo")),
            "island": ("island", ("Biscoe", "Dream", "Torgersen")),
            "sex": ("sex", ("female", "male")),
        },
        allow_missing={"sex", *_PENGUIN_MEASUREMENTS},
    )
