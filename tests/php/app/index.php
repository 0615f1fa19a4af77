<?php
// app/index.php: the front controller of a small application, for `fcgi serve`'s tests
// (fcgi-cli/tests/it/serve*.rs). Every path that is not a file goes through here, as with
// Caddy's php_fastcgi or nginx's `try_files $uri $uri/ /index.php?$query_string`.
//
//   /                 an HTML page using /assets/style.css, /assets/app.js and /assets/logo.svg
//   /env              $_SERVER as JSON (plus "_GET" and "_COOKIE")
//   /hello/NAME       "Hello, NAME!"
//   /upload           POST multipart/form-data: JSON with each file's name, size and md5, and $_POST
//   /cookie           counts visits in the cookie "visits" (Set-Cookie), answers "visits=N"
//   /stream?kib=N     N KiB of "x" in 8 KiB pieces, flushed one by one (slowly read by tests)
//   /stderr?msg=M     writes M to the error log (FastCGI STDERR), answers "logged"
//   anything else     404 "no route"
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/' || $path === '/index.php') {
    header('Content-Type: text/html; charset=utf-8');
    echo "<!doctype html>\n<html><head><title>fcgi serve test app</title>\n";
    echo "<link rel=\"stylesheet\" href=\"/assets/style.css\">\n";
    echo "<script src=\"/assets/app.js\" defer></script></head>\n";
    echo "<body><h1 id=\"title\">Front controller</h1>\n";
    echo "<img id=\"logo\" src=\"/assets/logo.svg\" width=\"200\" height=\"200\" alt=\"logo\">\n";
    echo "<p id=\"script\">JavaScript did not run</p></body></html>\n";
} elseif ($path === '/env') {
    header('Content-Type: application/json');
    $out = $_SERVER + ['_GET' => (object) $_GET, '_COOKIE' => (object) $_COOKIE];
    echo json_encode((object) $out, JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_SLASHES);
} elseif (preg_match('#^/hello/([A-Za-z0-9]+)$#', $path, $m)) {
    header('Content-Type: text/plain');
    echo "Hello, {$m[1]}!";
} elseif ($path === '/upload' && $_SERVER['REQUEST_METHOD'] === 'POST') {
    header('Content-Type: application/json');
    $files = [];
    foreach ($_FILES as $field => $file) {
        $files[$field] = [
            'name' => $file['name'],
            'size' => $file['size'],
            'error' => $file['error'],
            'md5' => $file['error'] === UPLOAD_ERR_OK ? md5_file($file['tmp_name']) : null,
        ];
    }
    echo json_encode(['files' => $files, 'post' => $_POST]);
} elseif ($path === '/cookie') {
    $visits = (int) ($_COOKIE['visits'] ?? 0) + 1;
    setcookie('visits', (string) $visits, ['path' => '/', 'httponly' => true, 'samesite' => 'Lax']);
    header('Content-Type: text/plain');
    echo "visits=$visits";
} elseif ($path === '/stream') {
    header('Content-Type: application/octet-stream');
    $kib = (int) ($_GET['kib'] ?? 1024);
    $piece = str_repeat('x', 8192);
    for ($i = 0; $i < intdiv($kib, 8); $i++) {
        echo $piece;
        flush();
    }
} elseif ($path === '/stderr') {
    error_log($_GET['msg'] ?? 'no message');
    header('Content-Type: text/plain');
    echo 'logged';
} else {
    http_response_code(404);
    header('Content-Type: text/plain');
    echo 'no route';
}
