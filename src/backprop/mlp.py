"""A multilayer perceptron written with the book's ops, and nothing else.

Layers are numbered as in the notation chapter: ``A⁽⁰⁾ = X`` and, for
``k = 1 … L`` (row-batch form)::

    Z⁽ᵏ⁾ = A⁽ᵏ⁻¹⁾ W⁽ᵏ⁾ᵀ + 𝟏 b⁽ᵏ⁾ᵀ,     A⁽ᵏ⁾ = f(Z⁽ᵏ⁾)

with no activation after layer ``L``: ``Z⁽ᴸ⁾`` is the logits, and the loss is
softmax cross-entropy against integer labels. ``params[k - 1]`` holds
``(W⁽ᵏ⁾, b⁽ᵏ⁾)``. Backward, from ``dZ⁽ᴸ⁾`` down
(eq. ``backprop-recursion``)::

    dA⁽ᵏ⁻¹⁾, dW⁽ᵏ⁾, db⁽ᵏ⁾ = linear_vjp(dZ⁽ᵏ⁾, A⁽ᵏ⁻¹⁾, W⁽ᵏ⁾)
    dZ⁽ᵏ⁻¹⁾ = f_vjp(dA⁽ᵏ⁻¹⁾, Z⁽ᵏ⁻¹⁾)

so the forward pass caches, for every layer, its input ``A⁽ᵏ⁻¹⁾`` and its
pre-activation ``Z⁽ᵏ⁾``. For ReLU ``loss_and_grads`` keeps the inputs alone:
``relu_vjp`` reads ``1[Z⁽ᵏ⁾ > 0]`` from the output ``A⁽ᵏ⁾``, which is the
next layer's input and is kept anyway.
"""

from __future__ import annotations

import numpy as np

from backprop._checks import as_real_array, check_batch, positive_int
from backprop.layers import ACTIVATIONS, linear, linear_vjp
from backprop.losses import check_labels, softmax, softmax_cross_entropy
from backprop.second_order import activation_curvature, check_like

__all__ = ["MLP"]


class MLP:
    """A fully connected network trained with softmax cross-entropy.

    layer_sizes: ``[n_in, n_hidden…, n_classes]``, at least two positive
    integers. activation: ``"tanh"``, ``"sigmoid"`` or ``"relu"``, applied
    after every layer but the last. seed: the initial weights are drawn from
    ``np.random.default_rng(seed)``: ``W ~ N(0, gain²/n_in)`` with gain √2
    for relu and 1 otherwise; biases start at zero. dtype: ``np.float64``
    (the default, for checking against finite differences) or ``np.float32``.
    The parameters, the inputs (converted on the way in), every activation
    and every gradient are of this dtype, end to end.

    ``params`` is a list of ``(W, b)`` pairs, ``W`` of shape
    ``(n_out, n_in)``.
    """

    def __init__(
        self,
        layer_sizes,
        activation: str = "tanh",
        seed: int = 0,
        dtype=np.float64,
    ):
        sizes = list(layer_sizes)
        if len(sizes) < 2:
            raise ValueError(
                f"layer_sizes needs at least [n_in, n_out]; got {sizes}"
            )
        for size in sizes:
            if (
                isinstance(size, bool)
                or not isinstance(size, int | np.integer)
                or size < 1
            ):
                raise ValueError(
                    f"layer sizes must be positive integers; got {sizes}"
                )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}; got "
                f"{activation!r}"
            )
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(
                f"dtype must be np.float32 or np.float64; got {dtype!r}"
            ) from None
        if dtype not in (np.float32, np.float64):
            raise ValueError(
                f"dtype must be np.float32 or np.float64; got {dtype}"
            )
        self.dtype = dtype
        self.layer_sizes = [int(s) for s in sizes]
        self.activation = activation
        self._f, self._f_vjp = ACTIVATIONS[activation]
        rng = np.random.default_rng(seed)
        gain = np.sqrt(2.0) if activation == "relu" else 1.0
        # Drawn in float64, then rounded: both dtypes start from one network.
        self.params = [
            (
                rng.normal(
                    scale=gain / np.sqrt(n_in), size=(n_out, n_in)
                ).astype(dtype),
                np.zeros(n_out, dtype=dtype),
            )
            for n_in, n_out in zip(
                self.layer_sizes[:-1], self.layer_sizes[1:]
            )
        ]

    # --
    # checks ----------------------------------------------------------------

    def _check_inputs(self, X) -> np.ndarray:
        X = check_batch("X", X)
        if X.shape[1] != self.layer_sizes[0]:
            raise ValueError(
                f"X has {X.shape[1]} features but the first layer expects "
                f"{self.layer_sizes[0]} (X shape {X.shape})"
            )
        if not np.all(np.isfinite(X)):
            raise ValueError(
                "X must be finite; got "
                f"{int(X.size - np.count_nonzero(np.isfinite(X)))} NaN or "
                "inf entries"
            )
        return X.astype(self.dtype, copy=False)

    # -- forward and
    # backward -----------------------------------------------------

    def _forward(
        self, X: np.ndarray, keep_Z: bool = True
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray | None]]]:
        """Logits, and each layer's input ``A`` and pre-activation ``Z``.

        With ``keep_Z=False`` the cache holds ``(A, None)``: each ``Z`` but
        the logits is freed as soon as ``f(Z)`` is formed.
        """
        A = X
        cache = []
        last = len(self.params) - 1
        for k, (W, b) in enumerate(self.params):
            Z = linear(A, W, b)
            cache.append((A, Z if keep_Z else None))
            A = Z if k == last else self._f(Z)
        return A, cache

    def forward_with_cache(
        self, X
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """Logits and ``[(A⁽ᵏ⁻¹⁾, Z⁽ᵏ⁾) for k = 1 … L]``, for backward."""
        return self._forward(self._check_inputs(X))

    def forward(self, X) -> np.ndarray:
        """Logits ``(B, n_classes)`` for inputs ``X`` ``(B, n_in)``."""
        return self._forward(self._check_inputs(X))[0]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, the row-wise softmax of the logits."""
        return softmax(self.forward(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, ``(B,)`` integers."""
        return np.argmax(self.forward(X), axis=1)

    def accuracy(self, X, y) -> float:
        """Fraction of rows whose predicted class equals the label."""
        X = self._check_inputs(X)
        y = check_labels(y, X.shape[0], self.layer_sizes[-1])
        return float(np.mean(self.predict(X) == y))

    def loss_and_grads(
        self, X, y
    ) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        """Mean softmax cross-entropy and its gradient for every parameter.

        X: (B, n_in) finite inputs.  y: (B,) integer labels in
        ``0 … n_classes − 1``. Returns ``(loss, grads)``; ``grads`` has the
        structure of ``params``: a list of ``(dW, db)`` with the shapes of
        ``(W, b)``.
        """
        X = self._check_inputs(X)
        y = check_labels(y, X.shape[0], self.layer_sizes[-1])
        # ReLU's derivative 1[Z > 0] is 1[A > 0] for its output A = relu(Z),
        # and A is the next layer's input, kept for dW anyway: the cache is
        # one array per layer instead of two.
        from_output = self.activation == "relu"
        logits, cache = self._forward(X, keep_Z=not from_output)
        if not np.all(np.isfinite(logits)):
            raise FloatingPointError(
                "the logits are not finite: the parameters have diverged"
            )
        loss, dZ = softmax_cross_entropy(logits, y)
        grads: list[tuple[np.ndarray, np.ndarray]]
        grads = [None] * len(self.params)  # type: ignore[list-item]
        for k in range(len(self.params) - 1, 0, -1):
            A, _ = cache[k]
            dA, dW, db = linear_vjp(dZ, A, self.params[k][0])
            grads[k] = (dW, db)
            dZ = self._f_vjp(dA, A if from_output else cache[k - 1][1])
        # The first layer's input is the data, which needs no gradient: of
        # linear_vjp's three results only dW = dZᵀ A and db = dZᵀ 1 are
        # formed here, which saves the GEMM dA = dZ W, as every framework
        # does.
        A = cache[0][0]
        grads[0] = (dZ.T @ A, dZ.sum(axis=0))
        return loss, grads

    # -- second order: products with the Hessian
    # ----------------------------------

    def _tangents(self, X, V):
        """The forward pass and its tangents in direction ``V``.

        Returns the logits, the cache of ``_forward``, and for each layer
        ``Ż⁽ᵏ⁾`` and ``Ȧ⁽ᵏ⁻¹⁾`` (``None`` for the data, which do not
        move)::

            Ż⁽ᵏ⁾ = Ȧ⁽ᵏ⁻¹⁾ W⁽ᵏ⁾ᵀ + A⁽ᵏ⁻¹⁾ Ẇ⁽ᵏ⁾ᵀ + 𝟏 ḃ⁽ᵏ⁾ᵀ
            Ȧ⁽ᵏ⁾ = f'(Z⁽ᵏ⁾) ⊙ Ż⁽ᵏ⁾
        """
        logits, cache = self._forward(X)
        Zdots, Adots = [], []
        Adot = None
        last = len(self.params) - 1
        for k, ((W, _), (Wdot, bdot)) in enumerate(zip(self.params, V)):
            A, Z = cache[k]
            Zdot = linear(A, Wdot, bdot)
            if Adot is not None:
                Zdot = Zdot + Adot @ W.T
            Adots.append(Adot)
            Zdots.append(Zdot)
            if k < last:
                Adot = self._f_vjp(Zdot, Z)
        return logits, cache, Zdots, Adots

    def _prepare(self, X, y, V):
        X = self._check_inputs(X)
        y = check_labels(y, X.shape[0], self.layer_sizes[-1])
        V = check_like("V", V, self.params)
        return X, y, V

    @staticmethod
    def _logit_curvature(P: np.ndarray, Zdot: np.ndarray) -> np.ndarray:
        """``∇²_Z E`` applied to ``Ż⁽ᴸ⁾``: row r is ``(diag p − ppᵀ) ż / B``.

        The tangent of ``∇_Z E = (P − Y) / B``: only ``P`` moves.
        """
        PZ = P * Zdot
        return (PZ - P * PZ.sum(axis=1, keepdims=True)) / P.shape[0]

    def hvp(self, X, y, V) -> list[tuple[np.ndarray, np.ndarray]]:
        """Hessian-vector product ``∇²E θ̇`` of the mean cross-entropy.

        Implements eqs. ``so-tangent-forward``, ``so-tangent-loss``,
        ``so-tangent-backward``, ``so-hvp-params``.

        X: (B, n_in) inputs; y: (B,) labels; V: the direction ``θ̇``, a list
        of ``(Ẇ, ḃ)`` with the shapes of ``params`` (a mismatch is refused,
        naming the first). Returns a list of ``(W, b)``-shaped arrays, the
        product, without forming the Hessian: Pearlmutter's R-operator, the
        forward pass and the backward recursion differentiated in direction
        ``V``. Each tangent ``Ẋ`` sits beside the quantity ``X`` it moves::

            Δ⁽ᴸ⁾ = (P − Y)/B          Δ̇⁽ᴸ⁾ = (P ⊙ Ż − P ⊙ (P ⊙ Ż) 𝟏𝟏ᵀ)/B
            G = Δ⁽ᵏ⁾ W⁽ᵏ⁾             Ġ = Δ̇⁽ᵏ⁾ W⁽ᵏ⁾ + Δ⁽ᵏ⁾ Ẇ⁽ᵏ⁾
            Δ⁽ᵏ⁻¹⁾ = f'(Z) ⊙ G        Δ̇⁽ᵏ⁻¹⁾ = f'(Z) ⊙ Ġ + f''(Z) ⊙ Ż ⊙ G
            ∇W = Δ⁽ᵏ⁾ᵀ A⁽ᵏ⁻¹⁾         (∇²E θ̇)_W = Δ̇⁽ᵏ⁾ᵀ A⁽ᵏ⁻¹⁾ + Δ⁽ᵏ⁾ᵀ Ȧ⁽ᵏ⁻¹⁾
            ∇b = Δ⁽ᵏ⁾ᵀ 𝟏              (∇²E θ̇)_b = Δ̇⁽ᵏ⁾ᵀ 𝟏

        with Z, Ż at layer k − 1 in the third line. Costs about 2.5 times a
        gradient (about 7 forward passes' matrix products against 2.8).
        """
        X, y, V = self._prepare(X, y, V)
        logits, cache, Zdots, Adots = self._tangents(X, V)
        _, Delta = softmax_cross_entropy(logits, y)
        Ddot = self._logit_curvature(softmax(logits), Zdots[-1])
        out: list[tuple[np.ndarray, np.ndarray]]
        out = [None] * len(self.params)  # type: ignore[list-item]
        for k in range(len(self.params) - 1, -1, -1):
            A, _ = cache[k]
            W, _ = self.params[k]
            Wdot, _ = V[k]
            HW = Ddot.T @ A
            if Adots[k] is not None:
                HW = HW + Delta.T @ Adots[k]
            out[k] = (HW, Ddot.sum(axis=0))
            if k == 0:
                break
            Z_below = cache[k - 1][1]
            G = Delta @ W
            Gdot = Ddot @ W + Delta @ Wdot
            curvature = activation_curvature(self.activation, Z_below)
            Ddot = self._f_vjp(Gdot, Z_below) + curvature * Zdots[k - 1] * G
            Delta = self._f_vjp(G, Z_below)
        return out

    def gnvp(self, X, y, V) -> list[tuple[np.ndarray, np.ndarray]]:
        """Gauss–Newton product ``J_zᵀ ∇²_Z E J_z θ̇`` for the logits Z.

        Implements eqs. ``so-gn-split``, ``so-logit-hessian``.

        Arguments and result as :meth:`hvp`. The direction is pushed forward
        to the logits (``Ż⁽ᴸ⁾ = J_z θ̇``), multiplied by the loss's
        curvature in the logits (per example ``(diag p − p pᵀ)/B``, positive
        semi-definite), and pulled back by the ordinary backward recursion
        (``J_zᵀ``). It is :meth:`hvp` without the terms that carry ``Δ``:
        the curvature of the network itself is left out, so the matrix is
        symmetric positive semi-definite.
        """
        X, y, V = self._prepare(X, y, V)
        logits, cache, Zdots, _ = self._tangents(X, V)
        Ddot = self._logit_curvature(softmax(logits), Zdots[-1])
        out: list[tuple[np.ndarray, np.ndarray]]
        out = [None] * len(self.params)  # type: ignore[list-item]
        for k in range(len(self.params) - 1, -1, -1):
            A, _ = cache[k]
            out[k] = (Ddot.T @ A, Ddot.sum(axis=0))
            if k > 0:
                Ddot = self._f_vjp(Ddot @ self.params[k][0], cache[k - 1][1])
        return out

    # --
    # training --------------------------------------------------------------

    def sgd_step(self, X, y, lr: float) -> float:
        """One plain gradient step on the batch; returns the loss before it.

        Raises ``FloatingPointError`` without changing any parameter if the
        loss, a gradient or an updated parameter is not finite.
        """
        loss, grads = self.loss_and_grads(X, y)
        new = [
            (W - lr * dW, b - lr * db)
            for (W, b), (dW, db) in zip(self.params, grads)
        ]
        if not np.isfinite(loss) or not all(
            np.all(np.isfinite(W)) and np.all(np.isfinite(b)) for W, b in new
        ):
            raise FloatingPointError(
                f"training diverged (loss {loss}); the step was not applied"
            )
        self.params = new
        return loss

    def train(
        self,
        X,
        y,
        lr: float = 0.5,
        epochs: int = 100,
        batch_size: int | None = None,
        seed: int = 0,
    ) -> dict[str, list[float]]:
        """Plain SGD: each epoch shuffles the rows, one step a mini-batch.

        batch_size: rows per step; ``None`` uses the whole set
        (full-batch gradient descent). Returns the history:
        ``{"loss": [...], "accuracy": [...]}``, one entry per epoch, measured
        on the whole of ``(X, y)`` after the epoch.
        """
        X = self._check_inputs(X)
        y = check_labels(y, X.shape[0], self.layer_sizes[-1])
        lr = float(as_real_array("lr", np.atleast_1d(lr))[0])
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a positive number; got {lr}")
        epochs = positive_int("epochs", epochs)
        B = X.shape[0]
        size = B if batch_size is None else batch_size
        if (
            isinstance(size, bool)
            or not isinstance(size, int | np.integer)
            or size < 1
        ):
            raise ValueError(
                "batch_size must be a positive integer or None; got "
                f"{batch_size!r}"
            )
        rng = np.random.default_rng(seed)
        history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        for _ in range(epochs):
            order = rng.permutation(B)
            for start in range(0, B, size):
                rows = order[start : start + size]
                self.sgd_step(X[rows], y[rows], lr)
            loss, _ = self.loss_and_grads(X, y)
            history["loss"].append(loss)
            history["accuracy"].append(self.accuracy(X, y))
        return history
