"""Draw docs/fanout-trace.svg: the OpenTelemetry spans of one real request that fans out to
three `fetch @async` steps and joins them under a deadline (spec/tracing.md).

The app runs in-process with the SDK's in-memory exporter; the upstreams are a loopback
aiohttp server answering `/users` in 40 ms, `/orders` in 90 ms and `/recs` in 400 ms, so the
`join … @timeout(150)` cuts `recs`. The spans are drawn as a timeline, one row per span in
tree order (a child under its parent), like a trace viewer's waterfall.

Run: python benchmarks/trace_svg.py [OUT.svg]   (default docs/fanout-trace.svg)
"""

from __future__ import annotations

import asyncio
import sys
from html import escape
from pathlib import Path

import httpx
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from webpipe.program import program_from_text
from webpipe.server import build_served, create_app
from webpipe.tracing.otel import OtelTracing

APP = """GET /dashboard/:id
  |> jq: `{ id: .params.id }`
  |> fetch: `UP/users` @async(users)
  |> fetch: `UP/orders` @async(orders)
  |> fetch: `UP/recs` @async(recs)
  |> join: users, orders, recs @timeout(150)
  |> jq: `{ user: .async.users.data.response, recs: .async.recs.type }`
"""
DELAYS_S = {"users": 0.04, "orders": 0.09, "recs": 0.4}
ROW, LABEL_W, BAR_W, TOP = 26, 330, 560, 46


async def record() -> list[ReadableSpan]:
    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(DELAYS_S[request.match_info["name"]])
        return web.json_response({"ok": True})

    upstream = web.Application()
    upstream.router.add_get("/{name}", answer)
    runner = web.AppRunner(upstream)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    env = program_from_text(APP.replace("UP", f"http://127.0.0.1:{port}"))
    app = create_app(build_served(env), tracing=OtelTracing(provider))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        await client.get("/dashboard/7")  # warm: connections, jq compiled
        exporter.clear()
        await client.get("/dashboard/7")
    await env.aclose()
    await runner.cleanup()
    return list(exporter.get_finished_spans())


def tree_order(spans: list[ReadableSpan]) -> list[tuple[int, ReadableSpan]]:
    """(depth, span) in depth-first order, children by start time."""
    ids = {span.context.span_id for span in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        children.setdefault(parent, []).append(span)
    out: list[tuple[int, ReadableSpan]] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            out.append((depth, span))
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return out


def label(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    if "webpipe.async" in attrs:
        return f"{span.name}  @async({attrs['webpipe.async']})"
    return span.name


def colour(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    if span.status.status_code is StatusCode.ERROR:
        return "#d9534f"
    if attrs.get("webpipe.step") == "join":
        return "#f0ad4e"
    if "webpipe.async" in attrs:
        return "#5bc0de"
    return "#6c8ebf" if span.parent is None else "#8fb3e0"


def svg(rows: list[tuple[int, ReadableSpan]]) -> str:
    start = min(span.start_time or 0 for _, span in rows)
    end = max(span.end_time or 0 for _, span in rows)
    scale = BAR_W / max(end - start, 1)
    height = TOP + ROW * len(rows) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_W + BAR_W + 150}" '
             f'height="{height}" font-family="monospace" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="10" y="20" font-size="14" font-weight="bold">GET /dashboard/7: three '
             '@async fetches, join @timeout(150) (OpenTelemetry spans)</text>']
    for ms in range(0, int((end - start) / 1e6) + 1, 25):
        x = LABEL_W + ms * 1e6 * scale
        parts.append(f'<line x1="{x:.1f}" y1="{TOP - 8}" x2="{x:.1f}" y2="{height - 24}" '
                     f'stroke="#eee"/><text x="{x:.1f}" y="{height - 10}" fill="#888" '
                     f'text-anchor="middle">{ms} ms</text>')
    for i, (depth, span) in enumerate(rows):
        y = TOP + i * ROW
        x = LABEL_W + ((span.start_time or 0) - start) * scale
        width = max(((span.end_time or 0) - (span.start_time or 0)) * scale, 1.5)
        ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        note = f" {span.status.description}" if span.status.description else ""
        parts.append(f'<text x="{10 + depth * 14}" y="{y + 14}">{escape(label(span))}</text>'
                     f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{ROW - 8}" '
                     f'rx="3" fill="{colour(span)}"/><text x="{x + width + 4:.1f}" '
                     f'y="{y + 14}" fill="#444">{ms:.1f} ms{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/fanout-trace.svg")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg(tree_order(asyncio.run(record()))))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
