"""Root-cause analysis in the agent: the worker, the report page."""
