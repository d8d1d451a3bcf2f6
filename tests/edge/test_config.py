"""`tribune edge-config`: what it writes, what it refuses, and that nginx accepts it."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from tests.edge.conftest import Origin, write_config
from tribune.admission.pow import pow_key
from tribune.admission.tokens import derive_key
from tribune.cli import main as tribune_main
from tribune.edge import EdgeConfig, EdgeConfigError, publish_key
from tribune.edge import Origin as OriginAddress
from tribune.edge.config import Route, origin_routes, path_pattern, publish_key_digest, ticket_key


def test_generated_config_passes_nginx_t(origin: Origin, nginx: str, tmp_path: Path):
    """`tribune edge-config` as an operator runs it, with the defaults: nginx -t accepts it."""
    (tmp_path / "cache").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIBUNE_")}
    env["TRIBUNE_SECRET_KEY"] = origin.secret.decode()
    tribune = Path(sys.executable).parent / "tribune"
    args = ["--out", str(tmp_path / "nginx.conf"), "--cache-dir", str(tmp_path / "cache")]
    args += ["--marks-dir", str(tmp_path)]  # nginx -t makes it; /run would keep it
    made = subprocess.run(
        [tribune, "edge-config", *args, "--pid", str(tmp_path / "nginx.pid")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    assert "nginx -t -c" in made.stdout
    done = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
    assert "[warn]" not in done.stderr
    # It stands alone: the njs script is beside it, the module loaded by path.
    text = (tmp_path / "nginx.conf").read_text()
    assert f"js_import tribune from {tmp_path / 'tribune-edge.js'};" in text
    assert "load_module /usr/lib/nginx/modules/ngx_http_js_module.so;" in text
    # The stream is on by default: nchan is loaded too.
    assert "load_module /usr/lib/nginx/modules/ngx_nchan_module.so;" in text


def test_only_the_derived_key_is_written(origin: Origin, tmp_path: Path):
    """The edge gets the listener-token, ticket and proof-of-work keys, never the secret,
    in a file only its owner reads."""
    assert write_config(origin, tmp_path, 8089) == 0
    conf = tmp_path / "nginx.conf"
    text = conf.read_text()
    script = (tmp_path / "tribune-edge.js").read_text()
    assert origin.secret.decode() not in text + script
    assert origin.secret.hex() not in text + script
    assert derive_key(origin.secret, "listener-token").hex() in text
    assert ticket_key(origin.secret) == derive_key(origin.secret, "queue-ticket")
    assert f"js_var $tribune_ticket_key {ticket_key(origin.secret).hex()};" in text
    assert pow_key(origin.secret) == derive_key(origin.secret, "pow-seed")
    assert f"js_var $tribune_pow_key {pow_key(origin.secret).hex()};" in text
    assert f"js_var $tribune_ticket_ttl {origin.settings.waiting_ticket_ttl_s};" in text
    # Of the publish key, only its SHA-256: the file cannot be used to publish.
    key = derive_key(origin.secret, "edge-publish")
    assert publish_key(origin.secret) == key
    assert key.hex() not in text + script
    assert f"js_var $tribune_publish_key_sha256 {publish_key_digest(key)};" in text
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    # The token travels to the origin in the path; the cache key never contains it.
    assert "proxy_cache_key $tribune_cache_key;" in text
    assert "proxy_cache_key $uri;" in text  # the room state: one document for everyone


def test_without_a_secret_it_writes_nothing(tmp_path: Path, monkeypatch, capsys):
    """No TRIBUNE_SECRET_KEY and no data/secret.key: refuse, rather than invent a secret
    that would make every listener token fail at the edge."""
    for name in [k for k in os.environ if k.startswith("TRIBUNE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TRIBUNE_DATA_DIR", str(tmp_path / "data"))
    code = tribune_main(["edge-config", "--out", str(tmp_path / "nginx.conf")])
    assert code == 2
    assert "TRIBUNE_SECRET_KEY" in capsys.readouterr().err
    assert not (tmp_path / "nginx.conf").exists()
    assert not (tmp_path / "data" / "secret.key").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--origin", "https://origin:8000"], "only http://"),
        (["--origin", "http://origin:8000/api"], "scheme://host:port only"),
        (["--cache-dir", "/var/cache/x;evil"], "may only contain"),
        (["--listen", "0.0.0.0:80; include /etc/passwd"], "listen"),
        (["--rate", "0"], "rate must be at least 1"),
        (["--user", "www-data; daemon off"], "user"),
        (["--stream-conns", "0"], "stream_conns must be at least 1"),
        (["--stream-conns", "70000"], "at most 65535"),
        (["--token-streams", "0"], "token_streams must be at least 1"),
        (["--token-streams", "70000"], "at most 65535"),
        (["--join-rate", "0"], "join_rate must be at least 1"),
        (["--join-burst", "-1"], "join_burst must not be negative"),
        (["--token-rate", "0"], "token_rate must be at least 1"),
        (["--space-joins", "0"], "space_joins must be at least 1"),
        (["--worker-priority", "-21"], "worker_priority must be between -20 and 19"),
        (["--space-joins", "70000"], "at most 65535"),
        (["--control-origin", "http://c:1/x"], "scheme://host:port only"),
        (["--nchan-module", "/x.so; evil"], "may only contain"),
    ],
)
def test_refuses_what_would_break_or_inject(
    origin: Origin, tmp_path: Path, capsys, flags: list[str], message: str
):
    assert write_config(origin, tmp_path, 8089, *flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "nginx.conf").exists()


def test_several_origins_share_the_api_and_one_makes_the_audio(origin: Origin, tmp_path: Path):
    """Control calls go to any origin (an upstream with keepalive); /hls/ to the media origin."""
    flags = ["--origin", "http://10.0.0.2:8000", "--media-origin", "http://10.0.0.9:8001"]
    assert write_config(origin, tmp_path, 8089, *flags) == 0
    text = (tmp_path / "nginx.conf").read_text()
    api = re.search(r"upstream tribune_api \{(.*?)\}", text, re.S)
    media = re.search(r"upstream tribune_media \{(.*?)\}", text, re.S)
    assert api
    assert media
    assert "127.0.0.1" in api.group(1)
    assert "10.0.0.2:8000" in api.group(1)
    assert "keepalive" in api.group(1)
    assert "10.0.0.9:8001" in media.group(1)
    assert "keepalive" in media.group(1)
    assert "10.0.0.2" not in media.group(1)


def test_writes_go_to_control_origins_when_there_are_some(origin: Origin, tmp_path: Path):
    """--control-origin: an upstream of its own for every write but the crowd's (location
    / by method); without it, the same origins serve both."""

    def upstreams(directory: Path, *flags: str) -> tuple[str, str]:
        directory.mkdir()
        assert write_config(origin, directory, 8089, *flags) == 0
        text = (directory / "nginx.conf").read_text()
        api = re.search(r"upstream tribune_api \{(.*?)\}", text, re.S)
        control = re.search(r"upstream tribune_control \{(.*?)\}", text, re.S)
        assert api
        assert control
        assert "proxy_pass http://$tribune_lane;" in text
        assert re.search(r"map \$request_method \$tribune_lane \{[^}]*GET tribune_api;", text)
        return api.group(1), control.group(1)

    api, control = upstreams(tmp_path / "apart", "--control-origin", "http://10.0.0.7:8000")
    assert "10.0.0.7:8000" in control
    assert "127.0.0.1" not in control
    assert "10.0.0.7" not in api
    api, control = upstreams(tmp_path / "together")
    assert re.findall(r"server (\S+)", api) == re.findall(r"server (\S+)", control)


def test_a_spaces_joins_in_flight_are_capped(origin: Origin, tmp_path: Path):
    assert (
        write_config(origin, tmp_path, 8089, "--space-joins", "12", "--worker-priority", "-5") == 0
    )
    text = (tmp_path / "nginx.conf").read_text()
    assert "\nworker_priority -5;\n" in text
    for name in ("@tribune_join", "@tribune_join_ticket"):
        block = re.search(rf"location {name} \{{(.*?)\}}", text, re.S)
        assert block
        assert "limit_conn tribune_space_joins 12;" in block.group(1)
        assert "error_page 503 = @tribune_join_busy;" in block.group(1)


def test_without_the_stream_no_nchan(origin: Origin, nginx: str, tmp_path: Path):
    """--no-stream: no nchan module (it need not be installed), no publish key, and nginx -t
    accepts it."""
    (tmp_path / "cache").mkdir()
    flags = ["--no-stream", "--nchan-module", "/nonexistent/nchan.so"]
    assert write_config(origin, tmp_path, 8089, *flags) == 0
    text = (tmp_path / "nginx.conf").read_text()
    assert "nchan" not in text
    assert "tribune_publish_key_sha256" not in text
    assert "location /listen/ {" in text
    done = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_stream_needs_the_publish_key():
    def config(**fields: Any) -> EdgeConfig:
        origin = OriginAddress("a", 1)
        return EdgeConfig((origin,), origin, b"k" * 32, b"t" * 32, b"w" * 32, Path("/c"), **fields)

    with pytest.raises(EdgeConfigError, match="publish key"):
        config()
    with pytest.raises(EdgeConfigError, match="publish key"):
        config(publish_key=b"short")
    assert not config(stream=False).stream
    assert config(publish_key=b"p" * 32).stream


def test_origin_addresses():
    assert str(OriginAddress.parse("http://[::1]:8000")) == "[::1]:8000"
    assert str(OriginAddress.parse("origin.internal")) == "origin.internal:80"
    with pytest.raises(EdgeConfigError):
        EdgeConfig(
            origins=(),
            media_origin=OriginAddress("a", 1),
            listener_key=b"k" * 32,
            ticket_key=b"t" * 32,
            pow_key=b"w" * 32,
            cache_dir=Path("/c"),
        )


def test_the_new_limits_are_written(origin: Origin, tmp_path: Path):
    """--join-rate/--join-burst per address on joins, --token-rate/--token-burst per
    listener token on heartbeats, --token-streams per token on the stream."""
    flags = ["--join-rate", "7", "--join-burst", "9", "--token-rate", "2", "--token-burst", "4"]
    assert write_config(origin, tmp_path, 8089, *flags, "--token-streams", "6") == 0
    text = (tmp_path / "nginx.conf").read_text()
    assert "zone=tribune_joins:64m rate=7r/s;" in text
    assert "limit_req zone=tribune_joins burst=9 nodelay;" in text
    assert "limit_req_zone $tribune_bearer_listener zone=tribune_tokens:64m rate=2r/s;" in text
    assert "limit_req zone=tribune_tokens burst=4 nodelay;" in text
    assert "limit_conn tribune_token_streams 6;" in text
    defaults = tmp_path / "defaults"
    defaults.mkdir()
    assert write_config(origin, defaults, 8089) == 0
    text = (defaults / "nginx.conf").read_text()
    assert "zone=tribune_joins:64m rate=5r/s;" in text
    assert "limit_req zone=tribune_joins burst=20 nodelay;" in text
    assert "zone=tribune_tokens:64m rate=1r/s;" in text
    assert "limit_conn tribune_token_streams 3;" in text


def test_the_allow_list_is_the_apps_route_table(origin: Origin, tmp_path: Path):
    """Every route of the app is in the map, under each of its methods, and under its set
    of methods for the 405; nothing else is."""
    assert write_config(origin, tmp_path, 8089) == 0
    text = (tmp_path / "nginx.conf").read_text()
    lines = re.findall(r'^\s+"~\^(\[\^ \]\+|[A-Z]+) \(\?:([^"]*)\)\$" ("[^"]*"|ok);$', text, re.M)
    ok = {m: set(alt.split("|")) for m, alt, value in lines if value == "ok"}
    allow = {value: set(alt.split("|")) for m, alt, value in lines if value != "ok"}
    assert "/api/spaces/[^/]+/join" in ok["POST"]
    assert "/api/spaces/[^/]+/join" not in ok["GET"]
    assert {"/api/spaces", "/api/spaces/[^/]+/admission", "/"} <= ok["GET"]
    assert "/api/spaces" in ok["POST"]
    assert "/static/.+" in ok["HEAD"]
    assert "/api/spaces" in allow['"GET, POST"']
    assert "/api/spaces/[^/]+/heartbeat" in allow['"POST"']
    assert "/api/operator/attack-mode" in ok["PUT"]
    assert "wp-login" not in text


def test_marks_are_kept_in_memory_and_shared_by_a_deployments_edges(origin: Origin, tmp_path: Path):
    """Burned proofs of work and admitted tickets: two directories nginx makes in
    --marks-dir (/run by default), named after the deployment: two edges of one origin on
    one machine share them (a solution spent through one is refused by the other); another
    deployment's edges (another secret) keep apart."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a", "b"):
        flags = ["--cache-dir", str(tmp_path / name / "cache"), "--marks-dir", str(tmp_path)]
        assert write_config(origin, tmp_path / name, 8089, *flags) == 0
    found = [
        re.findall(
            r"^    (?:fastcgi|uwsgi)_temp_path (\S+);",
            (tmp_path / n / "nginx.conf").read_text(),
            re.M,
        )
        for n in ("a", "b")
    ]
    assert all(len(paths) == 2 for paths in found)
    assert all(Path(p).parent == tmp_path for paths in found for p in paths)
    assert found[0] == found[1]
    assert len(set(found[0])) == 2  # proofs of work and tickets apart

    def marks(ticket_key: bytes) -> tuple[Path, Path]:
        return EdgeConfig(
            (OriginAddress("a", 1),), OriginAddress("a", 1), b"k" * 32, ticket_key, b"w" * 32,
            Path("/var/cache/tribune-edge"), stream=False,
        ).marks()  # fmt: skip

    assert all(p.parent == Path("/run") for p in marks(b"t" * 32))
    assert not set(marks(b"t" * 32)) & set(marks(b"u" * 32))


def test_routes_from_an_app():
    """{param} is one path segment, {param:path} any rest, {param:int} digits; routes of
    one path share a line; a static mount is its prefix, for GET and HEAD."""
    app = FastAPI()
    router = APIRouter(prefix="/api")

    @router.get("/things/{thing_id}")
    def get_thing(thing_id: str) -> None: ...

    @router.delete("/things/{thing_id}")
    def delete_thing(thing_id: str) -> None: ...

    @router.get("/files/{rest:path}")
    def get_file(rest: str) -> None: ...

    @router.get("/pages/{n:int}/v1.json")
    def get_page(n: int) -> None: ...

    app.include_router(router)
    app.mount("/assets", StaticFiles(directory=Path(__file__).parent), name="assets")
    routes = {r.pattern: r.methods for r in origin_routes(app)}
    assert routes["^/api/things/[^/]+$"] == {"GET", "DELETE"}
    assert routes["^/api/files/.+$"] == {"GET"}
    assert routes[r"^/api/pages/[0-9]+/v1\.json$"] == {"GET"}
    assert routes["^/assets/.+$"] == {"GET", "HEAD"}
    assert path_pattern("/a.b/{x}") == r"^/a\.b/[^/]+$"


@pytest.mark.parametrize(
    "pattern",
    ['^/x" ok; include /etc/passwd; "$', "^/x$ ;", "/x$", "^/x", "^/a b$", "^/$x$", "^/{x}$"],
)
def test_a_route_cannot_inject(pattern: str):
    """What goes into the map is a quoted regex: nothing can close the quote or the line."""
    with pytest.raises(EdgeConfigError, match="route"):
        Route(pattern)
    with pytest.raises(EdgeConfigError, match="method"):
        Route("^/x$", frozenset({"GET; evil"}))
    with pytest.raises(EdgeConfigError, match="route path"):
        path_pattern('/x"/{y}')
