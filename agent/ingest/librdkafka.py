"""librdkafka configuration for the confluent-kafka backend: defaults, and the translation of the
agent's kafka-python style option names (security_protocol, sasl_*, ssl_*) to librdkafka's."""

from __future__ import annotations

from typing import Any

INSTALL_HINT = "pip install 'confluent-kafka==2.16.1'"

# kafka-python option names (as the agent config spells them) -> librdkafka names.
OPTION_NAMES: dict[str, str] = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "sasl_kerberos_service_name": "sasl.kerberos.service.name",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
    "ssl_crlfile": "ssl.crl.location",
    "client_id": "client.id",
}
# Values never logged, whatever the name.
_SECRET_HINTS = ("password", "secret", "sasl.username", "oauthbearer")

# librdkafka consumer settings matching agent.ingest.broker.CONSUMER_DEFAULTS (fast group join, large
# fetches, no auto-commit). Callers' client_options override them.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "max.poll.interval.ms": 60_000,
    "partition.assignment.strategy": "range,roundrobin",   # eager: see _on_assign_cb
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "fetch.min.bytes": 1,
    "fetch.wait.max.ms": 200,
    "enable.partition.eof": False,
    "reconnect.backoff.ms": 100,
    "reconnect.backoff.max.ms": 2000,
    "socket.timeout.ms": 15_000,
    "statistics.interval.ms": 1000,    # drives connected(); parsed once a second
}

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "linger.ms": 5,
    "batch.size": 1024 * 1024,
    "message.max.bytes": 16 * 1024 * 1024,
    "message.timeout.ms": 30_000,      # a failed dead letter is produced again by flush()
    "reconnect.backoff.ms": 100,
    "reconnect.backoff.max.ms": 2000,
    "socket.timeout.ms": 15_000,
}

# Options given to one client only; anything else goes to both.
_CONSUMER_ONLY = (set(CONSUMER_DEFAULTS) - {"reconnect.backoff.ms", "reconnect.backoff.max.ms",
                                            "socket.timeout.ms", "statistics.interval.ms"}) | {
    "group.instance.id", "group.protocol", "group.remote.assignor", "isolation.level",
    "check.crcs", "queued.min.messages", "queued.max.messages.kbytes", "fetch.queue.backoff.ms",
    "fetch.error.backoff.ms", "coordinator.query.interval.ms", "auto.commit.interval.ms",
    "allow.auto.create.topics", "consume.callback.max.messages"}
_PRODUCER_ONLY = (set(PRODUCER_DEFAULTS) - {"reconnect.backoff.ms", "reconnect.backoff.max.ms",
                                            "socket.timeout.ms", "message.max.bytes"}) | {
    "enable.idempotence", "transactional.id", "compression.type", "compression.codec",
    "batch.num.messages", "queue.buffering.max.ms", "queue.buffering.max.messages",
    "queue.buffering.max.kbytes", "delivery.timeout.ms", "request.timeout.ms", "retries",
    "message.send.max.retries", "partitioner", "request.required.acks"}

_START_TIMEOUT_S = 30.0  # like kafka-python's bootstrap: start() raises after this


def translate_client_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """kafka-python style option names -> librdkafka names; dotted names pass through.

    >>> translate_client_options({"security_protocol": "SASL_SSL", "sasl_plain_username": "u",
    ...                           "ssl_cafile": "/ca.pem", "client.id": "dw"})
    {'security.protocol': 'SASL_SSL', 'sasl.username': 'u', 'ssl.ca.location': '/ca.pem', 'client.id': 'dw'}
    >>> translate_client_options({"ssl_check_hostname": False})
    {'ssl.endpoint.identification.algorithm': 'none'}
    >>> translate_client_options({"sasl_oauth_token_provider": object()})
    Traceback (most recent call last):
    ...
    ValueError: kafka client option 'sasl_oauth_token_provider' has no librdkafka equivalent known to ConfluentBroker; give the librdkafka name instead (https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)
    """
    out: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"kafka client option names must be non-empty strings, got {key!r}")
        if key == "ssl_check_hostname":
            name, value = "ssl.endpoint.identification.algorithm", "https" if value else "none"
        elif key in OPTION_NAMES:
            name = OPTION_NAMES[key]
        elif "_" in key and "." not in key:
            raise ValueError(f"kafka client option {key!r} has no librdkafka equivalent known to "
                             "ConfluentBroker; give the librdkafka name instead "
                             "(https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)")
        else:
            name = key
        if name in out and out[name] != value:
            raise ValueError(f"kafka client option {name!r} is given twice with different values "
                             f"(once as {key!r})")
        out[name] = value
    return out


def _redacted(options: dict[str, Any]) -> dict[str, Any]:
    """Options with secret values masked, for messages and logs."""
    return {k: ("***" if any(h in k for h in _SECRET_HINTS) else v) for k, v in options.items()}
