//! `resource-server`: see `resource-server --help` and `INTERFACE.md`.

#![forbid(unsafe_code)]

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // Initialise OpenSSL before libpq does, without its atexit cleanup (a
    // pool thread still connecting at exit would crash in it).
    openssl::init();
    match resource_server::cli::run(resource_server::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("resource-server: error: {e}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
