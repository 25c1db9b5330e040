"""6D rotation -> quaternion decoding (Zhou et al. 2019 Gram–Schmidt) on known and generated rotations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmos_ros.rotation import (
    DegenerateRotationError,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    rotation_6d_to_quaternion,
)

S = math.sqrt(0.5)

# Known rotations written out by hand (not computed by the code under test): R and its (x, y, z, w).
KNOWN = {
    "identity": (np.eye(3), (0.0, 0.0, 0.0, 1.0)),
    "x90": (np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float), (S, 0.0, 0.0, S)),
    "y90": (np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], float), (0.0, S, 0.0, S)),
    "z90": (np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], float), (0.0, 0.0, S, S)),
    "z180": (np.diag([-1.0, -1.0, 1.0]), (0.0, 0.0, 1.0, 0.0)),
    "x-90": (np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float), (-S, 0.0, 0.0, S)),
}


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 2] *= -1
    return q


@pytest.mark.parametrize("name", sorted(KNOWN))
@pytest.mark.parametrize("layout", ["columns", "rows"])
def test_known_rotations(name: str, layout: str) -> None:
    mat, quat = KNOWN[name]
    r6 = mat[:, :2].T.reshape(6) if layout == "columns" else mat[:2, :].reshape(6)
    np.testing.assert_allclose(rotation_6d_to_matrix(r6, layout), mat, atol=1e-12)
    np.testing.assert_allclose(rotation_6d_to_quaternion(r6, layout), quat, atol=1e-12)


def test_identity_6d_is_the_first_two_basis_vectors() -> None:
    np.testing.assert_allclose(rotation_6d_to_quaternion(np.array([1.0, 0, 0, 0, 1, 0])), [0, 0, 0, 1])


def test_random_rotation_round_trip() -> None:
    rng = np.random.default_rng(1234)
    mats = np.stack([_random_rotation(rng) for _ in range(50)])
    for layout in ("columns", "rows"):
        r6 = matrix_to_rotation_6d(mats, layout)
        q = rotation_6d_to_quaternion(r6, layout)
        np.testing.assert_allclose(quaternion_to_matrix(q), mats, atol=1e-10)
        np.testing.assert_allclose(matrix_to_quaternion(quaternion_to_matrix(q)), q, atol=1e-10)


def test_layouts_differ_for_a_non_symmetric_rotation() -> None:
    # Guards the test above against a layout argument that is silently ignored.
    mat = KNOWN["z90"][0]
    r6 = matrix_to_rotation_6d(mat, "columns")
    np.testing.assert_allclose(rotation_6d_to_matrix(r6, "rows"), mat.T, atol=1e-12)


def test_gram_schmidt_orthonormalises_scaled_and_skewed_input() -> None:
    a1 = np.array([2.0, 0.0, 0.0])
    a2 = np.array([0.5, 3.0, 0.0])  # not orthogonal to a1, not unit
    mat = rotation_6d_to_matrix(np.concatenate([a1, a2]))
    np.testing.assert_allclose(mat, np.eye(3), atol=1e-12)


@pytest.mark.parametrize(
    "r6",
    [
        [0, 0, 0, 0, 1, 0],  # first vector zero
        [1, 0, 0, 0, 0, 0],  # second vector zero
        [1, 2, 3, 2, 4, 6],  # parallel
        [1, 0, 0, -3, 0, 0],  # anti-parallel
        [1e3, 0, 0, 1e3, 1e-7, 0],  # long, almost parallel
        [float("nan"), 0, 0, 0, 1, 0],
        [float("inf"), 0, 0, 0, 1, 0],
    ],
)
def test_degenerate_6d_raises(r6: list[float]) -> None:
    with pytest.raises(DegenerateRotationError):
        rotation_6d_to_quaternion(np.array(r6, dtype=float))


def test_degenerate_entry_in_a_batch_raises() -> None:
    batch = np.array([[1.0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]])
    with pytest.raises(DegenerateRotationError):
        rotation_6d_to_quaternion(batch)


def test_wrong_width_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="last axis 6"):
        rotation_6d_to_matrix(np.zeros(5))


finite = st.floats(min_value=-10, max_value=10, allow_nan=False)


@given(st.lists(finite, min_size=6, max_size=6))
def test_any_non_degenerate_6d_gives_a_proper_rotation_and_unit_quaternion(vals: list[float]) -> None:
    r6 = np.array(vals)
    try:
        mat = rotation_6d_to_matrix(r6)
    except DegenerateRotationError:
        a1, a2 = r6[:3], r6[3:]
        # Only genuinely (near-)degenerate inputs may be refused.
        assert np.linalg.norm(np.cross(a1, a2)) < 1e-4 * max(1.0, np.linalg.norm(a1) * np.linalg.norm(a2))
        return
    np.testing.assert_allclose(mat.T @ mat, np.eye(3), atol=1e-9)
    assert np.linalg.det(mat) == pytest.approx(1.0, abs=1e-9)
    # The first column keeps a1's direction (Gram–Schmidt property).
    np.testing.assert_allclose(mat[:, 0], r6[:3] / np.linalg.norm(r6[:3]), atol=1e-9)
    q = matrix_to_quaternion(mat)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-12)
    assert q[3] >= 0
    np.testing.assert_allclose(quaternion_to_matrix(q), mat, atol=1e-9)
