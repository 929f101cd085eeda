"""Observed state shared by runtime/, status/, prober/ and the pod workers (no engine here)."""
