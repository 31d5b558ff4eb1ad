//! `auth-server`: see `auth-server --help` and `INTERFACE.md`.

#![forbid(unsafe_code)]

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // Initialise OpenSSL before libpq does, without its atexit cleanup: the
    // pool's background thread may still be opening a TLS connection when a
    // one-shot command exits, and the cleanup pulled OpenSSL's state from
    // under it (SIGSEGV at exit).
    openssl::init();
    let cli = match auth_server::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to standard output and succeed.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // Bad usage is one line too, like every other bad input.
            let text = e.to_string();
            let first = text.split("\n\n").next().unwrap_or_default();
            let message = first
                .trim_start_matches("error: ")
                .split_whitespace()
                .collect::<Vec<_>>();
            #[allow(clippy::print_stderr)]
            {
                eprintln!("auth-server: error: {} (see --help)", message.join(" "));
            }
            return std::process::ExitCode::from(2);
        }
    };
    match auth_server::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Lower-level messages (libpq's) may span lines; keep one.
            let message = e.0.split_whitespace().collect::<Vec<_>>().join(" ");
            #[allow(clippy::print_stderr)]
            {
                eprintln!("auth-server: error: {message}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
