<?php
// peer.php: the routes of the real-peer matrix (fcgi-cli/tests/it/peer_matrix.rs) for the
// directory-of-scripts peers php-fpm and php-cgi, chosen by ?r=ROUTE:
//   r=echo       body "query=<QUERY_STRING>\n"
//   r=md5        body "md5=<hex>\n": the md5 of the request body (php://input)
//   r=big        &bytes=N: N bytes of a..z in 64 KiB pieces, each flushed
//   r=sleep      &ms=N: sleeps N ms, then "slept N\n"
// php-fpm and php-cgi run an Authorizer or Filter request as a Responder: r=auth answers 200
// (authorized) with "Variable-REMOTE_USER: dave" when the query holds "allow", else 403; a
// Filter's FCGI_DATA is never seen by the script.
set_time_limit(0);
$route = $_GET['r'] ?? '';
header('Content-Type: text/plain');
switch ($route) {
    case 'echo':
        echo 'query=' . ($_SERVER['QUERY_STRING'] ?? '') . "\n";
        break;
    case 'md5':
        $ctx = hash_init('md5');
        $in = fopen('php://input', 'rb');
        while (!feof($in)) {
            hash_update($ctx, fread($in, 65536));
        }
        echo 'md5=' . hash_final($ctx) . "\n";
        break;
    case 'big':
        header('Content-Type: application/octet-stream');
        while (ob_get_level() > 0) {
            ob_end_flush();
        }
        $chunk = substr(str_repeat('abcdefghijklmnopqrstuvwxyz', 2521), 0, 65536);
        for ($left = max(0, (int) ($_GET['bytes'] ?? 0)); $left > 0; $left -= 65536) {
            echo $left >= 65536 ? $chunk : substr($chunk, 0, $left);
            flush();
        }
        break;
    case 'sleep':
        $ms = max(0, (int) ($_GET['ms'] ?? 0));
        usleep($ms * 1000);
        echo "slept $ms\n";
        break;
    case 'auth':
        if (isset($_GET['allow'])) {
            header('Variable-REMOTE_USER: dave');
        } else {
            http_response_code(403);
            echo "denied\n";
        }
        break;
    default:
        http_response_code(404);
        echo "no such route\n";
}
