<?php
// stderr.php: writes ?msg= (default "something on stderr") with error_log(), which the
// harness's php-fpm sends on the request's FastCGI STDERR stream, and prints "body".
header('Content-Type: text/plain');
error_log($_GET['msg'] ?? 'something on stderr');
echo 'body';
