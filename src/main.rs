//! The `keyhold` binary: parses the command line and runs the chosen command.

use clap::Parser;
use keyhold::cli::{Cli, run};

#[actix_web::main]
async fn main() {
    keyhold::db::skip_openssl_cleanup_at_exit();
    keyhold::telemetry::tune_allocator();
    keyhold::telemetry::init();
    let cli = Cli::parse();
    let serves = cli.serves();
    match run(cli).await {
        // A server that stopped returns, so that dropping its runtime ends the `pg_dump` or
        // `pg_restore` of a run it gave up on (their handles kill them on drop).
        Ok(()) if serves => {}
        Ok(()) => keyhold::db::exit_now(0),
        Err(error) => {
            eprintln!("keyhold: {error:#}");
            keyhold::db::exit_now(1);
        }
    }
}
