//! The command line (`INTERFACE.md`, "Command line of auth-server"). Each
//! command prints JSON on success; bad input is one line on standard error
//! and exit status 1, and nothing is written.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use oauth_common::Clock;
use serde_json::json;

use crate::audit::{self, Actor, Event};
use crate::config::Settings;
use crate::domain::{Password, PasswordHash, Roles, Username};
use crate::registration::ClientRegistration;
use crate::startup::{self, Application};
use crate::storage;

mod clients;
mod keys;
mod users;

#[derive(Debug, Parser)]
#[command(name = "auth-server", version, about = "OAuth 2.1 authorization server")]
pub struct Cli {
    /// Settings file (KEY=VALUE lines, same names as the environment).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, then serve (the default).
    Serve,
    /// Run pending migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create(UserCreate),
    /// List users (never their password hashes).
    List(users::ListArgs),
    /// Show one user.
    Show(users::Named),
    /// Set a new password (read from standard input); ends the user's
    /// sessions and refresh-token families.
    SetPassword(users::SetPassword),
    /// Replace the user's roles; revokes their refresh-token families.
    SetRoles(users::SetRoles),
    /// Stop the user signing in; ends their sessions and families.
    Disable(users::Named),
    /// Let a disabled user sign in again.
    Enable(users::Named),
    /// Clear the account's sign-in throttle.
    Unlock(users::Named),
    /// Delete the user and everything tied to them (needs --yes).
    Delete(users::Delete),
}

#[derive(Debug, Args)]
pub struct UserCreate {
    #[arg(long)]
    pub username: String,
    /// user or admin; repeat for several.
    #[arg(long = "role", required = true)]
    pub roles: Vec<String>,
    /// Read the password from standard input (it is never taken from argv).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client.
    Create(ClientCreate),
    /// List clients (never their secret hashes).
    List,
    /// Show one client.
    Show(clients::Id),
    /// Change a registration, checked as at create.
    Update(clients::Update),
    /// Print a new secret; the old one works for the overlap.
    RotateSecret(clients::RotateSecret),
    /// End a rotation's overlap now: only the newest secret works.
    RetireSecret(clients::Id),
    /// Delete the client and revoke everything it holds (needs --yes).
    Delete(clients::Delete),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("kind").required(true).args(["public", "confidential"]))]
pub struct ClientCreate {
    #[arg(long)]
    pub name: String,
    /// A browser or native app that cannot keep a secret.
    #[arg(long)]
    pub public: bool,
    /// A server-side client; a secret is generated and shown once.
    #[arg(long)]
    pub confidential: bool,
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    #[arg(long = "grant-type")]
    pub grant_types: Vec<String>,
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Skip the consent page for this client.
    #[arg(long)]
    pub first_party: bool,
    /// May call the introspection endpoint.
    #[arg(long)]
    pub allow_introspection: bool,
    #[arg(long = "audience")]
    pub audiences: Vec<String>,
    /// Where to POST OpenID Connect back-channel logout tokens.
    #[arg(long = "backchannel-logout-uri")]
    pub backchannel_logout_uri: Option<String>,
    /// Refuse OpenID Connect requests without a `nonce`.
    #[arg(long)]
    pub require_nonce: bool,
    /// May read the revocation feed (resource servers).
    #[arg(long)]
    pub allow_events: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a signing key; it is published now and signs after
    /// AUTH_KEY_ACTIVATION_DELAY seconds.
    Rotate,
    /// List signing keys and their state.
    List,
    /// Stop publishing a key once none of its tokens can still be valid
    /// (earlier only with --force).
    Retire(keys::Retire),
    /// Re-encrypt every private key under AUTH_KEY_ENCRYPTION_KEY, reading
    /// with AUTH_KEY_ENCRYPTION_KEY_PREVIOUS.
    Rewrap,
}

/// A time for JSON output.
pub(crate) fn time(at: Option<chrono::DateTime<chrono::Utc>>) -> serde_json::Value {
    at.map_or(serde_json::Value::Null, |t| json!(t.to_rfc3339()))
}

/// Refuses an irreversible command run without `--yes`.
pub(crate) fn confirmed(yes: bool, what: &str) -> Result<(), CliError> {
    if yes {
        Ok(())
    } else {
        Err(CliError(format!(
            "{what} is irreversible; run it again with --yes"
        )))
    }
}

/// A command failure: the message for standard error.
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

pub(crate) fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}").map_err(|e| CliError(format!("cannot write output: {e}")))
}

/// Reads the whole of standard input and drops one trailing line break.
pub(crate) fn read_password() -> Result<String, CliError> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| CliError(format!("cannot read the password from standard input: {e}")))?;
    let trimmed = input
        .strip_suffix("\r\n")
        .or_else(|| input.strip_suffix('\n'))
        .unwrap_or(&input);
    Ok(trimmed.to_owned())
}

/// Reads a new password for `username` from standard input and checks it
/// (policy, then the breached-password check) before hashing it.
pub(crate) fn new_password_hash(settings: &Settings, username: &Username) -> Result<PasswordHash, CliError> {
    let typed = read_password()?;
    let password = Password::parse(&typed, username).map_err(CliError)?;
    settings
        .breached_passwords
        .check(&typed)
        .map_err(|refusal| CliError(refusal.to_string()))?;
    PasswordHash::create(&password).map_err(CliError)
}

pub fn create_user(settings: &Settings, args: &UserCreate) -> Result<(), CliError> {
    let username = Username::parse(&args.username).map_err(CliError)?;
    let roles = Roles::parse(&args.roles).map_err(CliError)?;
    let hash = new_password_hash(settings, &username)?;
    let mut conn = startup::open_connection(settings)?;
    let user = storage::users::create(&mut conn, username.as_str(), &hash, &roles, Clock::system().now())
        .map_err(|e| match e {
            storage::users::CreateUserError::UsernameTaken => {
                CliError(format!("username {username} is already taken"))
            }
            storage::users::CreateUserError::Store(e) => CliError(e.to_string()),
        })?;
    audit::record(
        Event::UserCreated,
        Actor::default().user(user.id),
        "user created by an operator",
    );
    print_json(&json!({
        "id": user.id,
        "username": user.username,
        "roles": user.roles.to_strings(),
    }))
}

pub fn create_client(settings: &Settings, args: ClientCreate) -> Result<(), CliError> {
    let new = ClientRegistration {
        name: args.name,
        confidential: args.confidential,
        redirect_uris: args.redirect_uris,
        post_logout_redirect_uris: args.post_logout_redirect_uris,
        grant_types: args.grant_types,
        scopes: args.scopes,
        audiences: args.audiences,
        first_party: args.first_party,
        allow_introspection: args.allow_introspection,
        backchannel_logout_uri: args.backchannel_logout_uri,
        require_nonce: args.require_nonce,
        allow_events: args.allow_events,
    }
    .check(&settings.default_audience)?;
    let mut conn = startup::open_connection(settings)?;
    storage::clients::insert(&mut conn, &new.client, Clock::system().now())?;
    let client = &new.client;
    audit::record(
        Event::ClientCreated,
        Actor::default().client(&client.client_id),
        "client registered by an operator",
    );
    let mut out = json!({
        "client_id": client.client_id,
        "name": client.name,
        "client_type": client.kind.as_str(),
        "redirect_uris": client.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scope": client.scopes.to_string(),
        "audiences": client.audiences,
        "first_party": client.first_party,
        "allow_introspection": client.allow_introspection,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "require_nonce": client.require_nonce,
        "allow_events": client.allow_events,
    });
    if let Some(secret) = &new.secret {
        out["client_secret"] = json!(secret);
    }
    print_json(&out)
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let (settings, unknown) = Settings::load(cli.config.as_deref())?;
    let serving = matches!(cli.command, None | Some(Command::Serve) | Some(Command::Migrate));
    if serving {
        oauth_common::telemetry::init(settings.log_format);
    } else {
        // Commands print JSON on stdout; keep their logs on stderr, quiet.
        oauth_common::telemetry::init_quiet_stderr();
    }
    for name in unknown {
        tracing::warn!(variable = %name, "ignoring unknown AUTH_ environment variable");
    }
    match cli.command {
        None | Some(Command::Serve) => serve(settings),
        Some(Command::Migrate) => {
            startup::open_connection(&settings)?;
            Ok(())
        }
        Some(Command::User(command)) => users::run(&settings, command),
        Some(Command::Client(command)) => clients::run(&settings, command),
        Some(Command::Keys(command)) => keys::run(&settings, command),
    }
}

fn serve(settings: Settings) -> Result<(), CliError> {
    let issuer = settings.issuer.as_str().to_owned();
    let app = Application::build(settings)?;
    tracing::info!(port = app.port(), admin_port = app.admin_port(), issuer = %issuer, "auth-server listening");
    actix_web::rt::System::new()
        .block_on(app.run_until_stopped())
        .map_err(|e| CliError(format!("server error: {e}")))
}
