"""Ingest: the Broker seam over Kafka (kafka-python or confluent-kafka), record batches, dead
letters, topic admin, the embedded broker and replay. Knows nothing of the stages after it."""

from __future__ import annotations

from typing import Any

from agent.ingest.broker import Broker, OnAssign, OnRevoke

__all__ = ["make_broker"]


def make_broker(client: str, bootstrap: str, topics: list[str], group_id: str, client_options: dict[str, Any],
                on_assign: OnAssign | None = None, on_revoke: OnRevoke | None = None) -> Broker:
    """The configured backend (``kafka.client``): ``kafka-python`` (the default) or ``confluent``
    (librdkafka: several times kafka-python's rate on wide records; ``pip install 'driftwarden[confluent]'``)."""
    if client == "confluent":
        from agent.ingest.confluent import ConfluentBroker

        return ConfluentBroker(bootstrap, topics, group_id, client_options=client_options, on_assign=on_assign,
                               on_revoke=on_revoke)
    from agent.ingest.kafka_python import KafkaBroker

    return KafkaBroker(bootstrap, topics, group_id, client_options=client_options, on_assign=on_assign,
                       on_revoke=on_revoke)
