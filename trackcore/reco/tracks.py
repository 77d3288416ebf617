"""Tracks: hit lists (CSR) with fitted perigee parameters and covariance."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

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
    def empty(cls) -> "Tracks":
        return cls(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros((0, 5)), np.zeros((0, 5, 5)),
                   np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool))

    @classmethod
    def from_kernel(cls, d: dict) -> "Tracks":
        return cls(*(np.asarray(d[k]) for k in ("offsets", "hits", "perigee", "covariance", "chi2", "ndf", "seed",
                                                 "fitted")))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, index) -> "Tracks":
        """The tracks selected by an index array or a boolean mask, in that order."""
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, np.int64)
        counts = self.n_hits[index]
        hits = (np.concatenate([self.track_hits(i) for i in index]) if len(index) else np.zeros(0, np.int64))
        return Tracks(np.r_[0, np.cumsum(counts)].astype(np.int64), hits.astype(np.int64), self.perigee[index],
                      self.covariance[index], self.chi2[index], self.ndf[index], self.seed[index], self.fitted[index])

    def remap_hits(self, rows: np.ndarray) -> "Tracks":
        """The same tracks with hit indices mapped through ``rows`` (from a subset back to the event)."""
        return dataclasses.replace(self, hits=np.asarray(rows)[self.hits])

    def concat(self, other: "Tracks") -> "Tracks":
        """These tracks followed by ``other``'s."""
        return Tracks(np.r_[self.offsets, other.offsets[1:] + self.offsets[-1]], np.r_[self.hits, other.hits],
                      np.concatenate([self.perigee, other.perigee]),
                      np.concatenate([self.covariance, other.covariance]), np.r_[self.chi2, other.chi2],
                      np.r_[self.ndf, other.ndf], np.r_[self.seed, other.seed], np.r_[self.fitted, other.fitted])

    @property
    def n_hits(self) -> np.ndarray:
        return np.diff(self.offsets)

    def track_hits(self, i: int) -> np.ndarray:
        return self.hits[self.offsets[i]:self.offsets[i + 1]]

    def track_of_hit(self, n_hits: int) -> np.ndarray:
        """Track index of every hit row, -1 for unassigned hits."""
        out = np.full(n_hits, -1, np.int64)
        out[self.hits] = np.repeat(np.arange(len(self)), self.n_hits)
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
