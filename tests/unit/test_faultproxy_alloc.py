"""``_alloc``: after tuning, a read-sized allocation comes from the heap, not from mmap."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, mmap, sys
from harness.faultproxy._alloc import tune_allocator

def mmapped(buf):
    # glibc puts an mmapped chunk one header (16 bytes on 64-bit) into its mapping
    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    return addr % mmap.PAGESIZE == 2 * ctypes.sizeof(ctypes.c_size_t)

if sys.argv[1] == "tuned":
    assert tune_allocator()
held = [bytearray(256 * 1024) for _ in range(3)]  # what asyncio allocates per read
print(sum(mmapped(b) for b in held))
"""


def _mapped_reads(mode: str) -> int:
    """Of three read-sized buffers held at once in a fresh interpreter (the allocator's
    state of this one depends on every test before), how many glibc served from mmap."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_reads_up_to_the_threshold_come_from_the_heap() -> None:
    """Judged from where each buffer lies (not mallinfo2's process-wide count, which
    another thread of the suite shifted once in CI), in a fresh process: untuned, glibc
    maps every 256 KiB read (its default threshold is 128 KiB), which also shows the
    probe sees a mapping; tuned, none (a heap chunk may sit page-aligned by chance, so
    the bound is "not all three")."""
    assert _mapped_reads("untuned") == 3
    assert _mapped_reads("tuned") < 3
