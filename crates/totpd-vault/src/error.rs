//! Errors of vault operations, classified by who must act on them.

use crate::store::{BoxError, StoreError};

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
    /// Too many failed verifications of this secret: refused until the
    /// throttling window passes.
    #[error("too many failed verifications of this secret; retry after {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until the window passes (at least 1).
        retry_after_secs: u64,
    },
    /// Anything else: a bug, corrupt data, a failing random generator.
    #[error("internal error: {context}")]
    Internal {
        /// What failed, from the vault's side.
        context: String,
        /// The underlying error (a [`StoreError`], a crypto error), if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl VaultError {
    /// [`VaultError::Internal`] with no underlying error.
    pub fn internal(context: impl Into<String>) -> VaultError {
        VaultError::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// [`VaultError::Internal`] caused by `source`.
    pub fn internal_from(context: impl Into<String>, source: impl Into<BoxError>) -> VaultError {
        VaultError::Internal {
            context: context.into(),
            source: Some(source.into()),
        }
    }
}

impl From<StoreError> for VaultError {
    fn from(error: StoreError) -> VaultError {
        match error {
            StoreError::Unavailable { .. } => VaultError::Unavailable(error),
            StoreError::QuotaExceeded { limit } => VaultError::QuotaExceeded { limit },
            other => VaultError::internal_from("the store failed", other),
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

    #[derive(Debug, thiserror::Error)]
    #[error("no such column: algorithm")]
    struct Driver;

    #[test]
    fn the_chain_shows_every_source() {
        let error = VaultError::Unavailable(StoreError::unavailable_msg("connection refused"));
        assert_eq!(
            ErrorChain(&error).to_string(),
            "database unavailable: database unavailable: connection refused"
        );
        assert_eq!(
            ErrorChain(&VaultError::NotFound).to_string(),
            "no such TOTP secret"
        );
    }

    #[test]
    fn a_store_failure_keeps_its_driver_cause_through_the_vault() {
        let store = StoreError::other("reading a secret failed", Driver);
        assert_eq!(
            ErrorChain(&store).to_string(),
            "database error: reading a secret failed: no such column: algorithm"
        );
        let vault = VaultError::from(store);
        assert!(matches!(vault, VaultError::Internal { .. }), "{vault:?}");
        assert_eq!(
            ErrorChain(&vault).to_string(),
            "internal error: the store failed: database error: reading a secret failed: \
             no such column: algorithm"
        );
        let corrupt = VaultError::from(StoreError::corrupt("a stored value", Driver));
        assert_eq!(
            ErrorChain(&corrupt).to_string(),
            "internal error: the store failed: corrupt row: a stored value: no such column: algorithm"
        );
    }

    #[test]
    fn unavailability_and_quota_keep_their_class() {
        let vault = VaultError::from(StoreError::unavailable("a pool timed out", Driver));
        assert!(matches!(vault, VaultError::Unavailable(_)), "{vault:?}");
        assert!(
            ErrorChain(&vault)
                .to_string()
                .ends_with(": no such column: algorithm")
        );
        let vault = VaultError::from(StoreError::QuotaExceeded { limit: 3 });
        assert!(matches!(vault, VaultError::QuotaExceeded { limit: 3 }));
        assert_eq!(
            ErrorChain(&VaultError::internal("no current associated data")).to_string(),
            "internal error: no current associated data"
        );
    }
}
