"""``_alloc``: after tuning, a read-sized allocation comes from the heap, not from mmap."""

from __future__ import annotations

import ctypes
import platform

import pytest

from harness.faultproxy._alloc import MMAP_THRESHOLD, tune_allocator


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mapped_blocks() -> int:
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _Mallinfo2
    return int(mallinfo2().hblks)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt and mallinfo2 are glibc's")
def test_reads_up_to_the_threshold_come_from_the_heap() -> None:
    assert tune_allocator()
    base = _mapped_blocks()
    read_sized = bytearray(256 * 1024)  # what asyncio allocates for one read
    assert _mapped_blocks() == base
    huge = bytearray(2 * MMAP_THRESHOLD)  # above the threshold: still mapped, as it should be
    assert _mapped_blocks() == base + 1
    del read_sized, huge
