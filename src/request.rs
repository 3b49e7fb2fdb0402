//! The request being served: its id, set by the request-id middleware for
//! the whole handling of a request, so that every log line and audit
//! event of it can name it. A leaf: any layer may ask.

tokio::task_local! {
    /// The id of the request being served.
    pub static REQUEST_ID: String;
}

/// The current request id, if called while serving a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
