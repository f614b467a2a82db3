"""Collection: the Dask module's doctests need the optional ``dask`` extra."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("dask") else ["bayesgmm/_dask.py"]
