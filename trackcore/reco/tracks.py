"""Tracks: hit lists (CSR) with fitted perigee parameters and covariance."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..backends.arrays import namespace_of, repeat_index, to_host
from ..event import Table

PERIGEE_NAMES = ("d0", "z0", "phi", "theta", "qop")
PERIGEE_UNITS = ("mm", "mm", "rad", "rad", "e/GeV")


@dataclass
class Tracks:
    """Reconstructed tracks of one event.

    ``hits[offsets[i]:offsets[i+1]]`` are the rows of ``event.hits`` on track ``i`` (each hit on at
    most one track). ``perigee`` (N, 5) is (d0, z0, phi, theta, q/p) at the point of closest approach
    to the z axis with ``covariance`` (N, 5, 5); ``fitted`` is False where the fit failed.
    """

    offsets: np.ndarray
    hits: np.ndarray
    perigee: np.ndarray
    covariance: np.ndarray
    chi2: np.ndarray
    ndf: np.ndarray
    seed: np.ndarray
    fitted: np.ndarray

    @classmethod
    def empty(cls, xp=np) -> "Tracks":
        """No tracks, as arrays of ``xp`` (numpy, or the device namespace of a device chain)."""
        return cls(xp.zeros(1, xp.int64), xp.zeros(0, xp.int64), xp.zeros((0, 5)), xp.zeros((0, 5, 5)),
                   xp.zeros(0), xp.zeros(0, xp.int64), xp.zeros(0, xp.int64), xp.zeros(0, bool))

    @classmethod
    def from_kernel(cls, d: dict) -> "Tracks":
        """From a ``ckf`` / ``fit_tracks`` kernel's dict (its arrays stay where they are: host or device)."""
        xp = namespace_of(d["offsets"])
        return cls(*(xp.asarray(d[k]) for k in ("offsets", "hits", "perigee", "covariance", "chi2", "ndf", "seed",
                                                 "fitted")))

    def to_host(self) -> "Tracks":
        """The same tracks as host numpy arrays (the end of a device chain)."""
        return Tracks(*(to_host(getattr(self, f.name)) for f in dataclasses.fields(self)))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, index) -> "Tracks":
        """The tracks selected by an index array or a boolean mask, in that order."""
        xp = namespace_of(self.offsets)
        index = xp.asarray(index)
        index = xp.flatnonzero(index) if index.dtype == bool else index.astype(xp.int64)
        counts = self.n_hits[index]
        offsets = xp.concatenate([xp.zeros(1, xp.int64), xp.cumsum(counts)]).astype(xp.int64)
        # Each output hit: its track's first hit in self plus its position within the track.
        track = repeat_index(counts, xp)
        hits = self.hits[(self.offsets[index] - offsets[:-1])[track] + xp.arange(len(track))]
        return Tracks(offsets, hits.astype(xp.int64), self.perigee[index], self.covariance[index], self.chi2[index],
                      self.ndf[index], self.seed[index], self.fitted[index])

    def remap_hits(self, rows) -> "Tracks":
        """The same tracks with hit indices mapped through ``rows`` (from a subset back to the event)."""
        return dataclasses.replace(self, hits=namespace_of(self.hits).asarray(rows)[self.hits])

    def concat(self, other: "Tracks") -> "Tracks":
        """These tracks followed by ``other``'s."""
        xp = namespace_of(self.offsets)
        return Tracks(xp.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]]),
                      xp.concatenate([self.hits, other.hits]), xp.concatenate([self.perigee, other.perigee]),
                      xp.concatenate([self.covariance, other.covariance]), xp.concatenate([self.chi2, other.chi2]),
                      xp.concatenate([self.ndf, other.ndf]), xp.concatenate([self.seed, other.seed]),
                      xp.concatenate([self.fitted, other.fitted]))

    @property
    def n_hits(self) -> np.ndarray:
        return namespace_of(self.offsets).diff(self.offsets)

    def track_hits(self, i: int) -> np.ndarray:
        return self.hits[self.offsets[i]:self.offsets[i + 1]]

    def track_of_hit(self, n_hits: int) -> np.ndarray:
        """Track index of every hit row, -1 for unassigned hits."""
        xp = namespace_of(self.offsets)
        out = xp.full(n_hits, -1, xp.int64)
        out[self.hits] = repeat_index(self.n_hits, xp)
        return out

    @property
    def pt(self) -> np.ndarray:
        return np.sin(self.perigee[:, 3]) / np.maximum(np.abs(self.perigee[:, 4]), 1e-12)

    @property
    def eta(self) -> np.ndarray:
        return -np.log(np.tan(np.clip(self.perigee[:, 3], 1e-9, np.pi - 1e-9) / 2))

    def to_table(self) -> Table:
        """One row per track: parameters, their errors, pT, eta, chi2, ndf and hit count."""
        cols = {"track_id": np.arange(len(self), dtype=np.int64)}
        for i, name in enumerate(PERIGEE_NAMES):
            cols[name] = self.perigee[:, i]
        for i, name in enumerate(PERIGEE_NAMES):
            cols[f"sigma_{name}"] = np.sqrt(np.maximum(self.covariance[:, i, i], 0))
        cols.update(pt=self.pt, eta=self.eta, charge=np.sign(self.perigee[:, 4]).astype(np.int32), chi2=self.chi2,
                    ndf=self.ndf, nhits=self.n_hits, fitted=self.fitted.astype(np.int8))
        return Table(cols, name="tracks")
