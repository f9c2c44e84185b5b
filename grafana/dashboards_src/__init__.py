"""The driftwarden Grafana dashboards as code (Grafana Foundation SDK builders), one module each.

``DASHBOARDS`` maps each JSON file of grafana/dashboards/ to the function building it; see
grafana/build_dashboards.py.
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.models import dashboard as model

from . import feature_drift, incidents, overview, performance, pipeline

__all__ = ["DASHBOARDS"]

DASHBOARDS: dict[str, Callable[[], model.Dashboard]] = {
    "driftwarden.json": overview.build,  # uid "driftwarden", linked from the alerts' annotations
    "driftwarden-feature-drift.json": feature_drift.build,
    "driftwarden-performance.json": performance.build,
    "driftwarden-incidents.json": incidents.build,
    "driftwarden-pipeline.json": pipeline.build,
}
