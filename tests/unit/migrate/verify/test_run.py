"""The pure parts of `cdc verify`: which filter leaves a table out, when the log reached the position."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdc.position import Position
from migrate.verify.run import capture_setting, log_reached


def test_include_and_exclude_lists_are_whole_name_regular_expressions() -> None:
    assert capture_setting("shop.orders", {}) is None
    assert capture_setting("shop.orders", {"table.include.list": "shop.order"}) == "table.include.list=shop.order"
    assert capture_setting("shop.orders", {"table.include.list": "shop\\.o.*,shop.x"}) is None
    assert capture_setting("shop.orders", {"table.exclude.list": "shop.orders"}) == "table.exclude.list=shop.orders"
    assert capture_setting("shop.orders", {"database.include.list": "other"}) == "database.include.list=other"


def test_the_log_reached_the_position_only_past_it_and_outside_a_snapshot() -> None:
    at = Position.binlog_snapshot("bin.000002", 500)
    assert not log_reached([{"offset": {"file": "bin.000002", "pos": 499}}], at)
    assert log_reached([{"offset": {"file": "bin.000003", "pos": 4, "gtids": "0-1-9"}}], at)
    assert not log_reached([{"offset": {"file": "bin.000003", "pos": 4, "snapshot": True}}], at)
    assert not log_reached([], at)


def test_connect_refusing_the_credentials_is_an_access_error_not_a_log_behind(tmp_path: Path) -> None:
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from cdc.errors import ConnectAccessDenied
    from migrate.verify.run import wait_for_log
    from tests.unit.report.builders import local_spec

    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = local_spec(tmp_path, cdc={"connect_url": f"http://127.0.0.1:{server.server_port}"})
        clock = time.monotonic()
        with pytest.raises(ConnectAccessDenied, match="wants a login \\(HTTP 401\\)"):
            wait_for_log(spec, Position.binlog("bin.000001", 4), timeout=30)
        assert time.monotonic() - clock < 10  # not polled until the deadline
    finally:
        server.shutdown()


def test_cdc_verify_refuses_a_postgres_source_in_one_line(tmp_path: Path) -> None:
    from migrate.errors import DualrunError
    from migrate.verify.run import verify
    from tests.unit.report.builders import local_spec

    spec = local_spec(tmp_path)
    pg = spec.model_copy(update={"source": spec.source.model_copy(update={"kind": "postgres"})})
    with pytest.raises(DualrunError, match="MariaDB/MySQL sources only"):
        verify(pg, wait_seconds=0)
