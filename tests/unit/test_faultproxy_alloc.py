"""``_alloc``: after tuning, a read-sized allocation comes from the heap, not from mmap."""

from __future__ import annotations

import ctypes
import mmap
import platform

import pytest

from harness.faultproxy._alloc import MMAP_THRESHOLD, tune_allocator


def _mmapped(buf: bytearray) -> bool:
    """Whether glibc served this buffer from mmap: such a chunk starts one page-aligned
    header (16 bytes on 64-bit) into its mapping; a heap chunk lands anywhere."""
    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    return addr % mmap.PAGESIZE == 2 * ctypes.sizeof(ctypes.c_size_t)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_reads_up_to_the_threshold_come_from_the_heap() -> None:
    """Judged from where each buffer lies, not from mallinfo2's process-wide count
    (another thread of the suite freeing a big buffer in the same instant shifted
    that count once in CI). Three buffers held at once: a heap chunk can sit at a
    page-aligned address by chance, three cannot; untuned, all three are mmapped
    (measured: glibc's default threshold is 128 KiB)."""
    assert tune_allocator()
    read_sized = [bytearray(256 * 1024) for _ in range(3)]  # what asyncio allocates per read
    assert not all(_mmapped(b) for b in read_sized)
    huge = [bytearray(2 * MMAP_THRESHOLD) for _ in range(3)]  # above the threshold
    assert all(_mmapped(b) for b in huge)  # still mapped, as it should be
