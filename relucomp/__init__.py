"""relucomp: deep ReLU networks that use their depth.

Trainable triangle peaks map, by pure functions, to the weights of a plain
4-wide ReLU MLP with exactly ``2^d`` linear pieces.
"""

from relucomp._layer import STAGES, CompositionalDense, difference_mlp, layer_to_mlp
from relucomp._mlp import count_params, mlp_apply
from relucomp._network import NEURONS, compositional_mlp
from relucomp._series import compositional, enforced_scales
from relucomp._triangle import triangle, triangle_waves
from relucomp._validation import checkified

__version__ = "0.1.0"

__all__ = [
    "NEURONS",
    "STAGES",
    "CompositionalDense",
    "checkified",
    "compositional",
    "compositional_mlp",
    "count_params",
    "difference_mlp",
    "enforced_scales",
    "layer_to_mlp",
    "mlp_apply",
    "triangle",
    "triangle_waves",
]
