//! Pages of a list, as Stripe's lists have them: at most `limit` items
//! after the item `starting_after` names, and whether more follow.
//!
//! Every list a caller can reach (`/v1` and the dashboard) takes a `Page`
//! and answers a `PageOf<T>`; the operator's CLI alone lists everything.
//! The store pages by keyset — `(created_at, id)` past the cursor's own,
//! never OFFSET — so a row inserted between two fetches neither repeats nor
//! hides an older one, and a deep page costs what the first one does.

use serde::Serialize;

/// The page size when the caller names none.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page: a list of 10,000 keys is never one answer.
pub const MAX_LIMIT: u32 = 100;

/// Which page of a list to read. Made only by `Page::parse` (or
/// `Page::first`), so `limit` is always within 1..=`MAX_LIMIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    limit: u32,
    starting_after: Option<String>,
}

impl Default for Page {
    fn default() -> Self {
        Self::first(DEFAULT_LIMIT)
    }
}

impl Page {
    /// Parses the query's `limit` (absent: `DEFAULT_LIMIT`) and
    /// `starting_after` (the id of the last item of the previous page).
    pub fn parse(limit: Option<&str>, starting_after: Option<String>) -> Result<Self, PageError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => {
                text.parse::<u32>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or(PageError::BadLimit)?
            }
        };
        // An empty cursor names nothing; treating it as "no cursor" would
        // silently restart the walk.
        if starting_after.as_deref() == Some("") {
            return Err(PageError::UnknownCursor);
        }
        Ok(Self { limit, starting_after })
    }

    /// The first page of `limit` items (clamped to 1..=`MAX_LIMIT`).
    pub fn first(limit: u32) -> Self {
        Self { limit: limit.clamp(1, MAX_LIMIT), starting_after: None }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn starting_after(&self) -> Option<&str> {
        self.starting_after.as_deref()
    }

    /// How many rows the store fetches: one more than the page holds, so
    /// that `has_more` needs no COUNT.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageOf<T> {
    pub data: Vec<T>,
    /// Whether items follow the last of `data`.
    pub has_more: bool,
}

impl<T> PageOf<T> {
    /// Cuts the `page.fetch()` rows a store query returned down to the
    /// page, converting each.
    pub fn from_rows<R, E>(rows: Vec<R>, page: &Page, convert: impl FnMut(R) -> Result<T, E>) -> Result<Self, E> {
        let limit = page.limit as usize;
        let has_more = rows.len() > limit;
        let data = rows.into_iter().take(limit).map(convert).collect::<Result<_, _>>()?;
        Ok(Self { data, has_more })
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> PageOf<U> {
        PageOf { data: self.data.into_iter().map(f).collect(), has_more: self.has_more }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("limit must be an integer from 1 to {MAX_LIMIT}")]
    BadLimit,
    /// Unknown, or an item the caller may not see: the same answer, so a
    /// cursor cannot probe for other people's ids.
    #[error("starting_after names no item of this list")]
    UnknownCursor,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(Page::parse(None, None).unwrap().limit(), DEFAULT_LIMIT);
        assert_eq!(Page::parse(Some("1"), None).unwrap().limit(), 1);
        assert_eq!(Page::parse(Some("100"), None).unwrap().limit(), 100);
        for bad in ["0", "101", "-1", "x", "", "1.5", " 5"] {
            assert_eq!(Page::parse(Some(bad), None), Err(PageError::BadLimit), "{bad:?}");
        }
        assert_eq!(Page::parse(None, Some(String::new())), Err(PageError::UnknownCursor));
    }

    #[test]
    fn from_rows_cuts_the_extra_row_into_has_more() {
        let page = Page::first(2);
        let full = PageOf::from_rows(vec![1, 2, 3], &page, Ok::<_, ()>).unwrap();
        assert_eq!(full, PageOf { data: vec![1, 2], has_more: true });
        let last = PageOf::from_rows(vec![1, 2], &page, Ok::<_, ()>).unwrap();
        assert_eq!(last, PageOf { data: vec![1, 2], has_more: false });
    }
}
