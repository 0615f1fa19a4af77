<?php
// slow.php: sleeps ?ms=N milliseconds (default 1000) before answering "slept N";
// for timeout, cancellation and busy-worker tests.
set_time_limit(0);
$ms = max(0, (int) ($_GET['ms'] ?? 1000));
header('Content-Type: text/plain');
usleep($ms * 1000);
echo "slept $ms";
