"""`driftwarden demo --with-prometheus`, shortened (2,000-row windows, drift from 20 s): the whole
loop on one machine as a user sees it. Drift ramps in, the shipped rules fire in a real Prometheus
and reach the agent through a real Alertmanager, incidents open, each analysis prints its top cause
and the report's URL, a retraining job runs its gates, and a promoted version is loaded by the
serving stack."""

from __future__ import annotations

import io
import re
from pathlib import Path

from agent.demo.run import run_demo
from agent.ingest.embedded import free_port


def test_the_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    out = io.StringIO()
    code = run_demo(duration_s=200, port=free_port(), rate=1000, window=2000, drift_after_s=20,
                    state_dir=tmp_path / "demo", out=out, with_prometheus=True, linger_after_job_s=12)
    text = out.getvalue()
    assert code == 0 and "stopped cleanly" in text, text[-3000:]
    assert re.search(r"Prometheus http://127\.0\.0\.1:\d+ .* -> Alertmanager http://127\.0\.0\.1:\d+", text), text[:2000]
    assert "incident inc-" in text, text
    # the alert path: an alert opened its own incident, or joined the agent's own one
    assert re.search(r"opened: alertmanager \(-\): Driftwarden\w+|! alert Driftwarden\w+.* joined inc-\d+", text), text
    causes = re.findall(r"! root cause of (inc-\d+): (\w+) \(([\d.]+)\): .*; action: (\w+); report: "
                        r"(http://127\.0\.0\.1:\d+/incidents/inc-\d+/report)", text)
    assert causes, text
    job = re.search(r"~ job (job-\d+) (succeeded|failed): (\d+)/(\d+) gates passed, verdict (\w+)", text)
    assert job, text
    assert int(job.group(4)) >= 16, job.group(0)                 # every gate of the checklist ran
    if job.group(2) == "succeeded" and job.group(5) == "promote":
        assert re.search(r"version v\d{4} promoted", text) and "serving stack reloaded car-loan version v0" in text, text
    # the summaries went on after the job: the serving stack and the agent did not stop
    after = text[job.end():]
    assert len(re.findall(r"\[\s*\d+s\] sent", after)) >= 2, after
