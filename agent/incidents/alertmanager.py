"""The Alertmanager webhook payload (version 4): validated once, every problem named."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["AlertPayloadError", "parse_alertmanager"]


class AlertPayloadError(ValueError):
    """The webhook body is not an Alertmanager v4 payload; the message says why."""


def parse_alertmanager(body: bytes) -> list[dict[str, Any]]:
    """Validate an Alertmanager webhook body (version 4) and return its alerts.

    Each alert keeps ``status``, ``labels``, ``annotations``, ``startsAt`` and ``fingerprint``.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AlertPayloadError(f"body is not valid JSON: {e}") from None
    except RecursionError:
        raise AlertPayloadError("body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise AlertPayloadError("body must be a JSON object")
    if str(payload.get("version")) != "4":
        raise AlertPayloadError(f"unsupported webhook version {payload.get('version')!r} (expected '4')")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise AlertPayloadError("field 'alerts' must be a list")
    out = []
    for i, a in enumerate(alerts):
        if not isinstance(a, dict):
            raise AlertPayloadError(f"alerts[{i}] must be an object")
        labels = a.get("labels")
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise AlertPayloadError(f"alerts[{i}].labels must be an object of strings")
        status = a.get("status")
        if status not in ("firing", "resolved"):
            raise AlertPayloadError(f"alerts[{i}].status must be 'firing' or 'resolved', got {status!r}")
        ann = a.get("annotations", {})
        if not isinstance(ann, dict):
            raise AlertPayloadError(f"alerts[{i}].annotations must be an object")
        out.append({"status": status, "labels": labels, "annotations": ann,
                    "startsAt": str(a.get("startsAt", "")), "fingerprint": str(a.get("fingerprint", ""))})
    return out
