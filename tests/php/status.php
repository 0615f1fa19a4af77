<?php
// status.php: response status and redirects.
//   ?code=N         http_response_code(N); body "status N"
//   ?location=URL   sets a Location header (with no code, PHP itself then sends "Status: 302 Found")
//   both            Location with the explicit status N (e.g. 301 or 201)
header('Content-Type: text/plain');
if (isset($_GET['location'])) {
    header('Location: ' . $_GET['location']);
}
if (isset($_GET['code'])) {
    $code = (int) $_GET['code'];
    http_response_code($code);
    echo "status $code";
} else {
    echo 'status ' . http_response_code();
}
