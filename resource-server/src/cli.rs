//! `resource-server [serve|migrate]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::startup::{self, Application};

#[derive(Debug, Parser)]
#[command(
    name = "resource-server",
    version,
    about = "The notes API, validating tokens offline"
)]
pub struct Cli {
    /// Settings file (KEY=VALUE lines, same names as the environment).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and migrate the database if needed, then serve (the default).
    Serve,
    /// Run pending migrations and exit.
    Migrate,
}

pub fn run(cli: Cli) -> Result<(), String> {
    let (settings, unknown) = Settings::load(cli.config.as_deref()).map_err(|e| e.0)?;
    oauth_common::telemetry::init(settings.log_format);
    for name in unknown {
        tracing::warn!(variable = %name, "ignoring unknown RESOURCE_ environment variable");
    }
    match cli.command {
        Some(Command::Migrate) => startup::open_database(&settings).map(|_| ()).map_err(|e| e.0),
        None | Some(Command::Serve) => {
            let issuer = settings.issuer.clone();
            let app = Application::build(settings).map_err(|e| e.0)?;
            tracing::info!(port = app.port(), admin_port = app.admin_port(), issuer = %issuer, "resource-server listening");
            actix_web::rt::System::new()
                .block_on(app.run_until_stopped())
                .map_err(|e| format!("server error: {e}"))
        }
    }
}
