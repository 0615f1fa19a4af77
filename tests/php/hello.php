<?php
// hello.php: the smallest response. Body is exactly "Hello, world!" (no newline),
// Content-Type text/plain (PHP appends ";charset=UTF-8").
header('Content-Type: text/plain');
echo 'Hello, world!';
