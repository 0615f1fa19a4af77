//! The stand-in backend of `cargo xtask demo` when php-fpm cannot be started: the in-tree
//! test responder, answering `/ping` with `pong` (like php-fpm's ping page) and any other
//! script with a small text describing the request. Writes its address to the file named by
//! its first argument, then serves until killed.

use std::time::Duration;

use fcgi_tests::responder::{Behaviour, Responder, script};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address_file = std::env::args().nth(1).ok_or("usage: demo_responder ADDRESS_FILE")?;
    let behaviour = Behaviour::script(|request| {
        if request.param_str("SCRIPT_NAME") == "/ping" {
            script::respond(request.id, "Content-Type: text/plain\r\n\r\npong")
        } else {
            script::echo(request)
        }
    });
    let responder = Responder::start(behaviour).await;
    std::fs::write(&address_file, responder.address_string())?;
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
