<?php
// echo.php: echoes the request body (php://input) verbatim, with headers describing it:
//   X-Content-Length  CONTENT_LENGTH as PHP saw it ("none" when the param was absent)
//   X-Body-Length     bytes actually read from php://input
//   X-Method          REQUEST_METHOD
//   X-Content-Type    CONTENT_TYPE ("none" when absent)
// Note: PHP consumes multipart/form-data bodies itself (php://input is then empty);
// send other content types to get the body back.
$body = file_get_contents('php://input');
if ($body === false) {
    $body = '';
}
header('Content-Type: application/octet-stream');
header('X-Content-Length: ' . ($_SERVER['CONTENT_LENGTH'] ?? 'none'));
header('X-Body-Length: ' . strlen($body));
header('X-Method: ' . ($_SERVER['REQUEST_METHOD'] ?? 'none'));
header('X-Content-Type: ' . ($_SERVER['CONTENT_TYPE'] ?? 'none'));
echo $body;
