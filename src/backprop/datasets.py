"""Small synthetic classification sets in numpy, fixed by their seed."""

from __future__ import annotations

import numpy as np

from backprop._checks import positive_int

__all__ = ["spirals", "blobs", "tiny_sentences"]


def _non_negative(name: str, value) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"{name} must be a finite number >= 0; got {value!r}"
        )
    return value


def spirals(
    n_per_class: int = 100,
    n_classes: int = 3,
    noise: float = 0.2,
    turns: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms in the plane, one arm per class.

    Arm ``c`` runs from the origin outwards, its angle growing with the
    radius and shifted by ``2π c / n_classes``; ``noise`` perturbs the angle
    (in radians, scaled by ``turns``). No straight line separates the arms,
    so a network needs hidden units.

    Returns ``X`` (n_per_class·n_classes, 2) and integer labels ``y`` of the
    same length, ordered by class. The same seed always gives the same
    arrays.
    """
    n_per_class = positive_int("n_per_class", n_per_class)
    n_classes = positive_int("n_classes", n_classes)
    noise = _non_negative("noise", noise)
    turns = _non_negative("turns", turns)
    rng = np.random.default_rng(seed)
    X = np.empty((n_per_class * n_classes, 2))
    y = np.repeat(np.arange(n_classes), n_per_class)
    radius = np.linspace(0.0, 1.0, n_per_class)
    for c in range(n_classes):
        angle = 2 * np.pi * (
            turns * radius + c / n_classes
        ) + noise * turns * rng.normal(size=n_per_class)
        X[c * n_per_class : (c + 1) * n_per_class] = np.column_stack(
            [radius * np.sin(angle), radius * np.cos(angle)]
        )
    return X, y


def blobs(
    n_per_class: int = 100,
    n_classes: int = 3,
    spread: float = 0.3,
    n_features: int = 2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters, centres evenly on the unit circle (features 1, 2).

    Returns ``X`` (n_per_class·n_classes, n_features) and integer labels
    ``y``.
    """
    n_per_class = positive_int("n_per_class", n_per_class)
    n_classes = positive_int("n_classes", n_classes)
    n_features = positive_int("n_features", n_features)
    spread = _non_negative("spread", spread)
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_classes, n_features))
    angles = 2 * np.pi * np.arange(n_classes) / n_classes
    centres[:, 0] = np.cos(angles)
    if n_features > 1:
        centres[:, 1] = np.sin(angles)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centres[y] + spread * rng.normal(size=(y.size, n_features))
    return X, y


def tiny_sentences(n_lines: int = 300, seed: int = 0) -> str:
    """Lines of a tiny English grammar, for a character-level language model.

    Each line is ``subject verb object.``: the subject one of ``a cat``,
    ``the dog``, ``two cats``, ``two dogs``; the verb ``sees``, ``eats`` or
    ``likes``, without its ``s`` after a plural subject (``two cats see``);
    the object ``a fish``, ``the ball`` or ``two hats``. Words are drawn
    uniformly; the verb must agree with a subject a few characters back.

    Returns the lines joined by ``"\\n"``, with a final ``"\\n"``. The same
    seed always gives the same text.
    """
    n_lines = positive_int("n_lines", n_lines)
    rng = np.random.default_rng(seed)
    # (subject, 1 if plural)
    subjects = [
        ("a cat", 0),
        ("the dog", 0),
        ("two cats", 1),
        ("two dogs", 1),
    ]
    verbs = [("sees", "see"), ("eats", "eat"), ("likes", "like")]
    objects = ["a fish", "the ball", "two hats"]
    lines = []
    for _ in range(n_lines):
        subject, plural = subjects[rng.integers(len(subjects))]
        verb = verbs[rng.integers(len(verbs))][plural]
        lines.append(f"{subject} {verb} {objects[rng.integers(3)]}.")
    return "\n".join(lines) + "\n"
