//! `notes` queries.

use chrono::{DateTime, Utc};
use diesel::dsl::count_star;
use diesel::prelude::*;
use oauth_common::db::DbError;
use serde::Serialize;
use uuid::Uuid;

use super::schema::notes;

/// A note as the API returns it (the owner is implied by the token).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = notes, check_for_backend(diesel::pg::Pg))]
pub struct Note {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a page of the list starts (exclusive): the last note of the
/// previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

pub fn insert(
    conn: &mut PgConnection,
    owner: &str,
    title: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<Note, DbError> {
    Ok(diesel::insert_into(notes::table)
        .values((
            notes::id.eq(Uuid::now_v7()),
            notes::owner.eq(owner),
            notes::title.eq(title),
            notes::body.eq(body),
            notes::created_at.eq(now),
            notes::updated_at.eq(now),
        ))
        .returning(Note::as_returning())
        .get_result(conn)?)
}

/// The owner's notes, newest first, after `cursor`.
pub fn list(
    conn: &mut PgConnection,
    owner: &str,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<Note>, DbError> {
    let mut query = notes::table
        .filter(notes::owner.eq(owner))
        .select(Note::as_select())
        .order((notes::created_at.desc(), notes::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(c) = cursor {
        query = query.filter(
            notes::created_at
                .lt(c.created_at)
                .or(notes::created_at.eq(c.created_at).and(notes::id.lt(c.id))),
        );
    }
    Ok(query.load(conn)?)
}

pub fn get(conn: &mut PgConnection, id: Uuid, owner: &str) -> Result<Option<Note>, DbError> {
    Ok(notes::table
        .filter(notes::id.eq(id).and(notes::owner.eq(owner)))
        .select(Note::as_select())
        .first(conn)
        .optional()?)
}

pub fn update(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    title: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<Option<Note>, DbError> {
    Ok(
        diesel::update(notes::table.filter(notes::id.eq(id).and(notes::owner.eq(owner))))
            .set((
                notes::title.eq(title),
                notes::body.eq(body),
                notes::updated_at.eq(now),
            ))
            .returning(Note::as_returning())
            .get_result(conn)
            .optional()?,
    )
}

pub fn delete(conn: &mut PgConnection, id: Uuid, owner: &str) -> Result<bool, DbError> {
    let n =
        diesel::delete(notes::table.filter(notes::id.eq(id).and(notes::owner.eq(owner)))).execute(conn)?;
    Ok(n > 0)
}

/// Counts for the admin view: no note contents.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub users: i64,
    pub notes: i64,
    /// The users with the most notes, at most 100.
    pub notes_per_user: Vec<UserCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserCount {
    pub sub: String,
    pub notes: i64,
}

pub fn stats(conn: &mut PgConnection) -> Result<Stats, DbError> {
    let per_user: Vec<(String, i64)> = notes::table
        .group_by(notes::owner)
        .select((notes::owner, count_star()))
        .order((count_star().desc(), notes::owner.asc()))
        .limit(100)
        .load(conn)?;
    let notes_total: i64 = notes::table.count().get_result(conn)?;
    let users: i64 = notes::table
        .select(diesel::dsl::count(notes::owner).aggregate_distinct())
        .get_result(conn)?;
    Ok(Stats {
        users,
        notes: notes_total,
        notes_per_user: per_user
            .into_iter()
            .map(|(sub, notes)| UserCount { sub, notes })
            .collect(),
    })
}
