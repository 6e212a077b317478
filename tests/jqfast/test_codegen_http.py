"""Generated jq functions over HTTP: a real `webpipe serve` answers W8's and W2's routes,
a runtime error and an assignment byte for byte as the same server does with every jq
program on libjq (`WEBPIPE_JQ_LIBJQ=1`)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.hostile.harness import serve
from webpipe.jqlib import FORCE_LIBJQ_ENV

W8 = '{ items: [range(20) | { name: ("item " + tostring), qty: . }] }'
W2 = ("{ id: .body.order.id, who: .body.order.customer.name, total: ([.body.order.items[]"
      " | .qty * .price] | add), skus: [.body.order.items[].sku] }")
APP = f"""GET /w8
  |> jq: `{W8}`

POST /w2
  |> jq: `{W2}`

GET /number/:x
  |> jq: `{{n: (.params.x | tonumber), twice: ((.params.x | tonumber) * 2)}}`

GET /assign
  |> jq: `.query.seen = true | .query.trace += "!" | .query`
"""
ORDER = {"order": {"id": 7, "customer": {"name": "Ada é"}, "items": [
    {"sku": f"sku-{i}", "qty": i % 4, "price": [0.1, 2, 1.5, 1e17][i % 4]} for i in range(18)]}}
REQUESTS = [("GET", "/w8", None), ("POST", "/w2", ORDER), ("POST", "/w2", {"order": 1}),
            ("GET", "/number/1.50", None), ("GET", "/number/abc", None),
            ("GET", "/assign?trace=x", None)]


async def answers(tmp_path: Path) -> list[tuple[int, bytes]]:
    found = []
    async with serve(tmp_path, APP) as served, httpx.AsyncClient(base_url=served.base) as client:
        for method, path, body in REQUESTS:
            content = None if body is None else json.dumps(body)
            response = await client.request(method, path, content=content, timeout=30.0,
                                            headers={"content-type": "application/json"})
            found.append((response.status_code, response.content))
        await served.stop()
    return found


async def test_generated_routes_answer_as_libjq_does(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FORCE_LIBJQ_ENV, raising=False)
    fast = await answers(tmp_path)
    monkeypatch.setenv(FORCE_LIBJQ_ENV, "1")  # the served process inherits it
    libjq = await answers(tmp_path)  # the same app.wp: error locations name one file
    assert fast == libjq
    statuses = [status for status, _ in fast]
    assert statuses[0] == statuses[1] == statuses[3] == statuses[5] == 200
    assert statuses[2] >= 400 and statuses[4] >= 400  # jq errors, same envelope both ways
    assert json.loads(fast[0][1])["items"][19] == {"name": "item 19", "qty": 19}
    assert json.loads(fast[1][1])["who"] == "Ada é"
    assert json.loads(fast[5][1]) == {"trace": "x!", "seen": True}
