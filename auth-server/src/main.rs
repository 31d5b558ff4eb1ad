//! `auth-server`: see `auth-server --help` and `INTERFACE.md`.

#![forbid(unsafe_code)]

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = auth_server::cli::Cli::parse();
    match auth_server::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("auth-server: error: {}", e.0);
            }
            std::process::ExitCode::FAILURE
        }
    }
}
