//! The `keyhold` binary: parses the command line and runs the chosen command.

use clap::Parser;
use keyhold::cli::{Cli, run};

#[actix_web::main]
async fn main() {
    keyhold::db::skip_openssl_cleanup_at_exit();
    keyhold::telemetry::tune_allocator();
    keyhold::telemetry::init();
    let code = match run(Cli::parse()).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("keyhold: {error:#}");
            1
        }
    };
    keyhold::db::exit_now(code);
}
