"""Fresh request ids (spec/server.md §2): 32 hex digits, never repeated, across the blocks
they are read in; a client's plain `X-Request-Id` is kept, anything else replaced."""

from __future__ import annotations

import os
import re

from webpipe.oplog import request_id


def test_fresh_ids_are_distinct_hex_across_blocks() -> None:
    ids = [request_id({"headers": []}) for _ in range(1000)]  # four blocks of 256
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_child_draws_its_own() -> None:
    request_id({})  # the parent now holds unread ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id must not be the parent's next one
        os.write(write, request_id({}).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child != request_id({})


def test_a_plain_client_id_is_kept() -> None:
    assert request_id({"headers": [(b"X-Request-Id", b"abc-123")]}) == "abc-123"
    forged = request_id({"headers": [(b"x-request-id", b"bad id\n")]})
    assert re.fullmatch(r"[0-9a-f]{32}", forged)
