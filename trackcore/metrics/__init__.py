"""Reconstruction metrics: TrackML hit weights and score, tracking efficiency / fake / duplicate rates."""
from .rates import TrackingRates, tracking_rates
from .score import score_event, trackml_score
from .weights import order_weight, order_weight_matrix, pt_weight, trackml_weights

__all__ = [
    "TrackingRates",
    "order_weight",
    "order_weight_matrix",
    "pt_weight",
    "score_event",
    "tracking_rates",
    "trackml_score",
    "trackml_weights",
]
