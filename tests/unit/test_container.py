"""The container backend's pure parts: server arguments and image kinds."""

from __future__ import annotations

from harness.infra.container import image_kind, server_arguments
from harness.infra.postgres import SERVER_SETTINGS


def test_config_file_quotes_are_dropped_on_the_command_line() -> None:
    args = server_arguments(
        {"log_line_prefix": "'%m [%p] it''s '", "port": 5433, "fsync": "off", "x": "'"}
    )
    assert args == [
        "-c",
        "log_line_prefix=%m [%p] it's ",
        "-c",
        "port=5433",
        "-c",
        "fsync=off",
        "-c",
        "x='",
    ]


def test_every_shared_setting_becomes_one_argument_pair() -> None:
    args = server_arguments(SERVER_SETTINGS)
    assert args[0::2] == ["-c"] * len(SERVER_SETTINGS)
    assert [a.split("=", 1)[0] for a in args[1::2]] == list(SERVER_SETTINGS)
    assert "log_line_prefix=%m [%p] %q%u@%d app=%a " in args


def test_image_kind_follows_the_official_entrypoint() -> None:
    assert image_kind(["docker-entrypoint.sh"]) == "official"
    assert image_kind("/usr/local/bin/docker-entrypoint.sh") == "official"
    assert image_kind(None) == "binaries"
    assert image_kind([]) == "binaries"
    assert image_kind(["/bin/sh", "-c", "my-entrypoint.sh"]) == "binaries"
