//! The four `/v1` permissions and the rules that combine them. Every
//! credential's permissions are a `Permissions` set, parsed once from
//! untrusted input (a request's list, a stored column, an OAuth scope)
//! before any rule reads it; `effective` is the one place where a
//! credential meets what its owner may do now.

use std::fmt;

use serde::{Serialize, Serializer};

use super::scope::Scopes;
use super::user::{Role, User};

/// One permission; an HTTP method needs one of them (`for_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    Read,
    Write,
    Delete,
    Admin,
}

impl Permission {
    pub const ALL: [Permission; 4] = [Self::Read, Self::Write, Self::Delete, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
            Self::Admin => "admin",
        }
    }

    /// Exactly one of the four names: no trimming, no case folding, no
    /// lists. `"write,admin"` and `" admin"` are not permissions.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// The permission an HTTP method needs: read for GET and HEAD, delete
    /// for DELETE, write for everything else.
    pub fn for_method(method: &str) -> Self {
        match method {
            "GET" | "HEAD" => Self::Read,
            "DELETE" => Self::Delete,
            _ => Self::Write,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u8);

/// Why a list of permissions was refused; names the offending entry
/// (shortened, printable) so the caller can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?}: each entry must be exactly one of read, write, delete, admin")]
pub struct UnknownPermission(pub String);

impl Permissions {
    pub const NONE: Self = Self(0);
    pub const ALL: Self = Self(0b1111);

    /// What a role may do at most.
    pub fn of_role(role: Role) -> Self {
        match role {
            Role::Admin => Self::ALL,
            Role::Member => Self::from_iter([Permission::Read, Permission::Write, Permission::Delete]),
        }
    }

    /// What a user may do now: nothing when disabled.
    pub fn of_user(user: &User) -> Self {
        if user.disabled { Self::NONE } else { Self::of_role(user.role) }
    }

    /// Parses a list from a request: every entry exactly one name.
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Self, UnknownPermission> {
        items.iter().try_fold(Self::NONE, |set, item| {
            let item = item.as_ref();
            Permission::parse(item)
                .map(|p| set.with(p))
                .ok_or_else(|| UnknownPermission(item.chars().filter(|c| !c.is_control()).take(40).collect()))
        })
    }

    /// Reads the stored column (space-separated names this module wrote);
    /// anything else is dropped, so a corrupt row grants less, never more.
    pub fn from_stored(text: &str) -> Self {
        text.split(' ').filter_map(Permission::parse).collect()
    }

    /// The permissions an OAuth scope carries on `/v1`: the tokens `read`,
    /// `write`, `delete` and `admin`, and `<resource>:read|write|delete`.
    /// A namespaced `x:admin` is never admin: only the bare `admin` scope,
    /// which only an admin's client can hold, is.
    pub fn from_scope(scope: &Scopes) -> Self {
        scope
            .iter()
            .filter_map(|token| match token.rsplit_once(':') {
                None => Permission::parse(token),
                Some((_, p)) => Permission::parse(p).filter(|p| *p != Permission::Admin),
            })
            .collect()
    }

    pub fn with(self, p: Permission) -> Self {
        Self(self.0 | p.bit())
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_subset(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Permissions in `self` that `other` lacks.
    pub fn missing_from(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// Whether a request with `method` is allowed: the method's own
    /// permission, or admin.
    pub fn allows_method(self, method: &str) -> bool {
        self.contains(Permission::for_method(method)) || self.contains(Permission::Admin)
    }

    /// The stored and displayed form, in canonical order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl utoipa::PartialSchema for Permissions {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <Vec<String> as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Permissions {}

/// The one rule every credential passes through: what it was granted,
/// cut down to what its owner may do now.
pub fn effective(granted: Permissions, owner: &User) -> Permissions {
    granted.intersection(Permissions::of_user(owner))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn only_exact_names_parse() {
        assert_eq!(Permissions::parse_list(&["read", "write"]).unwrap().names(), ["read", "write"]);
        for bad in ["write,admin", " admin", "admin ", "Admin", "ADMIN", "", "x:admin", "read write"] {
            assert!(Permissions::parse_list(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_map_onto_permissions_but_namespaced_admin_does_not() {
        let s = |t: &str| Permissions::from_scope(&Scopes::parse(t).unwrap());
        assert_eq!(s("read payments:write openid").names(), ["read", "write"]);
        assert!(!s("x:admin payments:admin").contains(Permission::Admin));
        assert!(s("admin").contains(Permission::Admin));
    }

    proptest! {
        #[test]
        fn parsing_any_list_never_panics_and_round_trips(items in proptest::collection::vec(".{0,12}", 0..8)) {
            if let Ok(set) = Permissions::parse_list(&items) {
                prop_assert!(items.iter().all(|i| Permission::parse(i).is_some()));
                prop_assert_eq!(Permissions::from_stored(&set.to_string()), set);
                prop_assert_eq!(Permissions::parse_list(&set.names()).unwrap(), set);
            }
        }

        #[test]
        fn effective_is_never_more_than_either_side(granted in 0u8..16, role_admin: bool, disabled: bool) {
            let granted = Permissions(granted);
            let now = chrono::Utc::now();
            let role = if role_admin { Role::Admin } else { Role::Member };
            let user = User { id: "usr_x".into(), email: "x@example.com".into(), name: "X".into(), role, disabled, created_at: now, updated_at: now };
            let eff = effective(granted, &user);
            prop_assert!(eff.is_subset(granted));
            prop_assert!(eff.is_subset(Permissions::of_role(user.role)));
            prop_assert!(!disabled || eff.is_empty());
            prop_assert!(role_admin || !eff.contains(Permission::Admin));
        }

        #[test]
        fn scope_mapping_never_panics_nor_grants_admin_from_a_namespace(tokens in proptest::collection::vec("[a-z:]{1,10}", 0..6)) {
            let scope = Scopes::parse(&tokens.join(" ")).unwrap();
            let set = Permissions::from_scope(&scope);
            prop_assert_eq!(set.contains(Permission::Admin), scope.contains("admin"));
        }
    }
}
