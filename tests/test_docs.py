"""docs/*.md say what the running system does: route labels, the webhook body, the runbook."""

from __future__ import annotations

import json
import re
from pathlib import Path

from saga_journey.http.webhooks import payload
from saga_journey.runtime import SagaOrchestrator
from saga_journey.runtime.journeys import TEMPLATES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def real_route_templates() -> set[str]:
    """The gateway's route table: the values of the ``route`` label (aiohttp's canonical paths)."""
    from saga_journey.http.routes import routes

    return {r.path for r in routes.routes}


def test_route_labels_in_docs_and_rule_tests_are_real_route_templates() -> None:
    routes = real_route_templates()
    assert "/v1/sagas/{saga_id}/advance" in routes
    texts = [(DOCS / "metrics.md").read_text(),
             (ROOT / "metrics" / "prometheus" / "tests" / "saga_alerts.test.yml").read_text()]
    quoted = {m for text in texts for m in re.findall(r'route="([^"]+)"|`(/[^`\s]*\{[^`\s]*)`', text) for m in m if m}
    assert quoted, "no route label found in the docs"
    assert quoted <= routes, sorted(quoted - routes)


def test_webhook_body_in_http_md_is_the_body_sent(tmp_path) -> None:
    text = (DOCS / "http.md").read_text()
    block = re.search(r"For each attempt the gateway POSTs JSON:\n\n```json\n(.*?)```", text, re.S).group(1)
    shown = json.loads(block.replace("saga_1c...", "saga_1c"))
    uc = {"tenant_id": "acme", "user_id": "alice"}
    sent = []
    handlers = {h: (lambda ctx: sent.append(payload(ctx))) for _, h in TEMPLATES["order_processing"]}
    with SagaOrchestrator.open(str(tmp_path / "data"), handlers=handlers) as orch:
        journey = orch.design_saga_journey_sync("order_processing", None, None, uc)
        sid = orch.execute_saga_journey_sync(journey["journey_id"], "alice", shown["context"], uc)["saga_id"]
        orch.advance_saga_step_sync(sid, None, None, {"status": "complete", "milestone_id": "create_order"}, uc)
        orch.advance_saga_step_sync(sid, None, None, {"status": "complete", "milestone_id": "process_payment",
                                                      **{k: v for k, v in shown["step_result"].items() if k != "status"}}, uc)
        orch.advance_saga_step_sync(sid, None, None, {"status": "failed", "error": "out of stock"}, uc)
        orch.wait_for_saga_sync(sid, uc)
    (body,) = [b for b in sent if b["milestone_id"] == shown["milestone_id"]]
    assert set(body) == set(shown)
    assert body["step_result"] == shown["step_result"]
    assert body["journey_type"] == shown["journey_type"] and body["tenant_id"] == shown["tenant_id"]


def test_compensation_failing_runbook_names_the_operator_actions() -> None:
    text = (DOCS / "metrics.md").read_text()
    runbook = text[text.index("**SagaCompensationFailing**"):text.index("**SagaRollbackSlow**")]
    for action in ("retry_compensation", "skip_compensation", "retry-compensation", "skip-compensation"):
        assert action in runbook, action
