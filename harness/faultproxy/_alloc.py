"""Keep glibc's allocator from mapping and unmapping memory on every socket read.

asyncio reads a socket into a fresh 256 KiB ``bytes`` and shrinks it to what
arrived. glibc serves a request that large with ``mmap`` until its dynamic
threshold has been raised, which happens only when the process happens to free
a large mapped block; until then every read of a small message costs
``mmap`` + ``mremap`` + ``munmap`` and page faults. Measured with PostgreSQL
``SELECT 1`` through faultproxy on a 2-core machine: that state adds about 20 to
30 µs per round trip (three extra system calls per message, seen with
``strace -c``), and whether a process was in it depended on what it had
happened to allocate before. Fixing both thresholds at start makes every run
take the fast path: reads up to ``MMAP_THRESHOLD`` come from the heap, and up to
``TRIM_THRESHOLD`` of free heap is kept rather than returned and asked for again.

Only on glibc (``mallopt``); elsewhere nothing is changed.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 16 * 1024 * 1024


def tune_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds for this process; whether it was done."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
