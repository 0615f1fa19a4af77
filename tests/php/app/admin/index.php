<?php
// app/admin/index.php: a directory's own index script (/admin/ runs it, /admin redirects).
header('Content-Type: text/plain');
echo 'admin index, SCRIPT_NAME=' . $_SERVER['SCRIPT_NAME'];
