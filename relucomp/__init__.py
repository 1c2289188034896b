"""relucomp: deep ReLU networks that use their depth.

Trainable triangle peaks map, by pure functions, to the weights of a plain
4-wide ReLU MLP with exactly ``2^d`` linear pieces.
"""

from relucomp._mlp import count_params, mlp_apply
from relucomp._network import NEURONS, compositional_mlp
from relucomp._series import compositional, enforced_scales
from relucomp._training import FitResult, fit, load, save
from relucomp._triangle import triangle, triangle_waves
from relucomp._validation import checkified

__version__ = "0.1.0"

__all__ = [
    "FitResult",
    "NEURONS",
    "checkified",
    "compositional",
    "compositional_mlp",
    "count_params",
    "enforced_scales",
    "fit",
    "load",
    "mlp_apply",
    "save",
    "triangle",
    "triangle_waves",
]
