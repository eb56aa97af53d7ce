"""Scoring detectors on a manifest under a degradation grid: one interface (``Scorer``), two strategies
(``ReferenceScorer``, ``FastScorer``), chosen by ``make_scorer(impl, device, ...)``."""

from mirage_bench.scoring.fast import FastScorer
from mirage_bench.scoring.impl import IMPLEMENTATIONS, Impl, make_scorer, resolve_impl
from mirage_bench.scoring.reference import ReferenceScorer
from mirage_bench.scoring.scorer import Scorer
from mirage_bench.scoring.scores import Scores

__all__ = ["IMPLEMENTATIONS", "FastScorer", "Impl", "ReferenceScorer", "Scorer", "Scores", "make_scorer", "resolve_impl"]
