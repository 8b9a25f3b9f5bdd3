"""The atomic writer now lives in rfkit_base.files (shared by every package); this name stays
for scripts written against it (book/results/make_erf_results.py)."""

from rfkit_base.files import atomic_path, write_bytes, write_text

__all__ = ["atomic_path", "write_bytes", "write_text"]
