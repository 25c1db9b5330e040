"""Rotation conversions for decoding Cosmos 3 pose actions: 6D rotation -> matrix -> unit quaternion.

Cosmos 3's unified action representation carries orientations as the continuous 6D rotation of Zhou et al.
2019 ("On the Continuity of Rotation Representations in Neural Networks", https://arxiv.org/abs/1812.07035):
two 3-vectors that Gram–Schmidt turns into an orthonormal frame. A network output is never exactly
orthonormal, so decoding must orthonormalise; when the two vectors are (nearly) parallel or zero the frame is
undefined, and we raise ``DegenerateRotationError`` instead of inventing an orientation (a made-up pose must
never reach a controller).

Conventions: quaternions are ``(x, y, z, w)`` (ROS ``geometry_msgs/Quaternion`` order), unit norm, with
``w >= 0`` so each rotation has one representation. Everything is NumPy, vectorised over leading axes.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

# |a1| and |a2 - proj| below this are treated as zero. The model's 6D outputs are O(1); 1e-6 is far below any
# meaningful value yet above float32 rounding noise of an exactly degenerate input.
DEGENERATE_EPS = 1e-6

SixDLayout = Literal["columns", "rows"]


class DegenerateRotationError(ValueError):
    """A 6D rotation whose two vectors do not span a plane (zero, parallel, or non-finite)."""


def rotation_6d_to_matrix(r6: np.ndarray, layout: SixDLayout = "columns") -> np.ndarray:
    """Gram–Schmidt a 6D rotation ``[..., 6]`` into rotation matrices ``[..., 3, 3]``.

    Args:
        r6: The two 3-vectors ``a1 = r6[..., 0:3]``, ``a2 = r6[..., 3:6]``.
        layout: ``"columns"`` (Zhou et al.: ``a1``, ``a2`` are the first two matrix columns) or ``"rows"``
            (PyTorch3D's ``matrix_to_rotation_6d``: the first two rows). Which one a checkpoint uses is a
            property of its training data, so it is set per action-space profile.

    Returns:
        Proper rotation matrices (orthonormal, determinant +1).

    Raises:
        DegenerateRotationError: If any entry is non-finite, ``a1`` is ~zero, or ``a2`` is ~parallel to
            ``a1``.
        ValueError: If the last axis is not 6 or ``layout`` is unknown.
    """
    r6 = np.asarray(r6, dtype=np.float64)
    if r6.shape[-1:] != (6,):
        raise ValueError(f"6D rotation must have last axis 6, got shape {r6.shape}")
    if layout not in ("columns", "rows"):
        raise ValueError(f"layout must be 'columns' or 'rows', got {layout!r}")
    if not np.all(np.isfinite(r6)):
        raise DegenerateRotationError("6D rotation contains NaN or Inf")
    a1, a2 = r6[..., 0:3], r6[..., 3:6]
    n1 = np.linalg.norm(a1, axis=-1, keepdims=True)
    if np.any(n1 < DEGENERATE_EPS):
        raise DegenerateRotationError(f"6D rotation first vector has norm < {DEGENERATE_EPS}")
    b1 = a1 / n1
    u2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    n2 = np.linalg.norm(u2, axis=-1, keepdims=True)
    # Compare against |a2| as well, so a long a2 almost parallel to a1 is caught, not only a short one.
    n_a2 = np.linalg.norm(a2, axis=-1, keepdims=True)
    if np.any(n2 < DEGENERATE_EPS * np.maximum(1.0, n_a2)):
        raise DegenerateRotationError("6D rotation vectors are parallel or the second one is zero")
    b2 = u2 / n2
    b3 = np.cross(b1, b2)
    mat = np.stack([b1, b2, b3], axis=-1)  # b_i as columns
    if layout == "rows":
        mat = np.swapaxes(mat, -1, -2)
    return mat


def matrix_to_rotation_6d(mat: np.ndarray, layout: SixDLayout = "columns") -> np.ndarray:
    """Inverse of :func:`rotation_6d_to_matrix` for proper rotations: ``[..., 3, 3]`` -> ``[..., 6]``."""
    mat = np.asarray(mat, dtype=np.float64)
    if mat.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must have shape [..., 3, 3], got {mat.shape}")
    if layout == "columns":
        return np.concatenate([mat[..., :, 0], mat[..., :, 1]], axis=-1)
    if layout == "rows":
        return np.concatenate([mat[..., 0, :], mat[..., 1, :]], axis=-1)
    raise ValueError(f"layout must be 'columns' or 'rows', got {layout!r}")


def matrix_to_quaternion(mat: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` -> unit quaternions ``[..., 4]`` as ``(x, y, z, w)``, ``w >= 0``.

    Uses the branch on the largest of ``(w, x, y, z)`` (Shepperd 1978), so it never divides by a small
    number.
    """
    m = np.asarray(mat, dtype=np.float64)
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must have shape [..., 3, 3], got {m.shape}")
    lead = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    trace = m00 + m11 + m22
    # 4*q_i^2 for i = w, x, y, z
    four_sq = np.stack([1 + trace, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=-1)
    best = np.argmax(four_sq, axis=-1)
    q = np.empty((m.shape[0], 4))  # (x, y, z, w)
    for i in range(m.shape[0]):
        r = m[i]
        k = best[i]
        s = 2.0 * np.sqrt(max(four_sq[i, k], 0.0))
        if k == 0:
            q[i] = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
        elif k == 1:
            q[i] = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
        elif k == 2:
            q[i] = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
        else:
            q[i] = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q[q[:, 3] < 0] *= -1.0
    return q.reshape(*lead, 4)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Quaternions ``[..., 4]`` ``(x, y, z, w)`` (normalised here) -> rotation matrices ``[..., 3, 3]``."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1:] != (4,):
        raise ValueError(f"quaternions must have last axis 4, got shape {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(~np.isfinite(norm)) or np.any(norm < DEGENERATE_EPS):
        raise DegenerateRotationError("quaternion is zero or non-finite")
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def rotation_6d_to_quaternion(r6: np.ndarray, layout: SixDLayout = "columns") -> np.ndarray:
    """6D rotations ``[..., 6]`` -> unit quaternions ``[..., 4]`` ``(x, y, z, w)``, ``w >= 0``.

    Raises:
        DegenerateRotationError: See :func:`rotation_6d_to_matrix`.
    """
    return matrix_to_quaternion(rotation_6d_to_matrix(r6, layout))
