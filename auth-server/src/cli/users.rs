//! `auth-server user ...`: the operator's commands for an account's whole
//! life. Every check runs before anything is written.

use clap::Args;
use oauth_common::Clock;
use serde_json::{Value, json};

use super::{CliError, UserCommand, confirmed, print_json, time};
use crate::audit::{self, Actor, Event};
use crate::config::Settings;
use crate::domain::{Roles, Username};
use crate::startup;
use crate::storage;
use crate::storage::users::{Change, Ended, UserRecord};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only users holding this role.
    #[arg(long)]
    pub role: Option<String>,
    /// Only disabled users.
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Debug, Args)]
pub struct Named {
    /// May start with '-' (ids and kids are base64url).
    #[arg(allow_hyphen_values = true)]
    pub username: String,
}

#[derive(Debug, Args)]
pub struct SetPassword {
    /// May start with '-' (ids and kids are base64url).
    #[arg(allow_hyphen_values = true)]
    pub username: String,
    /// Read the password from standard input (it is never taken from argv).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct SetRoles {
    /// May start with '-' (ids and kids are base64url).
    #[arg(allow_hyphen_values = true)]
    pub username: String,
    /// user or admin; repeat for several.
    #[arg(long = "role", required = true)]
    pub roles: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Delete {
    /// May start with '-' (ids and kids are base64url).
    #[arg(allow_hyphen_values = true)]
    pub username: String,
    /// Confirm: the user and everything tied to them are deleted for good.
    #[arg(long)]
    pub yes: bool,
}

fn no_such_user(name: &str) -> CliError {
    CliError(format!("no user named {name:?}"))
}

/// A user as JSON: never the hash. `locked_until` is when the account's
/// sign-in throttle lets it try again, if it is locked now.
fn user_json(user: &UserRecord, locked_until: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "roles": user.roles,
        "disabled": user.disabled_at.is_some(),
        "disabled_at": time(user.disabled_at),
        "locked_until": time(locked_until),
        "created_at": user.created_at.to_rfc3339(),
        "updated_at": user.updated_at.to_rfc3339(),
        "last_sign_in_at": time(user.last_sign_in_at),
    })
}

fn with_ended(mut out: Value, ended: Ended) -> Value {
    out["sessions_ended"] = json!(ended.sessions);
    out["refresh_families_revoked"] = json!(ended.families);
    out
}

pub fn run(settings: &Settings, command: UserCommand) -> Result<(), CliError> {
    let now = Clock::system().now();
    match command {
        UserCommand::Create(args) => super::create_user(settings, &args),
        UserCommand::List(args) => {
            let role = args
                .role
                .as_deref()
                .map(|r| Roles::parse(&[r]).map(|_| r.to_owned()))
                .transpose()
                .map_err(CliError)?;
            let mut conn = startup::open_connection(settings)?;
            let users = storage::users::list(&mut conn, role.as_deref(), args.disabled)?;
            let out = users
                .iter()
                .map(|u| {
                    let locked = storage::throttle::account_locked_until(&mut conn, &u.username, now)?;
                    Ok(user_json(u, locked))
                })
                .collect::<Result<Vec<_>, CliError>>()?;
            print_json(&Value::Array(out))
        }
        UserCommand::Show(Named { username }) => {
            let mut conn = startup::open_connection(settings)?;
            let user = storage::users::show(&mut conn, &username)?.ok_or_else(|| no_such_user(&username))?;
            let locked = storage::throttle::account_locked_until(&mut conn, &user.username, now)?;
            print_json(&user_json(&user, locked))
        }
        UserCommand::SetPassword(args) => {
            let mut conn = startup::open_connection(settings)?;
            let user = storage::users::show(&mut conn, &args.username)?
                .ok_or_else(|| no_such_user(&args.username))?;
            let username = Username::parse(&user.username).map_err(CliError)?;
            let hash = super::new_password_hash(settings, &username)?;
            // The time of the change is after the password was read and
            // hashed: tokens issued until then are the ones it ends.
            changed(
                &mut conn,
                &user.username,
                Change::Password(&hash),
                Event::UserPasswordChanged,
                Clock::system().now(),
            )
        }
        UserCommand::SetRoles(args) => {
            let roles = Roles::parse(&args.roles).map_err(CliError)?;
            let mut conn = startup::open_connection(settings)?;
            changed(
                &mut conn,
                &args.username,
                Change::Roles(&roles),
                Event::UserRolesChanged,
                now,
            )
        }
        UserCommand::Disable(Named { username }) => {
            let mut conn = startup::open_connection(settings)?;
            changed(&mut conn, &username, Change::Disable, Event::UserDisabled, now)
        }
        UserCommand::Enable(Named { username }) => {
            let mut conn = startup::open_connection(settings)?;
            changed(&mut conn, &username, Change::Enable, Event::UserEnabled, now)
        }
        UserCommand::Unlock(Named { username }) => {
            let mut conn = startup::open_connection(settings)?;
            let user = storage::users::show(&mut conn, &username)?.ok_or_else(|| no_such_user(&username))?;
            let was_locked = storage::throttle::unlock_account(&mut conn, &user.username, now)?;
            audit::record(
                Event::UserUnlocked,
                Actor::default().user(user.id),
                "account unlocked by an operator",
            );
            let mut out = user_json(&user, None);
            out["was_locked_until"] = time(was_locked);
            print_json(&out)
        }
        UserCommand::Delete(args) => {
            confirmed(args.yes, "deleting a user")?;
            let mut conn = startup::open_connection(settings)?;
            let deleted = storage::users::delete(&mut conn, &args.username, Clock::system().now())?
                .ok_or_else(|| no_such_user(&args.username))?;
            audit::record(
                Event::UserDeleted,
                Actor::default().user(deleted.id),
                "user deleted by an operator",
            );
            print_json(&json!({
                "id": deleted.id,
                "username": args.username,
                "deleted": true,
                "sessions_ended": deleted.sessions,
                "refresh_families_deleted": deleted.families,
                "consents_deleted": deleted.consents,
            }))
        }
    }
}

fn changed(
    conn: &mut diesel::PgConnection,
    username: &str,
    change: Change<'_>,
    event: Event,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), CliError> {
    let (user, ended) =
        storage::users::change(conn, username, change, now)?.ok_or_else(|| no_such_user(username))?;
    audit::record(
        event,
        Actor::default().user(user.id),
        "user changed by an operator",
    );
    let locked = storage::throttle::account_locked_until(conn, &user.username, now)?;
    print_json(&with_ended(user_json(&user, locked), ended))
}
