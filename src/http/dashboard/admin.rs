//! `/dashboard/admin/…`: what an admin does at the CLI, as pages — people
//! (create, disable, reset a password), every client, resource servers,
//! signing keys and the audit log. Every handler calls a service in
//! `crate::admin`, `crate::people` or `crate::audit`, which refuses anyone
//! but an admin (403 here), so a member gets nothing by typing a URL.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::api_keys::{ConfirmPage, FieldError, SecretPage, error_for};
use super::apps::{AppRow, app_row};
use super::{FormFields, Layout, Section, Signed, forbidden, not_found, secret_page, see_other, store_failure, when};
use crate::accounts::{AccountError, NewUser, Role};
use crate::admin::{self, AdminError};
use crate::audit::{self, AuditReadError, Filter};
use crate::crypto::random_base62;
use crate::domain::page::Page;
use crate::http::AppState;
use crate::http::pages::{error_page, render};
use crate::jwt::keys::SigningAlg;
use crate::oauth::registration::InitialTokenError;
use crate::oauth::resources::{NewResource, ResourceError, TokenAlg};
use crate::people::{self, PeopleError};

/// The page for a refusal that is not about a form field.
pub(super) fn admin_error(e: AdminError) -> HttpResponse {
    match e {
        AdminError::Denied(d) => forbidden(&d.to_string()),
        AdminError::Account(AccountError::UnknownUser) => not_found(),
        AdminError::Account(AccountError::Store(s)) => store_failure(s),
        AdminError::Account(other) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &other.to_string()),
        AdminError::Resource(ResourceError::Unknown) => not_found(),
        AdminError::Resource(ResourceError::Store(s)) => store_failure(s),
        AdminError::Resource(other) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &other.to_string()),
        AdminError::SigningKey(e) => store_failure(e),
        AdminError::Page(e) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
        AdminError::People(e) => people_error(e),
        AdminError::Registration(InitialTokenError::Unknown) => not_found(),
        AdminError::Registration(InitialTokenError::Store(s)) => store_failure(s),
        AdminError::Registration(e) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
    }
}

fn people_error(e: PeopleError) -> HttpResponse {
    match e {
        PeopleError::Denied(d) => forbidden(&d.to_string()),
        PeopleError::Account(a) => admin_error(AdminError::Account(a)),
        PeopleError::Page(e) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
        PeopleError::CannotDisableSelf => {
            error_page(StatusCode::CONFLICT, "Not allowed", "You cannot disable yourself; ask another admin.")
        }
        PeopleError::WrongPassword => forbidden("That is not your current password."),
        PeopleError::Busy => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "The server is checking as many passwords as it can; try again in a moment.",
        ),
        PeopleError::Throttled(_) => {
            error_page(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", "Too many wrong passwords; wait a while.")
        }
    }
}

// People.

pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: &'static str,
    pub status: &'static str,
    pub created: String,
    pub is_self: bool,
}

#[derive(Default)]
pub struct UserForm {
    pub email: String,
    pub name: String,
    pub admin: bool,
}

#[derive(Template)]
#[template(path = "dashboard/admin_users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserRow>,
    next: Option<String>,
    form: UserForm,
    errors: Vec<FieldError>,
}

impl UsersPage {
    fn error(&self, field: &str) -> Option<&str> {
        error_for(&self.errors, field)
    }
}

async fn users_page_with(
    state: &AppState,
    signed: &Signed,
    page: Page,
    form: UserForm,
    errors: Vec<FieldError>,
    status: StatusCode,
) -> HttpResponse {
    let principal = signed.principal.clone();
    let users = match state.db.run(move |conn| admin::list_users(conn, &principal, &page)).await {
        Ok(u) => u,
        Err(e) => return admin_error(e),
    };
    let next = super::next_page("/dashboard/admin/users", users.has_more, users.data.last().map(|u| u.id.as_str()));
    let users = users.data;
    let me = signed.principal.user.id.clone();
    let users = users
        .into_iter()
        .map(|u| UserRow {
            is_self: u.id == me,
            role: u.role.as_str(),
            status: if u.disabled { "disabled" } else { "active" },
            created: when(&u.created_at),
            id: u.id,
            email: u.email,
            name: u.name,
        })
        .collect();
    render(status, &UsersPage { layout: signed.layout(Section::Admin), users, next, form, errors })
}

/// `GET /dashboard/admin/users`.
pub async fn users_page(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<super::PageParams>,
) -> HttpResponse {
    match query.into_inner().page() {
        Ok(page) => users_page_with(&state, &signed, page, UserForm::default(), Vec::new(), StatusCode::OK).await,
        Err(e) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
    }
}

/// `POST /dashboard/admin/users`: a new person with a generated password,
/// shown once (they change it… by asking an admin to reset it, for now).
pub async fn create_user(state: web::Data<AppState>, signed: Signed, req: HttpRequest, body: Bytes) -> HttpResponse {
    let form = match FormFields::checked(&signed, &req, &body) {
        Ok(f) => f,
        Err(refused) => return refused.page(),
    };
    let kept = UserForm {
        email: form.one("email").to_string(),
        name: form.one("name").to_string(),
        admin: form.one("admin") == "on",
    };
    let password = random_base62(admin::RESET_PASSWORD_LEN);
    let role = if kept.admin { Role::Admin } else { Role::Member };
    let new = match NewUser::parse(&kept.email, &kept.name, &password, role) {
        Ok(n) => n,
        Err(e) => {
            let field = match e {
                AccountError::InvalidEmail(_) => "email",
                AccountError::InvalidName(_) => "name",
                _ => "",
            };
            let errors = vec![FieldError { field, message: e.to_string() }];
            return users_page_with(&state, &signed, Page::default(), kept, errors, StatusCode::BAD_REQUEST).await;
        }
    };
    let (clock, principal) = (state.clock.clone(), signed.principal.clone());
    let hashes = state.hashes.clone();
    match state.db.run(move |conn| people::create(conn, clock.as_ref(), &hashes, &principal, new)).await {
        Ok(user) => secret_page(
            StatusCode::CREATED,
            &SecretPage {
                layout: signed.layout(Section::Admin),
                title: format!("{} can sign in", user.email),
                intro: "Give this password to the person over a channel you trust.".into(),
                secret_label: "Password",
                secret: password,
                facts: vec![("Email", user.email.clone()), ("User ID", user.id.clone())],
                next: "/dashboard/admin/users".into(),
                next_label: "Back to people",
            },
        ),
        Err(PeopleError::Account(AccountError::EmailTaken)) => {
            let errors = vec![FieldError { field: "email", message: "A person with this email exists.".into() }];
            users_page_with(&state, &signed, Page::default(), kept, errors, StatusCode::CONFLICT).await
        }
        Err(e) => people_error(e),
    }
}

/// `GET /dashboard/admin/users/{id}/disable`: the confirmation.
pub async fn disable_user_page(state: web::Data<AppState>, signed: Signed, id: web::Path<String>) -> HttpResponse {
    let (principal, id) = (signed.principal.clone(), id.into_inner());
    let target = id.clone();
    let user = match state.db.run(move |conn| people::get(conn, &principal, &target)).await {
        Ok(u) => u,
        Err(e) => return people_error(e),
    };
    if !signed.principal.is_admin() {
        return forbidden("Only an admin may disable people.");
    }
    render(
        StatusCode::OK,
        &ConfirmPage {
            layout: signed.layout(Section::Admin),
            title: format!("Disable {}?", user.email),
            warning: "They can no longer sign in; their sessions end, and every key, token and app grant of theirs stops working at once.".into(),
            action: format!("/dashboard/admin/users/{id}/disable"),
            button: "Disable",
            back: "/dashboard/admin/users".into(),
        },
    )
}

/// `POST /dashboard/admin/users/{id}/disable`.
pub async fn disable_user(
    state: web::Data<AppState>,
    signed: Signed,
    req: HttpRequest,
    id: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    if let Err(refused) = FormFields::checked(&signed, &req, &body) {
        return refused.page();
    }
    let (clock, principal, id) = (state.clock.clone(), signed.principal.clone(), id.into_inner());
    match state.db.run(move |conn| people::disable(conn, clock.as_ref(), &principal, &id)).await {
        Ok(_) => see_other("/dashboard/admin/users"),
        Err(e) => people_error(e),
    }
}

/// `POST /dashboard/admin/users/{id}/reset-password`: a new password,
/// shown once; the person's sessions end.
pub async fn reset_password(
    state: web::Data<AppState>,
    signed: Signed,
    req: HttpRequest,
    id: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    if let Err(refused) = FormFields::checked(&signed, &req, &body) {
        return refused.page();
    }
    let (clock, principal, id) = (state.clock.clone(), signed.principal.clone(), id.into_inner());
    let hashes = state.hashes.clone();
    match state.db.run(move |conn| admin::reset_password(conn, clock.as_ref(), &hashes, &principal, &id)).await {
        Ok((user, password)) => secret_page(
            StatusCode::OK,
            &SecretPage {
                layout: signed.layout(Section::Admin),
                title: format!("New password for {}", user.email),
                intro: "Their old password no longer works and their sessions have ended.".into(),
                secret_label: "Password",
                secret: password.expose().to_string(),
                facts: vec![("Email", user.email.clone())],
                next: "/dashboard/admin/users".into(),
                next_label: "Back to people",
            },
        ),
        Err(e) => admin_error(e),
    }
}

// Clients.

#[derive(Template)]
#[template(path = "dashboard/admin_clients.html")]
struct ClientsPage {
    layout: Layout,
    clients: Vec<(AppRow, String)>,
    next: Option<String>,
}

/// `GET /dashboard/admin/clients`: every client, with its owner.
pub async fn clients_page(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<super::PageParams>,
) -> HttpResponse {
    let page = match query.into_inner().page() {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
    };
    let principal = signed.principal.clone();
    match state.db.run(move |conn| admin::list_clients(conn, &principal, &page)).await {
        Ok(list) => {
            let next = super::next_page(
                "/dashboard/admin/clients",
                list.has_more,
                list.data.last().map(|c| c.client_id.as_str()),
            );
            let clients =
                list.data.iter().map(|c| (app_row(c), c.owner_id.clone().unwrap_or_else(|| "—".into()))).collect();
            render(StatusCode::OK, &ClientsPage { layout: signed.layout(Section::Admin), clients, next })
        }
        Err(e) => admin_error(e),
    }
}

// Resource servers.

pub struct ResourceRow {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub alg: &'static str,
    pub scope: String,
}

#[derive(Default)]
pub struct ResourceForm {
    pub identifier: String,
    pub name: String,
    pub alg: String,
    pub scope: String,
}

#[derive(Template)]
#[template(path = "dashboard/admin_resources.html")]
struct ResourcesPage {
    layout: Layout,
    resources: Vec<ResourceRow>,
    form: ResourceForm,
    errors: Vec<FieldError>,
    algs: Vec<&'static str>,
}

impl ResourcesPage {
    fn error(&self, field: &str) -> Option<&str> {
        error_for(&self.errors, field)
    }
}

const TOKEN_ALGS: [(&str, TokenAlg); 4] =
    [("RS256", TokenAlg::Rs256), ("ES256", TokenAlg::Es256), ("EdDSA", TokenAlg::EdDsa), ("HS256", TokenAlg::Hs256)];

async fn resources_page_with(
    state: &AppState,
    signed: &Signed,
    form: ResourceForm,
    errors: Vec<FieldError>,
    status: StatusCode,
) -> HttpResponse {
    let principal = signed.principal.clone();
    let list = match state.db.run(move |conn| admin::list_resources(conn, &principal)).await {
        Ok(l) => l,
        Err(e) => return admin_error(e),
    };
    let resources = list
        .into_iter()
        .map(|r| ResourceRow {
            alg: r.algorithm.as_str(),
            scope: r.scope.to_string(),
            id: r.id,
            identifier: r.identifier,
            name: r.name,
        })
        .collect();
    let algs = TOKEN_ALGS.iter().map(|(name, _)| *name).collect();
    render(status, &ResourcesPage { layout: signed.layout(Section::Admin), resources, form, errors, algs })
}

/// `GET /dashboard/admin/resources`.
pub async fn resources_page(state: web::Data<AppState>, signed: Signed) -> HttpResponse {
    let form = ResourceForm { alg: "RS256".into(), ..ResourceForm::default() };
    resources_page_with(&state, &signed, form, Vec::new(), StatusCode::OK).await
}

fn resource_secret_page(signed: &Signed, status: StatusCode, title: String, id: &str, secret: String) -> HttpResponse {
    secret_page(
        status,
        &SecretPage {
            layout: signed.layout(Section::Admin),
            title,
            intro: "The resource server authenticates to introspection with its id and this secret (and, for HS256, verifies its tokens with it).".into(),
            secret_label: "Resource-server secret",
            secret,
            facts: vec![("ID", id.to_string())],
            next: "/dashboard/admin/resources".into(),
            next_label: "Back to resource servers",
        },
    )
}

/// `POST /dashboard/admin/resources`: registers one; its secret, once.
pub async fn create_resource(
    state: web::Data<AppState>,
    signed: Signed,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let form = match FormFields::checked(&signed, &req, &body) {
        Ok(f) => f,
        Err(refused) => return refused.page(),
    };
    let kept = ResourceForm {
        identifier: form.one("identifier").to_string(),
        name: form.one("name").to_string(),
        alg: form.one("alg").to_string(),
        scope: form.one("scope").to_string(),
    };
    let Some(alg) = TOKEN_ALGS.iter().find(|(name, _)| *name == kept.alg).map(|(_, a)| *a) else {
        let errors = vec![FieldError { field: "alg", message: "Choose RS256, ES256, EdDSA or HS256.".into() }];
        return resources_page_with(&state, &signed, kept, errors, StatusCode::BAD_REQUEST).await;
    };
    let (clock, master, principal) = (state.clock.clone(), state.master_key.clone(), signed.principal.clone());
    let (identifier, name, scope) = (kept.identifier.clone(), kept.name.clone(), kept.scope.clone());
    let created = state
        .db
        .run(move |conn| {
            let new = NewResource { identifier: &identifier, name: &name, alg, scope: &scope };
            admin::create_resource(conn, clock.as_ref(), &master, &principal, new)
        })
        .await;
    match created {
        Ok((rs, secret)) => resource_secret_page(
            &signed,
            StatusCode::CREATED,
            format!("{} is registered", rs.identifier),
            &rs.id,
            secret.expose().to_string(),
        ),
        Err(AdminError::Resource(e @ (ResourceError::Invalid { .. } | ResourceError::IdentifierTaken))) => {
            let field = match &e {
                ResourceError::Invalid { field, .. } => field,
                _ => "identifier",
            };
            let errors = vec![FieldError { field, message: e.to_string() }];
            resources_page_with(&state, &signed, kept, errors, StatusCode::BAD_REQUEST).await
        }
        Err(e) => admin_error(e),
    }
}

/// `POST /dashboard/admin/resources/{id}/rotate-secret`: at once.
pub async fn rotate_resource(
    state: web::Data<AppState>,
    signed: Signed,
    req: HttpRequest,
    id: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    if let Err(refused) = FormFields::checked(&signed, &req, &body) {
        return refused.page();
    }
    let (clock, master, principal, id) =
        (state.clock.clone(), state.master_key.clone(), signed.principal.clone(), id.into_inner());
    match state.db.run(move |conn| admin::rotate_resource_secret(conn, clock.as_ref(), &master, &principal, &id)).await
    {
        Ok((rs, secret)) => resource_secret_page(
            &signed,
            StatusCode::OK,
            format!("New secret for {}", rs.identifier),
            &rs.id,
            secret.expose().to_string(),
        ),
        Err(e) => admin_error(e),
    }
}

// Signing keys.

pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub created: String,
    pub activates: String,
    pub unpublish: String,
}

#[derive(Template)]
#[template(path = "dashboard/admin_signing_keys.html")]
struct SigningKeysPage {
    layout: Layout,
    keys: Vec<SigningKeyRow>,
    staged: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct Staged {
    staged: Option<String>,
}

/// `GET /dashboard/admin/signing-keys`.
pub async fn signing_keys_page(state: web::Data<AppState>, signed: Signed, notice: web::Query<Staged>) -> HttpResponse {
    let principal = signed.principal.clone();
    match state.db.run(move |conn| admin::list_signing_keys(conn, &principal)).await {
        Ok(list) => {
            let keys = list
                .into_iter()
                .map(|k| SigningKeyRow {
                    created: when(&k.created_at),
                    activates: when(&k.activates_at),
                    unpublish: k.unpublish_at.as_ref().map(when).unwrap_or_else(|| "—".into()),
                    kid: k.kid,
                    alg: k.algorithm,
                    state: k.state,
                })
                .collect();
            let staged = notice.into_inner().staged.map(|s| s.chars().take(80).collect());
            render(StatusCode::OK, &SigningKeysPage { layout: signed.layout(Section::Admin), keys, staged })
        }
        Err(e) => admin_error(e),
    }
}

/// `POST /dashboard/admin/signing-keys` (field `alg`): stages a new key.
pub async fn rotate_signing_key(
    state: web::Data<AppState>,
    signed: Signed,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let form = match FormFields::checked(&signed, &req, &body) {
        Ok(f) => f,
        Err(refused) => return refused.page(),
    };
    let alg = match form.one("alg") {
        "RS256" => SigningAlg::Rs256,
        "ES256" => SigningAlg::Es256,
        "EdDSA" => SigningAlg::EdDsa,
        _ => return error_page(StatusCode::BAD_REQUEST, "Not accepted", "Choose RS256, ES256 or EdDSA."),
    };
    let (clock, master, policy, principal) =
        (state.clock.clone(), state.master_key.clone(), state.config.rotation_policy(), signed.principal.clone());
    match state
        .db
        .run(move |conn| admin::rotate_signing_key(conn, clock.as_ref(), &master, &policy, &principal, alg))
        .await
    {
        Ok(key) => {
            let query = form_urlencoded::Serializer::new(String::new()).append_pair("staged", &key.kid).finish();
            see_other(&format!("/dashboard/admin/signing-keys?{query}"))
        }
        Err(e) => admin_error(e),
    }
}

// The audit log.

pub struct EventRow {
    pub at: String,
    /// The person by name (or the CLI operator, the server) and email…
    pub actor: String,
    pub actor_email: String,
    /// …her id, for the filter…
    pub actor_id: String,
    /// …and the credential she acted with, by name.
    pub credential: String,
    pub action: String,
    /// What the target is called, and its id.
    pub target_name: String,
    pub target: String,
    pub ip: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "dashboard/admin_audit.html")]
struct AuditPage {
    layout: Layout,
    events: Vec<EventRow>,
    action: String,
    actor: String,
    target: String,
    next: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    limit: Option<String>,
    starting_after: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `GET /dashboard/admin/audit?action=&actor=&target=&limit=&starting_after=`:
/// one page of the log, newest first.
pub async fn audit_page(state: web::Data<AppState>, signed: Signed, query: web::Query<AuditQuery>) -> HttpResponse {
    let AuditQuery { action, actor, target, limit, starting_after } = query.into_inner();
    let (action, actor, target) = (non_empty(action), non_empty(actor), non_empty(target));
    let filter = Filter { action: action.clone(), actor: actor.clone(), target: target.clone() };
    let principal = signed.principal.clone();
    let page = match Page::parse(limit.as_deref(), starting_after) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
    };
    match state.db.run(move |conn| audit::recent_described(conn, &principal, &filter, &page)).await {
        Ok(list) => {
            let next = match (list.has_more, list.data.last()) {
                (true, Some(last)) => {
                    let mut q = form_urlencoded::Serializer::new(String::new());
                    for (k, v) in [("action", &action), ("actor", &actor), ("target", &target), ("limit", &limit)] {
                        if let Some(v) = v {
                            q.append_pair(k, v);
                        }
                    }
                    Some(format!("/dashboard/admin/audit?{}", q.append_pair("starting_after", &last.event.id).finish()))
                }
                _ => None,
            };
            let events = list
                .data
                .into_iter()
                .map(|d| EventRow {
                    at: when(&d.event.occurred_at),
                    actor: d.actor,
                    actor_email: d.actor_email.unwrap_or_default(),
                    actor_id: d.event.actor.unwrap_or_default(),
                    credential: d.credential.unwrap_or_default(),
                    action: d.event.action,
                    target_name: d.target.unwrap_or_default(),
                    target: d.event.target.unwrap_or_default(),
                    ip: d.event.ip.unwrap_or_default(),
                    details: d.event.details.to_string(),
                })
                .collect();
            render(
                StatusCode::OK,
                &AuditPage {
                    layout: signed.layout(Section::Admin),
                    events,
                    action: action.unwrap_or_default(),
                    actor: actor.unwrap_or_default(),
                    target: target.unwrap_or_default(),
                    next,
                },
            )
        }
        Err(AuditReadError::Denied(d)) => forbidden(&d.to_string()),
        Err(AuditReadError::Page(e)) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
        Err(AuditReadError::Store(e)) => store_failure(e),
    }
}
