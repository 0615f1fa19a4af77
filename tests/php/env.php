<?php
// env.php: dumps the CGI environment PHP saw, as one JSON object.
//
// Top level is $_SERVER itself (SCRIPT_NAME, SCRIPT_FILENAME, PATH_INFO, PHP_SELF,
// QUERY_STRING, PHP_AUTH_USER, HTTP_* ...). Two extra keys, which never collide with a
// $_SERVER entry (those win anyway): "_GET" (decoded query parameters) and "_COOKIE".
// Invalid UTF-8 is replaced by U+FFFD instead of failing; slashes are not escaped.
header('Content-Type: application/json');
$out = $_SERVER + ['_GET' => (object) $_GET, '_COOKIE' => (object) $_COOKIE];
echo json_encode((object) $out, JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_SLASHES);
