"""Helpers the tests share: fake tools, waiting with a deadline, processes, PostgreSQL,
loopback recorders."""
