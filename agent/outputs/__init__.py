"""Outputs: the Prometheus collector over the agent's snapshot, and the HTTP transport."""
