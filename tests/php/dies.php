<?php
// dies.php: a script that dies mid-output. Sends "partial output\n" (flushed, so status 200
// and the headers are already out), then calls an undefined function: a fatal Error. With
// display_errors off (the harness pins it) the message goes only to FastCGI STDERR
// ("PHP Fatal error:  Uncaught Error: Call to undefined function ..."), the body stays partial.
header('Content-Type: text/plain');
while (ob_get_level() > 0) {
    ob_end_flush();
}
echo "partial output\n";
flush();
this_function_does_not_exist();
echo "never printed\n";
