"""The rules of a run: pure functions over one serializable state (no temporalio, no I/O)."""
