"""The equations of *Backprop in Tensor Form*, in small readable numpy.

Modules, in the order of the book:

- :mod:`backprop.layers` — ``linear``/``linear_vjp`` and the element-wise
  activations;
- :mod:`backprop.jacobians` — explicit Jacobians (``vec``, Kronecker forms)
  for checking;
- :mod:`backprop.gradcheck` — central differences, relative error, the
  adjoint test, and ``error_table``/``report``/``pass_mark``, which print
  errors as the chapters do;
- :mod:`backprop.mistakes` — ``diagnose`` and ``check_vjp``, which name
  the mistake in a wrong gradient (a transpose, a factor of B, f′ at the
  wrong array) instead of printing a relative error;
- :mod:`backprop.symbolic` — sympy helpers for the component view;
- :mod:`backprop.plotting` — heatmaps of Jacobians, training curves,
  decision boundaries;
- :mod:`backprop.broadcasting` — adjoint pairs: broadcast/sum, fan-out/add,
  transpose, reshape;
- :mod:`backprop.losses` — MSE, sigmoid + binary cross-entropy, softmax,
  softmax + cross-entropy;
- :mod:`backprop.datasets` — small deterministic synthetic data sets;
- :mod:`backprop.mlp` — a multilayer perceptron built from the ops above;
- :mod:`backprop.autodiff` — a reverse-mode engine whose rule table calls
  the VJPs above;
- :mod:`backprop.autodiff_rules` — the engine's rule tables: forward, VJPs
  and JVPs;
- :mod:`backprop.autodiff_tensor_rules` — the VJPs in Tensor operations,
  so that the engine differentiates twice;
- :mod:`backprop.timing` — ``median_time``, for the chapters that measure
  costs;
- :mod:`backprop.residual` — residual blocks and gradient norms through
  deep stacks;
- :mod:`backprop.norm` — layer norm and batch norm (training mode);
- :mod:`backprop.conv` — 2-D convolution (NCHW), im2col, the transposed
  convolution;
- :mod:`backprop.recurrent` — a tanh RNN, the LSTM and the GRU, and
  backpropagation through time;
- :mod:`backprop.attention` — scaled dot-product attention, with a causal
  mask;
- :mod:`backprop.pooling` — max and average pooling (NCHW) and their VJPs;
- :mod:`backprop.transformer` — a pre-LN transformer block, its backward
  pass written out by hand, and a tiny causal language model.
- :mod:`backprop.second_order` — helpers for the Hessian-vector products
  ``MLP.hvp`` and ``MLP.gnvp``: the structure check, power iteration, the
  explicit Hessian for checking;
- :mod:`backprop.implicit` — a linear solve, a fixed point and the optimum
  of ridge regression, differentiated through the equation that defines
  them (the implicit function theorem).

``embedding``/``embedding_vjp`` and ``dropout``/``dropout_vjp`` live in
:mod:`backprop.layers`. The attention
op is used as ``backprop.attention.attention``: exporting the function at the
top level would hide the module of the same name.
"""

from backprop.conv import conv2d, conv2d_transpose, conv2d_vjp
from backprop.datasets import blobs, spirals
from backprop.gradcheck import (
    adjoint_test,
    directional_derivative,
    error_table,
    numerical_gradient,
    order_of_magnitude,
    pass_mark,
    relative_error,
    report,
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
    dropout,
    dropout_mask,
    dropout_vjp,
    embedding,
    embedding_vjp,
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
from backprop.mistakes import Diagnosis, check_vjp, diagnose
from backprop.mlp import MLP
from backprop.norm import (
    batch_norm,
    batch_norm_vjp,
    layer_norm,
    layer_norm_vjp,
)
from backprop.pooling import (
    avg_pool2d,
    avg_pool2d_vjp,
    max_pool2d,
    max_pool2d_vjp,
)
from backprop.recurrent import gru, gru_vjp, lstm, lstm_vjp, rnn, rnn_vjp

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "Diagnosis",
    "check_vjp",
    "diagnose",
    "batch_norm",
    "batch_norm_vjp",
    "conv2d",
    "conv2d_transpose",
    "conv2d_vjp",
    "embedding",
    "embedding_vjp",
    "layer_norm",
    "layer_norm_vjp",
    "rnn",
    "rnn_vjp",
    "max_pool2d",
    "max_pool2d_vjp",
    "avg_pool2d",
    "avg_pool2d_vjp",
    "dropout",
    "dropout_mask",
    "dropout_vjp",
    "lstm",
    "lstm_vjp",
    "gru",
    "gru_vjp",
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
    "pass_mark",
    "order_of_magnitude",
    "error_table",
    "report",
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
