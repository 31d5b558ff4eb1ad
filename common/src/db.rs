//! Postgres through diesel and r2d2: building the pool, creating the database
//! when it is missing, running embedded migrations under an advisory lock,
//! and running blocking queries off the async workers.
//!
//! Failure model: a pool checkout that cannot get a working connection within
//! `connection_timeout` is [`DbError::Unavailable`], which the HTTP layers
//! answer with 503. Once the database is known to be unreachable (a new
//! connection could not reach it, or a failed query's connection no longer
//! answers), the pool's [`Breaker`] opens: every request is answered `Unavailable` at once instead
//! of waiting for the checkout timeout, while one background thread probes
//! Postgres every [`PROBE_EVERY`]; the first successful probe closes it.
//! Connections are tested on checkout, so the pool recovers by itself.

use std::fmt;
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use diesel::connection::{InstrumentationEvent, SimpleConnection};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, HandleError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use tracing::Instrument as _;

use crate::secret::Secret;

pub type PooledConn = r2d2::PooledConnection<Manager>;

/// How often an open breaker probes the database.
pub const PROBE_EVERY: Duration = Duration::from_millis(200);

/// How often a waiting checkout looks whether the breaker has opened.
const BREAKER_CHECK_EVERY: Duration = Duration::from_millis(50);

fn unreachable() -> DbError {
    DbError::Unavailable("the database is unreachable (checking again in the background)".into())
}

/// The connection pool, with its circuit breaker.
#[derive(Clone)]
pub struct PgPool {
    inner: r2d2::Pool<Manager>,
    breaker: Arc<Breaker>,
}

impl fmt::Debug for PgPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPool")
            .field("state", &self.inner.state())
            .field("open", &self.breaker.is_open())
            .finish()
    }
}

impl PgPool {
    /// A connection, waiting up to the pool's connection timeout.
    pub fn get(&self) -> Result<PooledConn, r2d2::Error> {
        self.inner.get()
    }

    pub fn get_timeout(&self, timeout: Duration) -> Result<PooledConn, r2d2::Error> {
        self.inner.get_timeout(timeout)
    }

    pub fn state(&self) -> r2d2::State {
        self.inner.state()
    }

    /// Whether the database is known to be unreachable right now.
    pub fn is_down(&self) -> bool {
        self.breaker.is_open()
    }

    /// A checkout that fails at once while the breaker is open, also when
    /// it opens during the wait (a connection attempt failed): the wait is
    /// cut into slices of [`BREAKER_CHECK_EVERY`]. A pool that is merely
    /// busy waits the whole `timeout` and does not open the breaker.
    fn checkout(&self, timeout: Duration) -> Result<PooledConn, DbError> {
        let clock = crate::Clock::system();
        let deadline = clock.instant() + timeout;
        loop {
            if self.breaker.is_open() {
                return Err(unreachable());
            }
            let left = deadline.saturating_duration_since(clock.instant());
            match self.inner.get_timeout(left.min(BREAKER_CHECK_EVERY)) {
                Ok(conn) => return Ok(conn),
                Err(e) if left <= BREAKER_CHECK_EVERY => return Err(DbError::from(e)),
                Err(_) => {}
            }
        }
    }
}

/// Whether the database is known to be down, and the probe that finds out
/// when it is back.
#[derive(Debug)]
struct Breaker {
    open: std::sync::atomic::AtomicBool,
    /// A connection string for the probe (the pool's own, with its limits).
    url: String,
    /// The pool's failure count: bumped when the database is back, so
    /// every pooled connection is tested before its next use.
    failures: Arc<AtomicU64>,
}

impl Breaker {
    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Opens the breaker and starts the probe, unless it is open already.
    fn open(self: &Arc<Self>) {
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!("database unreachable: answering 503 at once until a probe reaches it");
        let breaker = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("db-probe".into())
            .spawn(move || breaker.probe_until_back());
        if spawned.is_err() {
            // No thread, no probe: requests go back to waiting for a checkout.
            self.open.store(false, Ordering::Release);
        }
    }

    fn probe_until_back(&self) {
        loop {
            std::thread::sleep(PROBE_EVERY);
            // Any answer from the server closes the breaker, a refusal of
            // its own (a password being rotated, a full server) included:
            // the server is reachable, and the pool decides from there.
            let answered = match PgConnection::establish(&self.url) {
                Ok(mut conn) => conn.batch_execute("SELECT 1").is_ok(),
                Err(e) => !is_transport_failure(&e.to_string()),
            };
            if answered {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.open.store(false, Ordering::Release);
                tracing::info!("database reachable again");
                return;
            }
        }
    }
}

/// How long after its last successful statement a connection may be
/// handed out again without a test query. A connection whose last
/// statement is older, or whose last statement (or use) failed, is tested
/// (`SELECT 1`) before it is handed out.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// What the connection's own statements say about its health, written by
/// diesel's instrumentation as each statement finishes.
#[derive(Default)]
struct Health {
    last_success: Option<std::time::Instant>,
    /// The pool's failure count at that success.
    failures_seen: u64,
    suspect: bool,
}

/// A pooled connection, with what the pool knows about its health.
pub struct Conn {
    pg: PgConnection,
    health: Arc<Mutex<Health>>,
    /// Failures seen on any of the pool's connections: one failure makes
    /// every connection be tested again (an outage rarely hits just one).
    pool_failures: Arc<AtomicU64>,
}

impl Conn {
    fn health(&self) -> MutexGuard<'_, Health> {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::ops::Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.pg
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.pg
    }
}

/// diesel's r2d2 manager, with a cheaper checkout: a connection in steady
/// use is not tested on every checkout (that test is a round trip, as much
/// as the query that follows on the hottest paths), only when its last
/// successful statement is more than [`TRUSTED_FOR`] old, or a statement
/// or use failed on it, or on any connection of the pool since. Health is
/// recorded from the statements that actually ran, so a checkout that runs
/// none does not vouch for the connection. When Postgres goes away, the
/// requests before the first observed failure may reach a trusted but dead
/// connection (and get a 503, or succeed if they need no statement); from
/// the first failure on, every connection is tested before use.
pub struct Manager {
    inner: ConnectionManager<PgConnection>,
    failures: Arc<AtomicU64>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        let mut pg = self.inner.connect()?;
        let health = Arc::new(Mutex::new(Health::default()));
        let recorder = Arc::clone(&health);
        let failures = Arc::clone(&self.failures);
        pg.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::FinishQuery { error, .. } = event {
                let mut health = recorder.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if error.is_some() {
                    health.suspect = true;
                    failures.fetch_add(1, Ordering::Relaxed);
                } else {
                    health.last_success = Some(crate::Clock::system().instant());
                    health.failures_seen = failures.load(Ordering::Relaxed);
                }
            }
        });
        Ok(Conn {
            pg,
            health,
            pool_failures: Arc::clone(&self.failures),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        let trusted = {
            let health = conn.health();
            !health.suspect
                && health.failures_seen == conn.pool_failures.load(Ordering::Relaxed)
                && health.last_success.is_some_and(|at| {
                    crate::Clock::system().instant().saturating_duration_since(at) < TRUSTED_FOR
                })
        };
        if trusted {
            return Ok(());
        }
        self.inner.is_valid(&mut conn.pg)?;
        conn.health().suspect = false;
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        self.inner.has_broken(&mut conn.pg)
    }
}

/// Marks a connection whose last use failed (even if no statement did), so
/// it is tested before reuse.
pub fn mark_suspect(conn: &mut PooledConn) {
    conn.health().suspect = true;
    conn.pool_failures.fetch_add(1, Ordering::Relaxed);
}

/// How long a request waits for a connection before it is answered with 503.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);

/// A database failure as the rest of the program needs to see it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No working connection: Postgres is down or unreachable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed for another reason. The text is for logs only.
    #[error("database query failed: {0}")]
    Query(diesel::result::Error),
}

impl DbError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }

    /// Whether this is a unique-constraint violation (a client error when
    /// the client chose the conflicting value).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                DbError::Unavailable(info.message().to_owned())
            }
            Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
                DbError::Unavailable(info.message().to_owned())
            }
            // diesel does not expose the SQLSTATE of these; their messages
            // are stable Postgres texts. A timed-out statement or lock and
            // a server shutting down are outages, not bad requests.
            Error::DatabaseError(_, info) if is_transient(info.message()) => {
                DbError::Unavailable(info.message().to_owned())
            }
            other => DbError::Query(other),
        }
    }
}

fn is_transient(message: &str) -> bool {
    const TRANSIENT: [&str; 6] = [
        "canceling statement due to statement timeout",
        "canceling statement due to lock timeout",
        "terminating connection due to administrator command",
        "the database system is shutting down",
        "the database system is starting up",
        "server closed the connection unexpectedly",
    ];
    TRANSIENT.iter().any(|t| message.contains(t))
}

impl From<r2d2::Error> for DbError {
    fn from(e: r2d2::Error) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: u32,
    pub connection_timeout: Duration,
    /// Upper bound for any single statement, so a stuck query cannot hold a
    /// worker forever.
    pub statement_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            connection_timeout: CHECKOUT_TIMEOUT,
            statement_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
struct SessionSettings {
    statement_timeout_ms: u128,
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "SET statement_timeout = {}; SET lock_timeout = {}",
            self.statement_timeout_ms, self.statement_timeout_ms
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Logs pool connection failures through tracing (r2d2 would use `log`),
/// and opens the breaker: a connection attempt that fails means the
/// database cannot be reached right now.
#[derive(Debug)]
struct TracingErrorHandler {
    breaker: Arc<Breaker>,
}

impl HandleError<diesel::r2d2::Error> for TracingErrorHandler {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        // Only a new connection that could not reach the server opens the
        // breaker. A stale pooled connection failing its check (r2d2 reports
        // that here too, as a query error), a wrong password or a full
        // server are not outages: the pool's other connections still work.
        let unreachable = matches!(
            &error,
            diesel::r2d2::Error::ConnectionError(e) if is_transport_failure(&e.to_string())
        );
        if !self.breaker.is_open() {
            tracing::warn!(error = %error, "database connection failed");
        }
        if unreachable {
            self.breaker.open();
        }
    }
}

/// Whether a libpq connection error says the server could not be reached
/// (rather than refusing this connection for a reason of its own).
fn is_transport_failure(message: &str) -> bool {
    const UNREACHABLE: [&str; 10] = [
        "Connection refused",
        "could not connect to server",
        "timeout expired",
        "server closed the connection unexpectedly",
        "No route to host",
        "Network is unreachable",
        "Connection reset by peer",
        "could not receive data from server",
        "could not send data to server",
        "the database system is shutting down",
    ];
    UNREACHABLE.iter().any(|m| message.contains(m))
}

/// Adds libpq options that bound how long a connection attempt can hang,
/// unless the operator set them.
fn with_connect_options(database_url: &str) -> String {
    let mut url = database_url.to_owned();
    // GSSAPI encryption is off unless asked for: trying it costs a round
    // trip per connection, and libpq's Kerberos library has crashed at
    // process exit while a pool thread was still connecting.
    // Keepalives and a TCP user timeout bound how long a connection whose
    // packets are silently dropped (not refused) can hang a request.
    for (key, default) in [
        ("connect_timeout", "3"),
        ("gssencmode", "disable"),
        ("keepalives_idle", "10"),
        ("keepalives_interval", "5"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "15000"),
    ] {
        if !url.contains(&format!("{key}=")) {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("{key}={default}"));
        }
    }
    url
}

/// One connection, no pool, no background threads: for one-shot commands
/// (they must not exit while a pool thread is still connecting).
pub fn connect_once(database_url: &Secret) -> Result<PgConnection, DbError> {
    PgConnection::establish(&with_connect_options(database_url.expose()))
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Builds the pool and proves the database answers. Fails fast (within the
/// connection timeout) when Postgres is unreachable.
pub fn connect(database_url: &Secret, options: &PoolOptions) -> Result<PgPool, DbError> {
    let url = with_connect_options(database_url.expose());
    let failures = Arc::new(AtomicU64::new(0));
    let manager = Manager {
        inner: ConnectionManager::<PgConnection>::new(url.clone()),
        failures: Arc::clone(&failures),
    };
    let breaker = Arc::new(Breaker {
        open: std::sync::atomic::AtomicBool::new(false),
        url,
        failures,
    });
    let inner = r2d2::Pool::builder()
        .max_size(options.max_size)
        .min_idle(Some(1))
        .connection_timeout(options.connection_timeout)
        .test_on_check_out(true)
        .error_handler(Box::new(TracingErrorHandler {
            breaker: Arc::clone(&breaker),
        }))
        .connection_customizer(Box::new(SessionSettings {
            statement_timeout_ms: options.statement_timeout.as_millis(),
        }))
        .build(manager)
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    Ok(PgPool { inner, breaker })
}

/// The database name in a `postgres://` URL, checked to be a plain
/// identifier so it can be quoted safely in `CREATE DATABASE`.
pub fn database_name(database_url: &str) -> Result<String, String> {
    let url = url::Url::parse(database_url).map_err(|e| format!("invalid database URL: {e}"))?;
    let name = url.path().trim_start_matches('/');
    if name.is_empty() {
        return Err("the database URL names no database".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || name.len() > 63
    {
        return Err(format!(
            "database name {name:?} must be 1-63 characters of letters, digits, '_' or '-'"
        ));
    }
    Ok(name.to_owned())
}

/// The same server, but the `postgres` maintenance database.
fn maintenance_url(database_url: &str) -> Result<String, String> {
    let mut url = url::Url::parse(database_url).map_err(|e| format!("invalid database URL: {e}"))?;
    url.set_path("/postgres");
    Ok(url.to_string())
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Creates the database named in the URL if it does not exist yet. Safe to
/// race with another instance doing the same.
pub fn ensure_database(database_url: &Secret) -> Result<(), DbError> {
    let name = database_name(database_url.expose()).map_err(DbError::Unavailable)?;
    let admin_url = maintenance_url(database_url.expose()).map_err(DbError::Unavailable)?;
    let mut conn = PgConnection::establish(&with_connect_options(&admin_url))
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let exists = |conn: &mut PgConnection| -> Result<bool, DbError> {
        let row: Exists =
            diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
                .bind::<diesel::sql_types::Text, _>(&name)
                .get_result(conn)?;
        Ok(row.exists)
    };
    if exists(&mut conn)? {
        return Ok(());
    }
    // The name was checked to hold only [A-Za-z0-9_-], so quoting is safe.
    match conn.batch_execute(&format!("CREATE DATABASE \"{name}\"")) {
        Ok(()) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        Err(_) if exists(&mut conn)? => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs pending migrations while holding a Postgres advisory lock, so several
/// instances starting at once migrate one after the other.
pub fn run_migrations(pool: &PgPool, migrations: EmbeddedMigrations, lock_key: i64) -> Result<usize, String> {
    let mut conn = pool.get().map_err(|e| format!("database unavailable: {e}"))?;
    migrate(&mut conn, migrations, lock_key)
}

/// [`run_migrations`] on a given connection.
pub fn migrate(
    conn: &mut PgConnection,
    migrations: EmbeddedMigrations,
    lock_key: i64,
) -> Result<usize, String> {
    conn.batch_execute(&format!("SELECT pg_advisory_lock({lock_key})"))
        .map_err(|e| format!("cannot take the migration lock: {e}"))?;
    let result = conn
        .run_pending_migrations(migrations)
        .map(|done| done.len())
        .map_err(|e| format!("migration failed: {e}"));
    let unlock = conn.batch_execute(&format!("SELECT pg_advisory_unlock({lock_key})"));
    if let Err(e) = unlock {
        tracing::warn!(error = %e, "could not release the migration lock");
    }
    result
}

/// What a server does before serving: creates its database if missing,
/// builds the pool and runs pending migrations. `name` and `setting` name
/// the database and its URL's setting in the error line.
pub fn prepare(
    database_url: &Secret,
    options: &PoolOptions,
    migrations: EmbeddedMigrations,
    lock_key: i64,
    (name, setting): (&str, &str),
) -> Result<PgPool, String> {
    let unreachable = |e: &dyn fmt::Display| format!("cannot reach the {name} database ({setting}): {e}");
    ensure_database(database_url).map_err(|e| unreachable(&e))?;
    let pool = connect(database_url, options).map_err(|e| unreachable(&e))?;
    let applied = run_migrations(&pool, migrations, lock_key)?;
    if applied > 0 {
        tracing::info!(applied, "database migrated");
    }
    Ok(pool)
}

/// Runs `f` with a pooled connection on the blocking thread pool, inside the
/// caller's tracing span, so diesel never blocks an async worker. The one
/// database runner of both servers: the error type is the caller's layer's
/// (a checkout that times out is [`DbError::Unavailable`] turned into it).
pub async fn with_conn<T, E, F>(pool: &PgPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static + From<DbError> + From<BlockingJoinError>,
{
    let pool = pool.clone();
    if pool.is_down() {
        // Not even a hop to the blocking pool.
        return Err(E::from(unreachable()));
    }
    blocking(move || {
        let mut conn = pool.checkout(CHECKOUT_TIMEOUT)?;
        let result = f(&mut conn);
        if result.is_err() {
            mark_suspect(&mut conn);
            // A failed statement on a connection that no longer answers
            // means the database went away: stop waiting for it.
            if conn.batch_execute("SELECT 1").is_err() {
                pool.breaker.open();
            }
        }
        result
    })
    .await
}

/// Runs a blocking closure (a query, a password hash, an HTTP fetch) on the
/// blocking pool, keeping the current tracing span, and returns what it
/// returned. The one place either server leaves the async workers.
pub async fn run_blocking<T, F>(f: F) -> Result<T, BlockingJoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    let handle = actix_web::rt::task::spawn_blocking(move || {
        let _entered = span.enter();
        f()
    });
    handle
        .instrument(tracing::Span::current())
        .await
        .map_err(|join| BlockingJoinError(join.to_string()))
}

/// [`run_blocking`] for a fallible closure: its error, or the join error
/// turned into the same type.
pub async fn blocking<T, E, F>(f: F) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static + From<BlockingJoinError>,
{
    run_blocking(f).await.unwrap_or_else(|join| Err(E::from(join)))
}

/// A blocking task panicked or was cancelled.
#[derive(Debug)]
pub struct BlockingJoinError(pub String);

impl fmt::Display for BlockingJoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blocking task failed: {}", self.0)
    }
}

impl std::error::Error for BlockingJoinError {}

impl From<BlockingJoinError> for DbError {
    fn from(e: BlockingJoinError) -> Self {
        DbError::Query(diesel::result::Error::QueryBuilderError(e.to_string().into()))
    }
}

/// Whether the database answers a trivial query right now.
pub fn ping(pool: &PgPool, timeout: Duration) -> bool {
    if pool.is_down() {
        return false;
    }
    match pool.get_timeout(timeout) {
        Ok(mut conn) => {
            let answered = conn.batch_execute("SELECT 1").is_ok();
            if !answered {
                mark_suspect(&mut conn);
            }
            answered
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_server_opens_the_breaker() {
        // libpq's texts: the server could not be reached ...
        for unreachable in [
            "connection to server at \"127.0.0.1\", port 5432 failed: Connection refused",
            "could not connect to server: No route to host",
            "timeout expired",
            "server closed the connection unexpectedly",
        ] {
            assert!(is_transport_failure(unreachable), "{unreachable}");
        }
        // ... or it answered and refused this connection: not an outage
        // (a password being rotated, a full server), the pool's other
        // connections still work.
        for refused in [
            "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password authentication failed for user \"auth\"",
            "FATAL:  sorry, too many clients already",
            "FATAL:  database \"oauth_auth\" does not exist",
        ] {
            assert!(!is_transport_failure(refused), "{refused}");
        }
    }

    #[test]
    fn database_name_is_checked() {
        assert_eq!(
            database_name("postgres://localhost/oauth_auth").unwrap(),
            "oauth_auth"
        );
        assert!(database_name("postgres://localhost/").is_err());
        assert!(database_name("postgres://localhost/a\"b").is_err());
    }

    #[test]
    fn timeouts_and_shutdowns_count_as_unavailable() {
        use diesel::result::{DatabaseErrorKind, Error};
        let error =
            |message: &str| Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned()));
        assert!(DbError::from(error("canceling statement due to statement timeout")).is_unavailable());
        assert!(DbError::from(error("terminating connection due to administrator command")).is_unavailable());
        assert!(!DbError::from(error("syntax error at or near")).is_unavailable());
    }

    #[test]
    fn connect_options_are_added_once_and_never_override_the_operator() {
        const ADDED: &str =
            "keepalives_idle=10&keepalives_interval=5&keepalives_count=3&tcp_user_timeout=15000";
        assert_eq!(
            with_connect_options("postgres://localhost/x"),
            format!("postgres://localhost/x?connect_timeout=3&gssencmode=disable&{ADDED}")
        );
        assert_eq!(
            with_connect_options("postgres://localhost/x?sslmode=disable"),
            format!("postgres://localhost/x?sslmode=disable&connect_timeout=3&gssencmode=disable&{ADDED}")
        );
        assert_eq!(
            with_connect_options(&format!(
                "postgres://localhost/x?connect_timeout=9&gssencmode=prefer&{ADDED}"
            )),
            format!("postgres://localhost/x?connect_timeout=9&gssencmode=prefer&{ADDED}")
        );
        assert_eq!(
            with_connect_options("postgres://localhost/x?tcp_user_timeout=1"),
            "postgres://localhost/x?tcp_user_timeout=1&connect_timeout=3&gssencmode=disable\
             &keepalives_idle=10&keepalives_interval=5&keepalives_count=3"
        );
    }
}
