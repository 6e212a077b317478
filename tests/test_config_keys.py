"""Every config key a middleware reads is one `webpipe check` knows, so `check` never warns
"unknown key ... (ignored)" about a key that is in fact read (rateLimit's `failOpen` was)."""

from __future__ import annotations

import re
from pathlib import Path

from webpipe.check import CONFIG_KEYS

READ = re.compile(r'config_(?:bool|int|str|float)\(\w+, "(\w+)"')
MIDDLEWARE = Path(__file__).resolve().parents[1] / "webpipe" / "middleware"


def test_keys_read_by_middleware_are_known_to_check() -> None:
    read = {key for path in MIDDLEWARE.glob("*.py") for key in READ.findall(path.read_text())}
    assert {"failOpen", "sessionTtl", "maxPoolSize"} <= read  # the scan finds the readers
    known = set().union(*CONFIG_KEYS.values())
    assert sorted(read - known) == []
