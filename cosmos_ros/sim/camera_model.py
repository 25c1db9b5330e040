"""World points to pixels of the sim's fixed camera: the view and projection that ``PandaSim.render`` uses.

Pure numpy (no simulator), so overlays drawn on re-rendered frames can be tested against a known point.
The matrices follow OpenGL's ``gluLookAt`` / ``gluPerspective``, which is what pybullet's
``computeViewMatrix`` / ``computeProjectionMatrixFOV`` return (column-major, 16 floats;
https://pybullet.org, "Synthetic Camera Rendering"): ``test/test_demo_closed_loop.py`` checks that they are
equal. ``fov_deg`` is the vertical field of view, as in pybullet.

Pixel convention: ``(u, v)`` with ``u`` to the right and ``v`` down, ``(0, 0)`` the top-left corner of the
top-left pixel (its centre is ``(0.5, 0.5)``); row 0 of ``render()`` is the top of the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cosmos_ros.sim.config import CameraConfig

UP = (0.0, 0.0, 1.0)  # world z is up; PandaSim.render passes the same up vector


def view_matrix(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = UP) -> np.ndarray:
    """4x4 world -> camera (OpenGL: camera looks along -z, y up), row-major for ``M @ p``."""
    e, t, u = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    f = t - e
    if np.linalg.norm(f) == 0:
        raise ValueError(f"camera eye and target coincide: {list(e)}")
    f = f / np.linalg.norm(f)
    s = np.cross(f, u)
    if np.linalg.norm(s) == 0:
        raise ValueError(f"camera up {list(u)} is parallel to the viewing direction {list(f)}")
    s = s / np.linalg.norm(s)
    u2 = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u2, -f
    m[:3, 3] = -m[:3, :3] @ e
    return m


def projection_matrix(fov_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    """4x4 camera -> clip space (``gluPerspective``), row-major for ``M @ p``."""
    if not (0 < fov_deg < 180 and aspect > 0 and 0 < near < far):
        raise ValueError(f"bad perspective: fov {fov_deg}, aspect {aspect}, near {near}, far {far}")
    f = 1.0 / math.tan(math.radians(fov_deg) / 2.0)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2.0 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def camera_matrices(cam: CameraConfig) -> tuple[np.ndarray, np.ndarray]:
    """(view, projection) of a :class:`CameraConfig`, row-major."""
    return (
        view_matrix(cam.eye, cam.target),
        projection_matrix(cam.fov_deg, cam.width / cam.height, cam.near, cam.far),
    )


def project(points: np.ndarray, cam: CameraConfig) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``[N, 2]`` of world points ``[N, 3]`` (m) and a mask of those in front of the camera.

    Points behind the camera get NaN coordinates (a perspective divide there would mirror them into view).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    view, proj = camera_matrices(cam)
    homo = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
    clip = homo @ (proj @ view).T
    w = clip[:, 3]
    front = w > 1e-9
    uv = np.full((len(pts), 2), np.nan)
    ndc = clip[front, :2] / w[front, None]
    uv[front, 0] = (ndc[:, 0] + 1.0) * 0.5 * cam.width
    uv[front, 1] = (1.0 - ndc[:, 1]) * 0.5 * cam.height
    return uv, front
