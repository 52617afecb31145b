"""Measurement code shared by several monitors: block statistics at the three scales, sigma clipping,
order statistics and clipped statistics of unions of sorted rows (``grouped``), star detection and
matching, power spectra, the sky background and its sources, DQ flags.

Pure numpy (and astropy, scipy, photutils where needed) over arrays: no monitor, no configuration
file, no store, no figure. The monitors (:mod:`rdmt_core.monitors`) import from here, never the reverse.
"""
