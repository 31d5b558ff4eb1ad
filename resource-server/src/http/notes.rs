//! Notes CRUD on the caller's own notes, and the admin counts.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeZone as _, Utc};
use oauth_common::Clock;
use oauth_common::db::{self, PgPool};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::errors::{database, read_json};
use super::{Admin, ReadNotes, WriteNotes};
use crate::problem::Problem;
use crate::storage::notes::{self, Cursor, Note};
use crate::token::Authorized;

pub const TITLE_MAX: usize = 200;
pub const BODY_MAX: usize = 20_000;
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 100;

/// A note as a client sends it. Unknown fields are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    pub title: String,
    pub body: String,
}

/// Field errors, or the input if it is acceptable. Text is stored exactly as
/// given; only lengths and NUL (which Postgres text cannot hold) are checked.
// A Problem is built only on the error path, at most once per request.
#[allow(clippy::result_large_err)]
fn validate(input: &NoteInput) -> Result<(), Problem> {
    let mut errors = Vec::new();
    let title_len = input.title.chars().count();
    if title_len == 0 || title_len > TITLE_MAX {
        errors.push(json!({"field": "title", "detail": format!("must be 1-{TITLE_MAX} characters")}));
    } else if input.title.contains('\0') {
        errors.push(json!({"field": "title", "detail": "must not contain NUL characters"}));
    }
    if input.body.chars().count() > BODY_MAX {
        errors.push(json!({"field": "body", "detail": format!("must be at most {BODY_MAX} characters")}));
    } else if input.body.contains('\0') {
        errors.push(json!({"field": "body", "detail": "must not contain NUL characters"}));
    }
    if errors.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = errors
        .iter()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect();
    Err(Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Unprocessable Content",
        format!("Invalid field(s): {}.", fields.join(", ")),
    )
    .with_extension("errors", json!(errors)))
}

fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "Not Found", "No such note.")
}

/// Note ids are UUIDs; anything else is simply not found.
#[allow(clippy::result_large_err)]
fn note_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| not_found())
}

async fn run<T, F>(pool: &web::Data<PgPool>, f: F) -> Result<T, Problem>
where
    F: FnOnce(&mut diesel::PgConnection) -> Result<T, db::DbError> + Send + 'static,
    T: Send + 'static,
{
    db::with_conn(pool, f).await.map_err(database)
}

fn encode_cursor(note: &Note) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", note.created_at.timestamp_micros(), note.id))
}

fn decode_cursor(text: &str) -> Option<Cursor> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
    let (micros, id) = raw.split_once('.')?;
    // Our notes are all created after 1970; an earlier time may be outside
    // what Postgres can store, which would turn a bad cursor into a 500.
    let micros: i64 = micros.parse().ok().filter(|m| *m >= 0)?;
    Some(Cursor {
        created_at: Utc.timestamp_micros(micros).single()?,
        id: Uuid::parse_str(id).ok()?,
    })
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn list(
    auth: Authorized<ReadNotes>,
    pool: web::Data<PgPool>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Problem> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}."),
                ));
            }
        },
    };
    let cursor =
        match query.cursor.as_deref() {
            None => None,
            Some(text) => Some(decode_cursor(text).ok_or_else(|| {
                Problem::new(StatusCode::BAD_REQUEST, "Bad Request", "cursor is not valid.")
            })?),
        };
    let owner = auth.claims.sub.clone();
    // One extra row tells whether there is a next page.
    let mut page = run(&pool, move |conn| notes::list(conn, &owner, cursor, limit + 1)).await?;
    let more = page.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    page.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut response = HttpResponse::Ok();
    if let (true, Some(last)) = (more, page.last()) {
        response.insert_header((
            header::LINK,
            format!(
                "</api/notes?limit={limit}&cursor={}>; rel=\"next\"",
                encode_cursor(last)
            ),
        ));
    }
    Ok(response.json(page))
}

pub async fn create(
    auth: Authorized<WriteNotes>,
    pool: web::Data<PgPool>,
    clock: web::Data<Clock>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let input: NoteInput = read_json(&req, payload).await?;
    validate(&input)?;
    let owner = auth.claims.sub.clone();
    let now = clock.now();
    let note = run(&pool, move |conn| {
        notes::insert(conn, &owner, &input.title, &input.body, now)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/notes/{}", note.id)))
        .json(note))
}

pub async fn get(
    auth: Authorized<ReadNotes>,
    pool: web::Data<PgPool>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = note_id(&id)?;
    let owner = auth.claims.sub.clone();
    match run(&pool, move |conn| notes::get(conn, id, &owner)).await? {
        Some(note) => Ok(HttpResponse::Ok().json(note)),
        None => Err(not_found()),
    }
}

pub async fn replace(
    auth: Authorized<WriteNotes>,
    pool: web::Data<PgPool>,
    clock: web::Data<Clock>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let id = note_id(&id)?;
    let input: NoteInput = read_json(&req, payload).await?;
    validate(&input)?;
    let owner = auth.claims.sub.clone();
    let now = clock.now();
    match run(&pool, move |conn| {
        notes::update(conn, id, &owner, &input.title, &input.body, now)
    })
    .await?
    {
        Some(note) => Ok(HttpResponse::Ok().json(note)),
        None => Err(not_found()),
    }
}

pub async fn delete(
    auth: Authorized<WriteNotes>,
    pool: web::Data<PgPool>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = note_id(&id)?;
    let owner = auth.claims.sub.clone();
    if run(&pool, move |conn| notes::delete(conn, id, &owner)).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found())
    }
}

pub async fn stats(_auth: Authorized<Admin>, pool: web::Data<PgPool>) -> Result<HttpResponse, Problem> {
    let stats = run(&pool, notes::stats).await?;
    Ok(HttpResponse::Ok().json(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(title: &str, body: &str) -> NoteInput {
        NoteInput {
            title: title.into(),
            body: body.into(),
        }
    }

    #[test]
    fn lengths_are_counted_in_characters_and_named_on_failure() {
        assert!(validate(&input("ok", "")).is_ok());
        assert!(validate(&input(&"é".repeat(200), &"ü".repeat(20_000))).is_ok());
        let e = validate(&input("", &"x".repeat(20_001))).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            e.detail.contains("title") && e.detail.contains("body"),
            "{}",
            e.detail
        );
        assert!(validate(&input(&"t".repeat(201), "")).is_err());
        assert!(validate(&input("a\0b", "")).is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let note = Note {
            id: Uuid::now_v7(),
            title: "t".into(),
            body: String::new(),
            created_at: Utc.timestamp_micros(1_800_000_000_123_456).single().unwrap(),
            updated_at: Utc.timestamp_micros(1_800_000_000_123_456).single().unwrap(),
        };
        let cursor = decode_cursor(&encode_cursor(&note)).unwrap();
        assert_eq!(cursor.id, note.id);
        assert_eq!(cursor.created_at, note.created_at);
        assert!(decode_cursor("not-a-cursor").is_none());
        let before_1970 = URL_SAFE_NO_PAD.encode(format!("-300000000000000000.{}", note.id));
        assert!(decode_cursor(&before_1970).is_none());
    }
}
