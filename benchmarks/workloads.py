"""Benchmark workloads: each a webpipe app and the equivalent hand-written Starlette app."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Workload:
    name: str
    title: str
    path: str
    wp: str
    starlette: str
    lua: str = ""  # wrk script (e.g. POST bodies)
    connections: int = 64
    files: dict[str, str] = field(default_factory=dict)
    needs_database: bool = False


HAND_PRELUDE = '''
import orjson
from starlette.applications import Starlette
from starlette.responses import Response, HTMLResponse
from starlette.routing import Route


def js(value, status=200):
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")
'''

W0 = Workload(
    "W0", "GET /hello/:w -> one jq", "/hello/world",
    wp='GET /hello/:w\n  |> jq: `{ hello: .params.w }`\n',
    starlette=HAND_PRELUDE + '''
async def hello(request):
    return js({"hello": request.path_params["w"]})

app = Starlette(routes=[Route("/hello/{w}", hello)])
''')

W1 = Workload(
    "W1", "jq -> handlebars page", "/page/world",
    wp=('GET /page/:w\n  |> jq: `{ title: "Hello", name: .params.w }`\n'
        '  |> handlebars: `<html><head><title>{{title}}</title></head>'
        '<body><h1>{{title}}, {{name}}!</h1></body></html>`\n'),
    starlette=HAND_PRELUDE + '''
import html

async def page(request):
    name = html.escape(request.path_params["w"])
    return HTMLResponse(f"<html><head><title>Hello</title></head><body><h1>Hello, {name}!</h1>"
                        "</body></html>")

app = Starlette(routes=[Route("/page/{w}", page)])
''')

_BODY = ('{"order": {"id": 1234, "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},'
         ' "items": [' + ", ".join(f'{{"sku": "sku-{i}", "qty": {i % 3 + 1}, "price": {i * 1.5}}}'
                                    for i in range(18)) + '], "note": "leave at door"}}')

W2 = Workload(
    "W2", "jq transform of a 1.3 KB POST body", "/orders",
    wp=('POST /orders\n  |> jq: `{ id: .body.order.id, who: .body.order.customer.name, '
        'total: ([.body.order.items[] | .qty * .price] | add), '
        'skus: [.body.order.items[].sku] }`\n'),
    starlette=HAND_PRELUDE + '''
async def orders(request):
    body = orjson.loads(await request.body())
    order = body["order"]
    return js({"id": order["id"], "who": order["customer"]["name"],
               "total": sum(i["qty"] * i["price"] for i in order["items"]),
               "skus": [i["sku"] for i in order["items"]]})

app = Starlette(routes=[Route("/orders", orders, methods=["POST"])])
''',
    lua=('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
         f"wrk.body = [[{_BODY}]]\n"))

W3 = Workload(
    "W3", "three consecutive jq steps", "/three/7",
    wp=('GET /three/:n\n  |> jq: `{ n: .params.n }`\n  |> jq: `{ n: (.n * 2), doubled: true }`\n'
        '  |> jq: `{ result: (.n + 1), doubled: .doubled }`\n'),
    starlette=HAND_PRELUDE + '''
async def three(request):
    n = int(request.path_params["n"]) * 2
    return js({"result": n + 1, "doubled": True})

app = Starlette(routes=[Route("/three/{n}", three)])
''')

W7 = Workload(
    "W7", "lua small table", "/lua/5",
    wp=('GET /lua/:n\n  |> lua: `local out = {} for i = 1, request.params.n do '
        'out[i] = i * i end return { squares = out }`\n'),
    starlette=HAND_PRELUDE + '''
async def squares(request):
    n = int(request.path_params["n"])
    return js({"squares": [i * i for i in range(1, n + 1)]})

app = Starlette(routes=[Route("/lua/{n}", squares)])
''')

W8 = Workload(
    "W8", "handlebars layout + partial block, 20 items", "/list",
    wp=('handlebars layout = `<html><body>{{> @partial-block}}</body></html>`\n'
        'handlebars row = `<li>{{name}} ({{qty}})</li>`\n\n'
        'GET /list\n  |> jq: `{ items: [range(20) | { name: ("item " + tostring), qty: . }] }`\n'
        '  |> handlebars: `{{#> layout}}<ul>{{#each items}}{{> row}}{{/each}}</ul>{{/layout}}`\n'),
    starlette=HAND_PRELUDE + '''
import html

async def listing(request):
    rows = "".join(f"<li>{html.escape('item ' + str(i))} ({i})</li>" for i in range(20))
    return HTMLResponse(f"<html><body><ul>{rows}</ul></body></html>")

app = Starlette(routes=[Route("/list", listing)])
''')

W4 = Workload(
    "W4", "pg one-row select + jq (DATABASE_URL from the environment)", "/user/1",
    wp=('pg userById = `SELECT id, name FROM bench_users WHERE id = $1`\n\n'
        'GET /user/:id\n  |> pg([.params.id]): userById\n'
        '  |> jq: `.data.userById.rows[0]`\n'),
    starlette=HAND_PRELUDE + '''
import os
import asyncpg

pool = None

async def user(request):
    global pool
    if pool is None:
        pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=5, max_size=20)
    row = await pool.fetchrow("SELECT id, name FROM bench_users WHERE id = $1",
                              int(request.path_params["id"]))
    return js(dict(row))

app = Starlette(routes=[Route("/user/{id}", user)])
''',
    needs_database=True)

W9 = Workload(
    "W9", "cache hit vs a hand-written hello", "/cached/world",
    wp=('GET /cached/:w\n  |> cache: `ttl: 600`\n  |> jq: `{ hello: .params.w }`\n'),
    starlette=HAND_PRELUDE + '''
async def hello(request):
    return js({"hello": request.path_params["w"]})

app = Starlette(routes=[Route("/cached/{w}", hello)])
''')

WORKLOADS = [W0, W1, W2, W3, W4, W7, W8, W9]
