"""A plain WSGI application (PEP 3333, standard library only) that uWSGI serves over FastCGI
(`uwsgi --fastcgi-socket`) in the real-peer matrix (xtask/src/peers.rs,
fcgi-cli/tests/it/peer_matrix.rs).

Routes on PATH_INFO, as every mounted application does (send `--mount /`):

    /echo            body "query=<QUERY_STRING>\\n"
    /md5             body "md5=<hex>\\n": the md5 of the request body, read in 64 KiB pieces
    /big?bytes=N     N bytes (at most 1 GiB) of a..z, in 64 KiB pieces, no Content-Length
    /sleep?ms=N      sleeps N ms (at most 60000), then "slept N\\n"
    anything else    404 "no such route"

uWSGI's FastCGI side serves every role as a Responder (FCGI_ROLE is passed on as a variable):
an Authorizer or Filter request reaches the same routes (REQUEST_URI's path when PATH_INFO is
empty), and FCGI_DATA is not read.
"""

import hashlib
import time
from urllib.parse import parse_qs

CHUNK = 64 * 1024


def number(environ, name, limit):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    value = int(values[0]) if values else 0
    if not 0 <= value <= limit:
        raise ValueError(f"{name} out of range")
    return value


def md5_of_body(environ):
    left = int(environ.get("CONTENT_LENGTH") or 0)
    digest = hashlib.md5()
    stream = environ["wsgi.input"]
    while left > 0:
        chunk = stream.read(min(left, CHUNK))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def big(total):
    pattern = (b"abcdefghijklmnopqrstuvwxyz" * (CHUNK // 26 + 1))[:CHUNK]
    while total > 0:
        piece = pattern[: min(total, CHUNK)]
        total -= len(piece)
        yield piece


def application(environ, start_response):
    path = environ.get("PATH_INFO") or environ.get("REQUEST_URI", "/").split("?", 1)[0]
    plain = [("Content-Type", "text/plain")]
    try:
        if path == "/echo":
            start_response("200 OK", plain)
            return [f"query={environ.get('QUERY_STRING', '')}\n".encode("latin-1")]
        if path == "/md5":
            start_response("200 OK", plain)
            return [f"md5={md5_of_body(environ)}\n".encode()]
        if path == "/big":
            total = number(environ, "bytes", 1 << 30)
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return big(total)
        if path == "/sleep":
            ms = number(environ, "ms", 60_000)
            time.sleep(ms / 1000)
            start_response("200 OK", plain)
            return [f"slept {ms}\n".encode()]
    except ValueError as err:
        start_response("400 Bad Request", plain)
        return [f"bad request: {err}\n".encode()]
    start_response("404 Not Found", plain)
    return [b"no such route\n"]
