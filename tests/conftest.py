"""Shared test set-up: Ray listens on loopback only (before Ray is imported anywhere)."""

import os

# Ray picks the machine's routable address by default; tests keep every socket on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
