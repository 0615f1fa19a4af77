<?php
// headers.php: several response headers, including a repeated one:
//   Content-Type: text/plain;charset=UTF-8
//   Set-Cookie: a=1; path=/
//   Set-Cookie: b=2; path=/
//   X-Test: 1
//   Cache-Control: no-store
// Body: "headers".
header('Content-Type: text/plain');
header('Set-Cookie: a=1; path=/', false);
header('Set-Cookie: b=2; path=/', false);
header('X-Test: 1');
header('Cache-Control: no-store');
echo 'headers';
