"""What only ConfluentBroker (confluent-kafka / librdkafka) has: option translation, the install
hint, message batching. Its behaviour against a real broker is tested with kafka-python's in
test_broker_clients.py. confluent-kafka missing is a failure with the install command, never a skip.
"""

from __future__ import annotations

import sys

import pytest

from agent.ingest.confluent import INSTALL_HINT, ConfluentBroker, translate_client_options

try:
    import confluent_kafka
except ImportError:  # reported by the fixture below, as a failure
    confluent_kafka = None


@pytest.fixture(autouse=True)
def _confluent_kafka_installed() -> None:
    if confluent_kafka is None:
        pytest.fail(f"confluent-kafka is not installed: {INSTALL_HINT}", pytrace=False)


def test_client_option_translation() -> None:
    options = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
               "sasl_plain_username": "dw", "sasl_plain_password": "s3cret",
               "ssl_cafile": "/etc/ca.pem", "ssl_certfile": "/etc/c.pem", "ssl_keyfile": "/etc/k.pem",
               "client.id": "driftwarden", "acks": "all"}
    assert translate_client_options(options) == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "dw", "sasl.password": "s3cret", "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/c.pem", "ssl.key.location": "/etc/k.pem",
        "client.id": "driftwarden", "acks": "all"}
    assert translate_client_options(None) == {}
    with pytest.raises(ValueError, match="'sasl_oauth_token_provider'"):
        translate_client_options({"sasl_oauth_token_provider": "x"})
    with pytest.raises(ValueError, match="'security.protocol' is given twice"):
        translate_client_options({"security_protocol": "SSL", "security.protocol": "PLAINTEXT"})
    with pytest.raises(ValueError, match="'max_poll_records'"):   # at construction, before start
        ConfluentBroker("127.0.0.1:1", ["t"], "g", client_options={"max_poll_records": 10})
    with pytest.raises(ValueError, match="eager"):
        ConfluentBroker("127.0.0.1:1", ["t"], "g",
                        client_options={"partition.assignment.strategy": "cooperative-sticky"})
    # librdkafka itself knows every name the translation produces (no connection is made)
    for name in translate_client_options({k: v for k, v in options.items() if k != "acks"}):
        assert _librdkafka_knows(name), name
    assert not _librdkafka_knows("sasl_plain_username")


def _librdkafka_knows(name: str) -> bool:
    """Whether librdkafka accepts `name` as a configuration property (no connection made)."""
    try:
        confluent_kafka.Producer({"bootstrap.servers": "127.0.0.1:1", name: _probe_value(name)})
    except confluent_kafka.KafkaException as exc:
        return "No such configuration property" not in str(exc)
    return True


def _probe_value(name: str) -> str:
    return {"security.protocol": "PLAINTEXT", "sasl.mechanism": "PLAIN"}.get(name, "x")


def test_missing_confluent_kafka_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)   # import now raises ImportError
    cb = ConfluentBroker("127.0.0.1:1", ["t"], "g")
    with pytest.raises(ImportError, match="pip install 'confluent-kafka"):
        cb.start()


def test_to_batches_groups_interleaved_partitions_in_offset_order() -> None:
    from agent.ingest.confluent import _to_batches

    def msg(topic: str, partition: int, offset: int) -> object:
        return confluent_kafka.Message(topic=topic, partition=partition, offset=offset,
                                       key=f"k{offset}".encode(), value=f"v{offset}".encode(),
                                       timestamp=(confluent_kafka.TIMESTAMP_CREATE_TIME, 1000 + offset))

    msgs = [msg("a", 0, 5), msg("a", 1, 9), msg("b", 0, 2), msg("a", 0, 6), msg("a", 1, 8)]
    batches = {(b.topic, b.partition): b for b in _to_batches(msgs)}
    assert set(batches) == {("a", 0), ("a", 1), ("b", 0)}
    assert batches[("a", 0)].offsets.tolist() == [5, 6]
    assert batches[("a", 1)].offsets.tolist() == [8, 9]            # sorted (defensive)
    assert batches[("a", 1)].values == [b"v8", b"v9"] and batches[("a", 1)].keys == [b"k8", b"k9"]
    assert batches[("a", 1)].timestamps_ms.tolist() == [1008, 1009]
    single = _to_batches([msg("a", 0, 1), msg("a", 0, 2)])
    assert len(single) == 1 and single[0].next_offset == 3
