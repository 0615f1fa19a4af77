<?php
// big.php: a large streamed response for size/streaming tests.
//   ?bytes=N  body length (default 1 MiB = 1048576)
// The body is the 64-byte PATTERN below repeated (byte i is PATTERN[i % 64]), sent in
// 64 KiB chunks, each flushed to php-fpm at once. X-Bytes repeats N.
const PATTERN = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/';
set_time_limit(0);
$bytes = max(0, (int) ($_GET['bytes'] ?? 1048576));
header('Content-Type: application/octet-stream');
header('X-Bytes: ' . $bytes);
while (ob_get_level() > 0) {
    ob_end_flush();
}
$chunk = str_repeat(PATTERN, 65536 / strlen(PATTERN));
for ($left = $bytes; $left > 0; $left -= strlen($chunk)) {
    echo $left >= strlen($chunk) ? $chunk : substr($chunk, 0, $left);
    flush();
}
