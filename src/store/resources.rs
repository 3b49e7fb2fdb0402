//! The `resource_servers` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::resource_servers;
use super::{DbConn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = resource_servers)]
pub struct ResourceServerRow {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub scopes: String,
    pub algorithm: String,
    pub secret_fingerprint: String,
    pub secret_sealed: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// `Conflict` when the identifier is taken.
pub fn insert(conn: &mut DbConn, row: &ResourceServerRow) -> Result<(), StoreError> {
    diesel::insert_into(resource_servers::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<ResourceServerRow>, StoreError> {
    Ok(resource_servers::table.find(id).select(ResourceServerRow::as_select()).first(conn).optional()?)
}

pub fn find_by_identifier(conn: &mut DbConn, identifier: &str) -> Result<Option<ResourceServerRow>, StoreError> {
    Ok(resource_servers::table
        .filter(resource_servers::identifier.eq(identifier))
        .select(ResourceServerRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every resource server, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<ResourceServerRow>, StoreError> {
    Ok(resource_servers::table
        .order((resource_servers::created_at.asc(), resource_servers::id.asc()))
        .select(ResourceServerRow::as_select())
        .load(conn)?)
}

/// Replaces the secret; `NotFound` when no resource server has this id.
pub fn set_secret(
    conn: &mut DbConn,
    id: &str,
    fingerprint: &str,
    sealed: Option<&str>,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let n = diesel::update(resource_servers::table.find(id))
        .set((
            resource_servers::secret_fingerprint.eq(fingerprint),
            resource_servers::secret_sealed.eq(sealed),
            resource_servers::updated_at.eq(now),
        ))
        .execute(conn)?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}
