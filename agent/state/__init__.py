"""State: the monotonic counters and the checkpoint (store + codec) that make counts and
verdicts survive restarts."""
