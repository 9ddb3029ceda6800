//! Errors of vault operations, classified by who must act on them.

use crate::store::StoreError;

/// What went wrong in a vault operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The credentials are missing, unknown, wrong or revoked. Deliberately
    /// carries no detail, so callers cannot tell which.
    #[error("invalid or revoked API key")]
    Unauthorized,
    /// The key's role does not allow the operation (or a scoped key asked
    /// to create a secret, which its scope could never include).
    #[error("this API key's role or scope does not allow this request")]
    Forbidden,
    /// No such secret in the caller's account (also when it exists in another).
    #[error("no such TOTP secret")]
    NotFound,
    /// The input is invalid; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The database cannot be reached.
    #[error("database unavailable")]
    Unavailable(#[source] StoreError),
    /// The account already holds the most secrets allowed.
    #[error("the account already holds {limit} secrets, the most allowed")]
    QuotaExceeded {
        /// The per-account quota.
        limit: u64,
    },
    /// Anything else: a bug, corrupt data, a failing random generator.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for VaultError {
    fn from(error: StoreError) -> VaultError {
        match error {
            StoreError::Unavailable(_) => VaultError::Unavailable(error),
            StoreError::QuotaExceeded { limit } => VaultError::QuotaExceeded { limit },
            other => VaultError::Internal(other.to_string()),
        }
    }
}

/// Shows an error and every source below it, `outer: inner: innermost`, for
/// a log line that keeps the whole cause chain.
#[derive(Clone, Copy, Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_shows_every_source() {
        let error = VaultError::Unavailable(StoreError::Unavailable("connection refused".into()));
        assert_eq!(
            ErrorChain(&error).to_string(),
            "database unavailable: database unavailable: connection refused"
        );
        assert_eq!(
            ErrorChain(&VaultError::NotFound).to_string(),
            "no such TOTP secret"
        );
    }
}
