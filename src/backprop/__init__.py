"""backprop: the equations of *Backprop in Tensor Form*, in small readable numpy.

Modules, in the order of the book:

- :mod:`backprop.layers`     — ``linear``/``linear_vjp`` and the element-wise activations;
- :mod:`backprop.jacobians`  — explicit Jacobians (``vec``, Kronecker forms) for checking;
- :mod:`backprop.gradcheck`  — central differences, relative error, the adjoint test;
- :mod:`backprop.symbolic`   — sympy helpers for the component view;
- :mod:`backprop.plotting`   — heatmaps of Jacobians, training curves, decision boundaries;
- :mod:`backprop.broadcasting` — adjoint pairs: broadcast/sum, fan-out/add, transpose, reshape;
- :mod:`backprop.losses`     — MSE, sigmoid + binary cross-entropy, softmax, softmax + cross-entropy;
- :mod:`backprop.datasets`   — small deterministic synthetic data sets;
- :mod:`backprop.mlp`        — a multilayer perceptron built from the ops above.
"""

from backprop.datasets import blobs, spirals
from backprop.gradcheck import (
    adjoint_test,
    directional_derivative,
    numerical_gradient,
    relative_error,
)
from backprop.jacobians import (
    commutation_matrix,
    elementwise_jacobian,
    linear_jacobians,
    numerical_jacobian,
    unvec,
    vec,
    vjp_from_jacobian,
)
from backprop.layers import (
    ACTIVATIONS,
    linear,
    linear_vjp,
    relu,
    relu_vjp,
    sigmoid,
    sigmoid_vjp,
    tanh,
    tanh_vjp,
)
from backprop.losses import (
    logsumexp,
    mse,
    mse_vjp,
    sigmoid_binary_cross_entropy,
    sigmoid_binary_cross_entropy_vjp,
    softmax,
    softmax_cross_entropy,
    softmax_vjp,
)
from backprop.mlp import MLP

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "blobs",
    "logsumexp",
    "mse",
    "mse_vjp",
    "sigmoid_binary_cross_entropy",
    "sigmoid_binary_cross_entropy_vjp",
    "softmax",
    "softmax_cross_entropy",
    "softmax_vjp",
    "spirals",
    "adjoint_test",
    "commutation_matrix",
    "directional_derivative",
    "elementwise_jacobian",
    "linear",
    "linear_jacobians",
    "linear_vjp",
    "numerical_gradient",
    "numerical_jacobian",
    "relative_error",
    "relu",
    "relu_vjp",
    "sigmoid",
    "sigmoid_vjp",
    "tanh",
    "tanh_vjp",
    "unvec",
    "vec",
    "vjp_from_jacobian",
]
