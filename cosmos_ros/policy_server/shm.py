"""Same-host frame hand-over through POSIX shared memory: the frame is copied once, into the segment.

Why: over a local socket a 640x480 frame would be copied into a protobuf bytes field, through the socket and
out again. Here the client writes the frame into a segment it owns (the one copy) and sends only the
segment's name; the server maps the segment and hands the backend a view of it. This is safe without a lock
because each client has one call in flight at a time: it writes the next frame only after the reply to the
previous one came back, and the server is done with the view before it replies.

Only used with a ``unix:`` address (the socket path proves both ends share a host and a /dev/shm).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import secrets
from multiprocessing import shared_memory

import numpy as np

# Names this server agrees to open: a client cannot point it at another program's segment.
SHM_PREFIX = "cosmos_ros_frame_"
_NAME_RE = re.compile(rf"^{SHM_PREFIX}[0-9a-f]{{16}}$")
SHM_DIR = "/dev/shm"  # where Linux keeps POSIX shared memory (shm_open)


class FrameSlot:
    """The client's segment; grows (a new segment, new name) when a larger frame comes."""

    def __init__(self) -> None:
        self._shm: shared_memory.SharedMemory | None = None

    @property
    def name(self) -> str:
        return self._shm.name if self._shm is not None else ""

    def put(self, image: np.ndarray) -> str:
        """Copy ``image`` (``[H, W, 3]`` uint8) into the segment; returns the segment's name."""
        if self._shm is None or self._shm.size < image.nbytes:
            self.close()
            self._shm = shared_memory.SharedMemory(
                name=SHM_PREFIX + secrets.token_hex(8), create=True, size=max(image.nbytes, 1)
            )
        view = np.ndarray(image.shape, dtype=np.uint8, buffer=self._shm.buf)
        view[...] = image
        del view  # no export may outlive the segment, or close() raises BufferError
        return self._shm.name

    def close(self) -> None:
        """Unlink and unmap the segment (idempotent)."""
        if self._shm is not None:
            shm, self._shm = self._shm, None
            shm.unlink()  # first: the name goes even if the mapping cannot be closed yet
            # A cleanup racing a put() still writing (its view alive): the mapping goes with the view.
            with contextlib.suppress(BufferError):
                shm.close()


class SegmentCache:
    """The server's mapped client segments, by name (one per client; replaced when a client grows it).

    Mapped from ``/dev/shm`` with ``mmap`` rather than ``SharedMemory(name)``: before Python 3.13 the latter
    registers the segment with this process's resource tracker, which would unlink the client's segment when
    the server exits (and, in one process, trips over the client's own registration).
    """

    def __init__(self, max_segments: int = 16) -> None:
        self._max = max_segments
        self._open: dict[str, mmap.mmap] = {}

    def view(self, name: str, height: int, width: int) -> np.ndarray:
        """A ``[height, width, 3]`` uint8 view of segment ``name`` (no copy).

        Raises:
            ValueError: A name this server does not open, a segment that does not exist or is too small.
        """
        if not _NAME_RE.match(name):
            raise ValueError(f"shared-memory name {name!r} is not one of this package's frame segments")
        mm = self._open.get(name)
        if mm is None:
            try:
                fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR)
            except FileNotFoundError as exc:
                raise ValueError(f"shared-memory segment {name!r} does not exist") from exc
            try:
                mm = mmap.mmap(fd, 0)
            finally:
                os.close(fd)
            if len(self._open) >= self._max:
                self._close_one()
            self._open[name] = mm
        if height < 1 or width < 1 or height * width * 3 > len(mm):
            raise ValueError(f"{width}x{height} RGB frame does not fit segment {name!r} ({len(mm)} bytes)")
        return np.ndarray((height, width, 3), dtype=np.uint8, buffer=mm)

    def _close_one(self) -> None:
        name = next(iter(self._open))
        mm = self._open.pop(name)
        with contextlib.suppress(BufferError):  # a view still alive: the mapping goes when the view does
            mm.close()

    def close(self) -> None:
        while self._open:
            self._close_one()
