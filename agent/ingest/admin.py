"""Topic admin: the input and dead-letter topics exist before the agent reads them."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["ensure_topics"]

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, names: list[str], client_options: dict[str, Any]) -> None:
    """Create the topics in ``names`` that are missing (one partition; production clusters may
    disable auto-creation; an existing topic is left as it is). A failure is logged, not raised:
    creating topics is a convenience, and the broker may auto-create them."""
    try:
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="driftwarden-admin", **client_options)
        try:
            existing = set(admin.list_topics())
            new = [NewTopic(n, 1, 1) for n in names if n not in existing]
            if new:
                try:
                    admin.create_topics(new)
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()
    except Exception as e:  # noqa: BLE001 - topic creation is a convenience, not a requirement
        log.warning("could not ensure topics exist (%s); relying on broker auto-creation", e)
