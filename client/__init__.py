"""HTTP client of the saga-journey gateway, async and sync, with the embedded API's names.

    from saga_journey.client import SagaClient
    with SagaClient("http://127.0.0.1:8080", token) as client:
        saga = client.execute_saga_journey(journey_id, "user_1", {"order": 42})
"""

from __future__ import annotations

from .async_client import AsyncSagaClient
from .sse import SagaEvent
from .sync_client import SagaClient

__all__ = ["AsyncSagaClient", "SagaClient", "SagaEvent"]
