"""Figures of events and of reconstruction performance (matplotlib; PNG or PDF by file suffix).

- :func:`event_display`: x-y and r-z views of hits coloured by track, truth overlaid,
- :func:`efficiency`: efficiency and fake rate vs pT and eta,
- :func:`residuals`, :func:`pulls`: perigee parameters of the fit against truth,
- :func:`seeds`: seeding summary; :func:`timing`: per-stage and per-event wall time.

Inputs come from :mod:`trackcore.plotting.data` (an :class:`EventReco` per event). The command
``trackcore plot KIND ...`` draws each of them; ``gallery/`` holds one example of each.
"""
from .data import EventReco, fit_residuals, from_reconstruction, load_event_recos, reconstruct_for_plots
from .figures import efficiency, efficiency_vs_pt, event_display
from .performance import pulls, residuals, seeds, timing

__all__ = ["EventReco", "event_display", "efficiency", "efficiency_vs_pt", "residuals", "pulls", "seeds", "timing",
           "fit_residuals", "from_reconstruction", "load_event_recos", "reconstruct_for_plots", "KINDS"]

#: Plot kinds of ``trackcore plot``.
KINDS = ("display", "efficiency", "residuals", "pulls", "seeds", "timing")
