"""Strands' Storage protocol: objects and their keys, snapshots read into sessions, checkpoints, forks."""
