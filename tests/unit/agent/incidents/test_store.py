"""The incident store: one incident per model and kind, cool-down, auto-resolution, alerts that
join an open incident, state that survives a restart."""

from __future__ import annotations

import orjson
import pytest

from agent.incidents.rules import Finding
from agent.incidents.store import IncidentStore
from agent.state.counters import Counters

DRIFT = Finding("data_drift", "warning", "3 of 7 features drifted", {"drift_share": 0.43})
CRITICAL = Finding("data_drift", "critical", "6 of 7 features drifted", {"drift_share": 0.86})
JUDGED = ("data_drift", "data_quality")


def store() -> IncidentStore:
    return IncidentStore(Counters())


def test_one_cause_pages_once_then_resolves_after_clear_windows() -> None:
    s = store()
    assert [k for _, k in s.apply("m", 0, [DRIFT], JUDGED)] == ["data_drift"]
    for w in (1, 2, 3):  # the same cause on later windows: the same incident, not a new one
        assert s.apply("m", w, [DRIFT], JUDGED) == []
    s.apply("m", 4, [CRITICAL], JUDGED)
    _, incidents = s.get("")
    assert len(incidents) == 1
    inc = incidents[0]
    assert (inc["kind"], inc["severity"], inc["status"], inc["first_window"], inc["last_window"]) == \
        ("data_drift", "critical", "open", 0, 4)
    assert s.counters.incidents[("m", "data_drift")] == 1
    assert s.open_by_kind() == {("m", "data_drift", "critical"): 1}
    s.apply("m", 5, [], JUDGED)
    s.apply("m", 6, [], JUDGED)
    assert s.get(inc["id"])[1]["status"] == "open"  # two clear windows of three
    s.apply("m", 7, [], ("data_quality",))  # a window that did not judge drift counts for nothing
    assert s.get(inc["id"])[1]["status"] == "open"
    s.apply("m", 8, [], JUDGED)
    assert s.get(inc["id"])[1]["status"] == "resolved"
    assert s.open_by_kind() == {}


def test_a_flapping_condition_resets_the_clear_count() -> None:
    s = store()
    s.apply("m", 0, [DRIFT], JUDGED)
    s.apply("m", 1, [], JUDGED)
    s.apply("m", 2, [], JUDGED)
    s.apply("m", 3, [DRIFT], JUDGED)
    s.apply("m", 4, [], JUDGED)
    s.apply("m", 5, [], JUDGED)
    assert s.get("")[1][0]["status"] == "open"


def test_cool_down_after_resolution() -> None:
    s = store()
    s.apply("m", 0, [DRIFT], JUDGED)
    for w in (1, 2, 3):
        s.apply("m", w, [], JUDGED)  # resolved at window 3
    assert s.apply("m", 4, [DRIFT], JUDGED, cooldown_windows=5) == []  # 4 < 3 + 5: quiet
    assert s.apply("m", 7, [DRIFT], JUDGED, cooldown_windows=5) == []
    assert len(s.apply("m", 8, [DRIFT], JUDGED, cooldown_windows=5)) == 1
    assert s.counters.incidents[("m", "data_drift")] == 2


def test_models_and_kinds_are_separate_incidents() -> None:
    s = store()
    s.apply("a", 0, [DRIFT], JUDGED)
    s.apply("b", 0, [DRIFT], JUDGED)
    s.apply("a", 1, [Finding("data_quality", "warning", "nulls", {})], JUDGED)
    assert sorted((i["model"], i["kind"]) for i in s.get("")[1]) == [("a", "data_drift"), ("a", "data_quality"),
                                                                      ("b", "data_drift")]


def alert(name: str, status: str = "firing", fingerprint: str = "f1") -> dict:
    return {"status": status, "labels": {"alertname": name, "model": "m"}, "annotations": {},
            "startsAt": "2026-12-01T00:00:00Z", "fingerprint": fingerprint}


def test_an_alert_about_an_open_incident_attaches_to_it() -> None:
    s = store()
    (inc_id, _), = s.apply("m", 0, [DRIFT], JUDGED)
    out = s.on_alerts([alert("DriftwardenFeatureDrift")])
    assert out == {"accepted": 1, "incidents": [], "already_open": [inc_id]}
    assert s.on_alerts([alert("DriftwardenFeatureDrift")])["already_open"] == [inc_id]  # re-delivery
    inc = s.get(inc_id)[1]
    assert [a["alertname"] for a in inc["alerts"]] == ["DriftwardenFeatureDrift"]
    s.on_alerts([alert("DriftwardenFeatureDrift", "resolved")])
    assert s.get(inc_id)[1]["status"] == "open"  # the rule, not the alert, resolves it
    assert s.open_by_kind() == {("m", "data_drift", "warning"): 1}
    # an alert with no open incident of its kind opens its own
    opened = s.on_alerts([alert("DriftwardenDown", fingerprint="f2")])["incidents"]
    assert len(opened) == 1 and s.get(opened[0])[1]["kind"] == "alertmanager"


def test_one_rules_alerts_about_many_features_are_one_incident() -> None:
    s = store()
    out = s.on_alerts([alert("DriftwardenFeatureDrift", fingerprint=f"f{i}") for i in range(7)])
    (inc_id,) = out["incidents"]
    assert out["already_open"] == [inc_id] * 6
    assert [a["fingerprint"] for a in s.get(inc_id)[1]["alerts"]] == [f"f{i}" for i in range(7)]
    assert s.counters.incidents[("m", "alertmanager")] == 1
    back = IncidentStore.from_state(orjson.loads(orjson.dumps(s.state())), Counters())
    for st in (s, back):                       # the same after a restart
        st.on_alerts([alert("DriftwardenFeatureDrift", "resolved", f"f{i}") for i in range(6)])
        assert st.get(inc_id)[1]["status"] == "open"   # one feature still drifts
        assert st.on_alerts([alert("DriftwardenFeatureDrift", fingerprint="f6")])["already_open"] == [inc_id]
        st.on_alerts([alert("DriftwardenFeatureDrift", "resolved", "f6")])
        assert st.get(inc_id)[1]["status"] == "resolved" and st.open_by_kind() == {}
    # a later alert of that name opens a new incident
    assert len(s.on_alerts([alert("DriftwardenFeatureDrift", fingerprint="f9")])["incidents"]) == 1


def test_the_agents_own_incident_takes_over_an_alert_that_fired_first() -> None:
    s = store()
    (alert_inc,) = s.on_alerts([alert("DriftwardenFeatureDrift", fingerprint=f"f{i}") for i in range(2)])["incidents"]
    other = s.on_alerts([alert("DriftwardenDown", fingerprint="d1")])["incidents"]  # another kind stays apart
    (rule_inc, _), = s.apply("m", 0, [DRIFT], JUDGED)
    merged, rule = s.get(alert_inc)[1], s.get(rule_inc)[1]
    assert (merged["status"], merged["merged_into"]) == ("resolved", rule_inc)
    assert [a["fingerprint"] for a in rule["alerts"]] == ["f0", "f1"]
    assert s.on_alerts([alert("DriftwardenFeatureDrift", fingerprint="f1")])["already_open"] == [rule_inc]
    assert s.get(other[0])[1]["status"] == "open"
    assert s.open_by_kind() == {("m", "data_drift", "warning"): 1, ("m", "alertmanager", "warning"): 1}


def test_state_round_trips_through_json_and_keeps_dedup_and_cool_down() -> None:
    s = store()
    (inc_id, _), = s.apply("m", 0, [DRIFT], JUDGED)
    s.on_alerts([alert("DriftwardenFeatureDrift")])
    s.apply("b", 0, [DRIFT], JUDGED)
    for w in (1, 2, 3):
        s.apply("b", w, [], JUDGED)
    back = IncidentStore.from_state(orjson.loads(orjson.dumps(s.state())), Counters())
    assert back.get("") == s.get("")
    assert back.apply("m", 1, [DRIFT], JUDGED) == []  # still open: no second page
    assert back.on_alerts([alert("DriftwardenFeatureDrift")])["already_open"] == [inc_id]
    assert back.apply("b", 4, [DRIFT], JUDGED) == []  # still cooling down


def test_bounded() -> None:
    s = IncidentStore(Counters(), limit=5)
    for i in range(12):
        s.apply(f"m{i}", 0, [DRIFT], JUDGED)
    assert len(s) == 5 and len(s.open_by_kind()) == 5
    with pytest.raises(ValueError, match="limit"):
        IncidentStore(Counters(), limit=0)


def test_a_cause_must_show_in_consecutive_windows_when_confirmation_is_asked() -> None:
    s = store()
    assert s.apply("m", 0, [DRIFT], JUDGED, confirm_windows=2) == []
    assert s.apply("m", 1, [], JUDGED, confirm_windows=2) == []  # a gap: the streak starts again
    assert s.apply("m", 2, [DRIFT], JUDGED, confirm_windows=2) == []
    (inc_id, kind), = s.apply("m", 3, [DRIFT], JUDGED, confirm_windows=2)
    assert kind == "data_drift" and s.get(inc_id)[1]["first_window"] == 2
    assert s.counters.incidents[("m", "data_drift")] == 1
