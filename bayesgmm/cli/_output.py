"""Writing output folders atomically, saving plots and models."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path


def _save_plot(path: Path, function: str, *args) -> None:
    """Draw ``bayesgmm.plotting.<function>(*args, ax=...)`` on a new figure and save it.

    Uses :class:`matplotlib.figure.Figure` directly (rendered by Agg when saved), so no
    pyplot state, GUI backend or display is involved.
    """
    from matplotlib.figure import Figure

    from bayesgmm import plotting

    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    getattr(plotting, function)(*args, ax=fig.add_subplot())
    fig.savefig(path, dpi=150)


def _write_atomically(
    out: Path, writers: dict[str, Callable[[Path], object]], stale: Sequence[str] = ()
) -> None:
    """Write every file into a fresh staging folder, then move the results into ``out``.

    A new ``out`` is the staging folder renamed (``os.replace``), so it appears complete
    or not at all. An existing ``out`` gets each file replaced (``os.replace`` from a
    staging folder inside it), and the files named in ``stale`` that were not written
    this time (left by an earlier run with other options) are removed; other files in
    it are left alone. On failure the staging folder is removed and ``out`` is as it was.
    """
    existed = out.is_dir()
    parent = out if existed else out.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{out.name or 'out'}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()  # honours the umask, unlike tempfile.mkdtemp
    try:
        for name, write in writers.items():
            write(staging / name)
        if existed:
            for name in writers:
                os.replace(staging / name, out / name)
            staging.rmdir()
            for name in stale:
                if name not in writers and (out / name).is_file():
                    (out / name).unlink()
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _dump_models(models: dict, path: Path) -> bool:
    """``joblib.dump`` the models; False if the posterior had to go without its draws.

    If the posterior's DataTree does not pickle, the posterior is stored without
    ``idata_`` (its draws are in posterior.nc).
    """
    import copy
    import pickle

    import joblib

    try:
        joblib.dump(models, path)
        return True
    except (pickle.PicklingError, TypeError, AttributeError):
        posterior = models.get("posterior")
        if posterior is None:
            raise
        slim = copy.copy(posterior)
        del slim.idata_
        joblib.dump({**models, "posterior": slim}, path)
        return False
