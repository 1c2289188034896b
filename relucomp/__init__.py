"""relucomp: deep ReLU networks that use their depth.

Trainable triangle peaks map, by pure functions, to the weights of a plain
4-wide ReLU MLP with exactly ``2^d`` linear pieces.
"""

from relucomp._affine import (Atoms, activation_pattern, affine_map, atoms, lipschitz_bound,
                              local_lipschitz, region_polytope)
from relucomp._batch import fit_batch
from relucomp._block_gauss_newton import (BlockGaussNewtonState, block_gauss_newton,
                                          parameter_blocks)
from relucomp._complexity import local_complexity
from relucomp._flax import from_flax
from relucomp._constraint import norm_constraint
from relucomp._layer import STAGES, CompositionalDense, difference_mlp, layer_to_mlp
from relucomp._levenberg import LevenbergMarquardtState, levenberg_marquardt
from relucomp._mlp import balance_neurons, count_params, mlp_apply
from relucomp._network import NEURONS, compositional_mlp
from relucomp._plane import plane_regions, segment_pieces
from relucomp._plotting import plot_neurons_1d, plot_partition
from relucomp._regions import LinearPieces, Regions2D, linear_pieces_1d, regions_2d
from relucomp._series import compositional, enforced_scales
from relucomp._tracking import PiecesHistory, pieces_history
from relucomp._io import load, save
from relucomp._result import FitResult
from relucomp._fit import fit
from relucomp._triangle import triangle, triangle_waves
from relucomp._validation import checkified

__version__ = "0.1.0"

__all__ = [
    "Atoms",
    "BlockGaussNewtonState",
    "FitResult",
    "LevenbergMarquardtState",
    "LinearPieces",
    "NEURONS",
    "PiecesHistory",
    "Regions2D",
    "STAGES",
    "CompositionalDense",
    "activation_pattern",
    "affine_map",
    "atoms",
    "balance_neurons",
    "block_gauss_newton",
    "checkified",
    "compositional",
    "compositional_mlp",
    "count_params",
    "difference_mlp",
    "enforced_scales",
    "fit",
    "fit_batch",
    "from_flax",
    "layer_to_mlp",
    "linear_pieces_1d",
    "levenberg_marquardt",
    "lipschitz_bound",
    "load",
    "local_complexity",
    "local_lipschitz",
    "mlp_apply",
    "parameter_blocks",
    "norm_constraint",
    "pieces_history",
    "plane_regions",
    "plot_neurons_1d",
    "plot_partition",
    "region_polytope",
    "regions_2d",
    "save",
    "segment_pieces",
    "triangle",
    "triangle_waves",
]
