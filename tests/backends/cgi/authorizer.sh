#!/bin/sh
# An Authorizer (FastCGI specification section 6.3) run by fcgiwrap (libfcgi) in the fcgi
# integration tests: send SCRIPT_FILENAME=$FCGI_TEST_CGI_DIR/authorizer.sh with FCGI role
# AUTHORIZER (`fcgi request --role authorizer`). It decides on QUERY_STRING, as lighttpd's
# test authorizer (tests/fcgi-auth.c) does, and never sends a Status line for "authorized":
#   allow     Variable-REMOTE_USER: bob, Variable-ROLE: $FCGI_ROLE (set by libfcgi) and
#             Variable-LEFT-OUT: those of CONTENT_LENGTH, PATH_INFO, PATH_TRANSLATED,
#             SCRIPT_NAME that were sent ("none"); no Status line: authorized
#   location  Location: /login alone: still authorized (lighttpd ignores it without Status)
#   redirect  Status: 302 Found and Location: /login: denied
#   else      Status: 403 Forbidden, body "denied"
# Run without FCGI_ROLE (as a plain CGI script, by lighttpd's mod_cgi once lighttpd authorized
# the request with this script), it prints the variables it was given instead.
# Only shell builtins (fcgiwrap gives the script no PATH).
if [ -z "${FCGI_ROLE:-}" ]; then
    # Not an Authorizer request: run as a plain CGI script by lighttpd's mod_cgi after lighttpd
    # authorized the request with this same script (xtask/src/peers.rs). Show the variables
    # lighttpd passed on from the Authorizer's Variable-* headers.
    printf 'Content-Type: text/plain\r\n\r\n'
    # (lighttpd names Variable-LEFT-OUT's variable LEFT_OUT in a CGI environment.)
    printf 'REMOTE_USER=%s\nROLE=%s\nLEFT_OUT=%s\n' "${REMOTE_USER:-}" "${ROLE:-}" "${LEFT_OUT:-}"
    exit 0
fi
sent=""
[ -n "${CONTENT_LENGTH+x}" ] && sent="$sent,CONTENT_LENGTH"
[ -n "${PATH_INFO+x}" ] && sent="$sent,PATH_INFO"
[ -n "${PATH_TRANSLATED+x}" ] && sent="$sent,PATH_TRANSLATED"
[ -n "${SCRIPT_NAME+x}" ] && sent="$sent,SCRIPT_NAME"
sent="${sent#,}"
case "${QUERY_STRING:-}" in
    allow)
        printf 'Variable-REMOTE_USER: bob\r\n'
        printf 'Variable-ROLE: %s\r\n' "${FCGI_ROLE:-}"
        printf 'Variable-LEFT-OUT: %s\r\n\r\n' "${sent:-none}"
        ;;
    location) printf 'Location: /login\r\n\r\n' ;;
    redirect) printf 'Status: 302 Found\r\nLocation: /login\r\n\r\n' ;;
    *) printf 'Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\ndenied\n' ;;
esac
