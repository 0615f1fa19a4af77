"""A small WSGI application served over FastCGI by flup, for the fcgi integration tests.

Started by `cargo xtask test` (xtask/src/flup.rs) with the venv's python:

    python flup_app.py --socket /path/flup-mpx.sock --multiplexed
    python flup_app.py --socket /path/flup.sock --single

flup's WSGIServer listens on the unix socket; `--multiplexed` runs each request in its own
thread (several requests on one connection), `--single` answers a second BEGIN_REQUEST on a busy
connection with END_REQUEST(CANT_MPX_CONN). SIGTERM/SIGINT stop the server.

Routing is a mounted WSGI application's (PEP 3333): the route is PATH_INFO, and an empty PATH_INFO
is the root of the application, whatever SCRIPT_NAME says (flup itself fills an empty PATH_INFO
from REQUEST_URI minus SCRIPT_NAME). So `fcgi post /raw` (SCRIPT_NAME=/raw, no PATH_INFO) reaches
the root handler, as it would on uWSGI, and `fcgi post /raw --mount /` (SCRIPT_NAME="",
PATH_INFO=/raw) reaches /raw. One exception keeps the older tests, which send only
SCRIPT_NAME=/echo (or /sleep, /big, /stderr), working: with an empty PATH_INFO, one of those four
names in SCRIPT_NAME is taken as the route.

Routes, all answering `200 OK` with `Content-Type: text/plain`:

    /  (or empty)    body: "root\n" (the application's root handler)
    /raw             body: the request body, byte for byte (nothing added)
    /environ         body: one line NAME=VALUE for SCRIPT_NAME, PATH_INFO, REQUEST_URI,
                     QUERY_STRING and SCRIPT_FILENAME (VALUE "<absent>" when not sent)

    /echo            body: "query=<QUERY_STRING>\n" then the request body, byte for byte
                     (wsgi.input read fully, CONTENT_LENGTH honoured); headers
                     X-Query-String and X-Body-Length repeat both, so concurrent
                     replies can be matched to their requests
    /md5             body: "md5=<hex>\n", the md5 of the request body (read in 64 KiB pieces)
    /sleep?ms=N      sleeps N milliseconds (at most 60000), then answers "slept N\n";
                     on the multiplexed server other requests proceed meanwhile
    /big?bytes=N     streams N bytes (at most 1 GiB) of a repeating a..z pattern,
                     in 64 KiB chunks, flushed one by one (no Content-Length)
    /stderr?msg=M    writes "M\n" (default "stderr line") to wsgi.errors, answers "body"
    anything else    404 Not Found, "no such route: <path>\n"

A malformed number answers 400 Bad Request.

Both servers serve all three roles of the FastCGI specification (flup's `roles=`); the app
sees the role as FCGI_ROLE and a Filter's FCGI_DATA stream as `fcgi.data` (put there by
RolesServer below: flup keeps both to itself). The Authorizer and Filter roles ignore the route:

    Authorizer       decides on QUERY_STRING, as lighttpd's test authorizer does:
                     "allow"    200: authorized, with Variable-REMOTE_USER: alice,
                                Variable-X-Mixed-Case: Kept and Variable-LEFT-OUT: the names
                                among CONTENT_LENGTH, PATH_INFO, PATH_TRANSLATED, SCRIPT_NAME
                                that were sent ("none"), and a body "dropped\n"
                     "location" 200 and Location: /login (authorized; flup sends a Status
                                line for every answer, so a head without one is the libfcgi
                                peers' to test)
                     "redirect" Status: 302 Found, Location: /login (denied)
                     otherwise  Status: 403 Forbidden, body "denied\n"
    Filter           body: one line NAME=VALUE for FCGI_DATA_LENGTH, FCGI_DATA_LAST_MOD,
                     data_md5 (the md5 of the FCGI_DATA stream read), data_bytes, stdin_md5
                     and stdin_bytes (the same for the request body)
"""

import argparse
import hashlib
import sys
import time
from urllib.parse import parse_qs, unquote

from flup.server.fcgi import WSGIServer
from flup.server.fcgi_base import FCGI_AUTHORIZER, FCGI_FILTER, FCGI_RESPONDER

ROLE_NAMES = {FCGI_RESPONDER: "RESPONDER", FCGI_AUTHORIZER: "AUTHORIZER", FCGI_FILTER: "FILTER"}
# What the specification leaves out of an Authorizer's parameters (section 6.3), in the order
# Variable-LEFT-OUT names them; recorded before flup fills in SCRIPT_NAME and PATH_INFO itself.
AUTHORIZER_LEFT_OUT = ("CONTENT_LENGTH", "PATH_INFO", "PATH_TRANSLATED", "SCRIPT_NAME")


class RolesServer(WSGIServer):
    """flup's WSGIServer serving every role, with the role and a Filter's data in the environ."""

    def handler(self, req):
        req.params["FCGI_ROLE"] = ROLE_NAMES.get(req.role, str(req.role))
        req.params["fcgi.data"] = req.data
        req.params["fcgi.sent"] = tuple(name for name in AUTHORIZER_LEFT_OUT if name in req.params)
        return super().handler(req)

CHUNK = 64 * 1024
MAX_SLEEP_MS = 60_000
MAX_BIG_BYTES = 1 << 30


def query_int(environ, name, default, limit):
    """The integer query parameter `name`, or `default`; ValueError if malformed or out of range."""
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    if not values:
        return default
    number = int(values[0])
    if not 0 <= number <= limit:
        raise ValueError(f"{name}={number} is out of range 0..={limit}")
    return number


def read_body(environ):
    """The whole request body: exactly CONTENT_LENGTH bytes (0 when absent or empty)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    chunks, left = [], length
    while left > 0:
        chunk = stream.read(min(left, CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def text(start_response, status, body, extra=()):
    """Answers `status` with a text/plain `body` (bytes) and a Content-Length."""
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    headers.extend(extra)
    start_response(status, headers)
    return [body]


def stream_big(total):
    """Yields `total` bytes of a..z in CHUNK-sized pieces (flup flushes each piece)."""
    pattern = (b"abcdefghijklmnopqrstuvwxyz" * (CHUNK // 26 + 1))[:CHUNK]
    left = total
    while left > 0:
        piece = pattern[: min(left, CHUNK)]
        left -= len(piece)
        yield piece


# Routes an older test may name in SCRIPT_NAME alone (see the module's docstring).
SCRIPT_NAME_ROUTES = ("/echo", "/sleep", "/big", "/stderr")
ENVIRON_NAMES = ("SCRIPT_NAME", "PATH_INFO", "REQUEST_URI", "QUERY_STRING", "SCRIPT_FILENAME")


def route(environ):
    """The route: PATH_INFO, "/" when it is empty (the application root), except the older
    tests' SCRIPT_NAME-only routes."""
    path = environ.get("PATH_INFO") or ""
    if path:
        return path
    script = environ.get("SCRIPT_NAME") or ""
    return script if script in SCRIPT_NAME_ROUTES else "/"


def md5_of(stream, length):
    """(md5 hex, bytes read) of `length` bytes of `stream`, read in CHUNK-sized pieces."""
    digest, left, total = hashlib.md5(), length, 0
    while left > 0:
        chunk = stream.read(min(left, CHUNK))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
        total += len(chunk)
    return digest.hexdigest(), total


def authorizer(environ, start_response):
    """The Authorizer role (see the module's docstring)."""
    query = environ.get("QUERY_STRING", "")
    if query == "allow":
        sent = ",".join(environ["fcgi.sent"]) or "none"
        headers = [
            ("Variable-REMOTE_USER", "alice"),
            ("Variable-X-Mixed-Case", "Kept"),
            ("Variable-LEFT-OUT", sent),
            ("Content-Type", "text/plain"),
        ]
        start_response("200 OK", headers)
        return [b"dropped\n"]
    if query == "location":
        start_response("200 OK", [("Location", "/login")])
        return [b""]
    if query == "redirect":
        start_response("302 Found", [("Location", "/login"), ("Content-Type", "text/plain")])
        return [b"to /login\n"]
    return text(start_response, "403 Forbidden", b"denied\n")


def filter_role(environ, start_response):
    """The Filter role (see the module's docstring)."""
    data_length = int(environ.get("FCGI_DATA_LENGTH") or 0)
    stdin_md5, stdin_bytes = md5_of(environ["wsgi.input"], int(environ.get("CONTENT_LENGTH") or 0))
    data_md5, data_bytes = md5_of(environ["fcgi.data"], data_length)
    lines = [
        f"FCGI_DATA_LENGTH={environ.get('FCGI_DATA_LENGTH', '<absent>')}",
        f"FCGI_DATA_LAST_MOD={environ.get('FCGI_DATA_LAST_MOD', '<absent>')}",
        f"data_md5={data_md5}",
        f"data_bytes={data_bytes}",
        f"stdin_md5={stdin_md5}",
        f"stdin_bytes={stdin_bytes}",
    ]
    return text(start_response, "200 OK", ("\n".join(lines) + "\n").encode())


def app(environ, start_response):
    role = environ.get("FCGI_ROLE")
    if role == "AUTHORIZER":
        return authorizer(environ, start_response)
    if role == "FILTER":
        return filter_role(environ, start_response)
    path = route(environ)
    query = environ.get("QUERY_STRING", "")
    try:
        if path == "/":
            return text(start_response, "200 OK", b"root\n")
        if path == "/raw":
            return text(start_response, "200 OK", read_body(environ))
        if path == "/environ":
            lines = "".join(f"{name}={environ.get(name, '<absent>')}\n" for name in ENVIRON_NAMES)
            return text(start_response, "200 OK", lines.encode("latin-1"))
        if path == "/echo":
            body = read_body(environ)
            extra = [("X-Query-String", query), ("X-Body-Length", str(len(body)))]
            return text(start_response, "200 OK", b"query=" + query.encode("latin-1") + b"\n" + body, extra)
        if path == "/md5":
            digest, _ = md5_of(environ["wsgi.input"], int(environ.get("CONTENT_LENGTH") or 0))
            return text(start_response, "200 OK", f"md5={digest}\n".encode())
        if path == "/sleep":
            ms = query_int(environ, "ms", 0, MAX_SLEEP_MS)
            time.sleep(ms / 1000)
            return text(start_response, "200 OK", f"slept {ms}\n".encode())
        if path == "/big":
            total = query_int(environ, "bytes", 0, MAX_BIG_BYTES)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return stream_big(total)
        if path == "/stderr":
            values = parse_qs(query).get("msg")
            message = values[0] if values else "stderr line"
            environ["wsgi.errors"].write(message + "\n")
            environ["wsgi.errors"].flush()
            return text(start_response, "200 OK", b"body")
    except ValueError as err:
        return text(start_response, "400 Bad Request", f"bad request: {err}\n".encode())
    return text(start_response, "404 Not Found", f"no such route: {unquote(path)}\n".encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="unix socket path to listen on")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--multiplexed", action="store_true", help="several requests per connection")
    mode.add_argument("--single", action="store_true", help="one request per connection (CANT_MPX_CONN)")
    args = parser.parse_args()
    print(f"flup_app: serving on {args.socket} (multiplexed={args.multiplexed})", file=sys.stderr, flush=True)
    # umask 0o111: the socket is rw for everyone, like php-fpm's listen.mode = 0666.
    roles = (FCGI_RESPONDER, FCGI_AUTHORIZER, FCGI_FILTER)
    RolesServer(app, bindAddress=args.socket, multiplexed=args.multiplexed, umask=0o111, roles=roles).run()


if __name__ == "__main__":
    main()
