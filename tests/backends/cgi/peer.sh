#!/bin/sh
# The routes of the real-peer matrix (fcgi-cli/tests/it/peer_matrix.rs) for fcgiwrap, chosen
# by the start of QUERY_STRING, "r=ROUTE" (send SCRIPT_FILENAME=$FCGI_TEST_CGI_DIR/peer.sh):
#   r=echo...      body "query=<QUERY_STRING>\n"
#   r=md5          body "md5=<hex>\n": the md5 of the request body (stdin, CONTENT_LENGTH bytes)
#   r=big&bytes=N  N bytes (any content)
#   r=sleep&ms=N   sleeps N ms (whole seconds and milliseconds), then "slept N\n"
#   r=auth...      an Authorizer: "allow" in the query answers no Status line and
#                  Variable-REMOTE_USER: erin (authorized), else 403
# fcgiwrap gives the script no PATH: programs are named by their absolute paths.
query="${QUERY_STRING:-}"
arg() { # the value of $1 in the query
    value="${query#*"$1"=}"
    [ "$value" = "$query" ] && value=0
    printf '%s' "${value%%&*}"
}
case "$query" in
    r=echo*)
        printf 'Content-Type: text/plain\r\n\r\nquery=%s\n' "$query"
        ;;
    r=md5*)
        sum=$(/usr/bin/head -c "${CONTENT_LENGTH:-0}" | /usr/bin/md5sum)
        printf 'Content-Type: text/plain\r\n\r\nmd5=%s\n' "${sum%% *}"
        ;;
    r=big*)
        printf 'Content-Type: application/octet-stream\r\n\r\n'
        /usr/bin/head -c "$(arg bytes)" /dev/zero
        ;;
    r=sleep*)
        ms=$(arg ms)
        /bin/sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        printf 'Content-Type: text/plain\r\n\r\nslept %s\n' "$ms"
        ;;
    r=auth*allow*)
        printf 'Variable-REMOTE_USER: erin\r\n\r\n'
        ;;
    r=auth*)
        printf 'Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\ndenied\n'
        ;;
    *)
        printf 'Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno such route\n'
        ;;
esac
