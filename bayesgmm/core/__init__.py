"""Pure NumPy/SciPy math of Gaussian mixtures: no estimator state, no PyMC, no plotting."""
