#!/bin/sh
# CGI script run by fcgiwrap in the fcgi integration tests (xtask/src/fcgiwrap.rs copies this
# directory to a temp dir, makes the scripts executable, and exports it as FCGI_TEST_CGI_DIR).
# Send SCRIPT_FILENAME=$FCGI_TEST_CGI_DIR/hello.sh. Only shell builtins: fcgiwrap passes the
# script nothing but the FastCGI params as its environment, so there may be no PATH.
printf 'Content-Type: text/plain\r\n'
printf 'X-Request-Method: %s\r\n' "${REQUEST_METHOD:-}"
printf '\r\n'
printf 'Hello from CGI\n'
printf 'QUERY_STRING=%s\n' "${QUERY_STRING:-}"
