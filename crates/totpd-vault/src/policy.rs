//! Who may do what: roles, the actions they are checked against, a key's
//! scope, and where a request came from (for the audit log).
//!
//! Every permission decision is [`Principal::authorize`], called by the
//! vault's operations (never by a front end), so the HTTP API, the CLI and
//! any later front end enforce the same rules. A check that depends on the
//! secret (a per-secret policy) belongs there too, where every operation
//! already passes the secret it acts on.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use uuid::Uuid;

/// What a key may do (DESIGN: keys, roles and scopes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Owner,
    /// Everything except managing keys.
    Admin,
    /// List and get secrets, get codes, create and import secrets; never
    /// delete, rename, verify, manage keys or read the audit log.
    Agent,
    /// Only verify codes.
    Verifier,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Agent, Role::Verifier];

    /// The role's name as stored and shown (`owner`, `admin`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Verifier => "verifier",
        }
    }

    /// Whether a key of this role may perform `action` at all (before any
    /// scope or per-secret rule).
    pub fn permits(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Owner => true,
            Role::Admin => !matches!(action, KeyCreate | KeyList | KeyRevoke),
            Role::Agent => matches!(
                action,
                SecretList | SecretRead | CodeRead | SecretCreate | SecretImport
            ),
            Role::Verifier => matches!(action, CodeVerify),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("role must be one of owner, admin, agent, verifier")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownRole)
    }
}

/// An operation a request asks for. The names of the recorded ones are the
/// audit log's `action` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Enroll a secret.
    SecretCreate,
    /// Enroll secrets from an export or image.
    SecretImport,
    /// Rename a secret or change its issuer or settings.
    SecretUpdate,
    /// Delete a secret.
    SecretDelete,
    /// List secrets.
    SecretList,
    /// Read one secret's description.
    SecretRead,
    /// Get a code.
    CodeRead,
    /// Verify a code.
    CodeVerify,
    /// Create an API key.
    KeyCreate,
    /// List API keys.
    KeyList,
    /// Revoke an API key.
    KeyRevoke,
    /// Read the audit log.
    AuditRead,
}

impl Action {
    /// The action's name (`secret.create`, `code.read`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SecretCreate => "secret.create",
            Action::SecretImport => "secret.import",
            Action::SecretUpdate => "secret.update",
            Action::SecretDelete => "secret.delete",
            Action::SecretList => "secret.list",
            Action::SecretRead => "secret.read",
            Action::CodeRead => "code.read",
            Action::CodeVerify => "code.verify",
            Action::KeyCreate => "key.create",
            Action::KeyList => "key.list",
            Action::KeyRevoke => "key.revoke",
            Action::AuditRead => "audit.read",
        }
    }

    /// Whether the action acts on one secret, so a key's scope decides
    /// whether that secret exists for it.
    pub fn targets_a_secret(self) -> bool {
        matches!(
            self,
            Action::SecretUpdate
                | Action::SecretDelete
                | Action::SecretRead
                | Action::CodeRead
                | Action::CodeVerify
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of its account's secrets a key sees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every secret of the account.
    #[default]
    All,
    /// Only these (sorted, without duplicates); every other secret is
    /// absent for the key, as if it did not exist.
    Only(Arc<[Uuid]>),
}

impl Scope {
    /// A scope of the listed ids; sorts them and drops duplicates.
    pub fn only(ids: impl IntoIterator<Item = Uuid>) -> Scope {
        let mut ids: Vec<Uuid> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        Scope::Only(ids.into())
    }

    /// Whether the key sees the secret `id`.
    pub fn contains(&self, id: Uuid) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(ids) => ids.binary_search(&id).is_ok(),
        }
    }

    /// The listed ids, or `None` for every secret.
    pub fn ids(&self) -> Option<&[Uuid]> {
        match self {
            Scope::All => None,
            Scope::Only(ids) => Some(ids),
        }
    }
}

/// Where a request came from, as recorded in the audit log. Every field is
/// what the front end knows; none is trusted for a decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address.
    pub remote_addr: Option<IpAddr>,
    /// The client's `User-Agent`, as sent (front ends cap its length).
    pub user_agent: Option<String>,
    /// The request id the front end answered with.
    pub request_id: Option<String>,
}

/// Why a principal may not do what it asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The role does not allow the action: 403.
    Forbidden,
    /// The secret is outside the key's scope: the same answer as a secret
    /// that does not exist (404).
    OutOfScope,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The account every query of this request is scoped to.
    pub account_id: Uuid,
    /// The API key used.
    pub key_id: String,
    /// What the key may do.
    pub role: Role,
    /// Which of the account's secrets the key sees.
    pub scope: Scope,
    /// Where the request came from.
    pub origin: Origin,
}

impl Principal {
    /// A caller of `role` that sees every secret of the account, from
    /// nowhere in particular (tools and tests; requests go through
    /// `Vault::authenticate`).
    pub fn new(account_id: Uuid, key_id: impl Into<String>, role: Role) -> Principal {
        Principal {
            account_id,
            key_id: key_id.into(),
            role,
            scope: Scope::All,
            origin: Origin::default(),
        }
    }

    /// The one permission check: may this caller perform `action` on
    /// `secret` (for actions that target one)? A role that does not permit
    /// the action is [`Denial::Forbidden`], whatever the secret; so is a
    /// create or import by a scoped key (the new secret could never join
    /// the scope, which is bound into the key's hash, so the key would
    /// enroll a secret it cannot read); a secret outside the key's scope is
    /// [`Denial::OutOfScope`].
    ///
    /// A rule that depends on the secret itself (a per-secret policy such
    /// as "a person approves each code") is added here: every vault
    /// operation already calls this with the secret it acts on, before it
    /// reads or writes, and no front end decides anything itself.
    pub fn authorize(&self, action: Action, secret: Option<Uuid>) -> Result<(), Denial> {
        if !self.role.permits(action) {
            return Err(Denial::Forbidden);
        }
        if matches!(action, Action::SecretCreate | Action::SecretImport) && self.scope != Scope::All
        {
            return Err(Denial::Forbidden);
        }
        if let Some(id) = secret
            && !self.scope.contains(id)
        {
            return Err(Denial::OutOfScope);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_ACTION: [Action; 12] = [
        Action::SecretCreate,
        Action::SecretImport,
        Action::SecretUpdate,
        Action::SecretDelete,
        Action::SecretList,
        Action::SecretRead,
        Action::CodeRead,
        Action::CodeVerify,
        Action::KeyCreate,
        Action::KeyList,
        Action::KeyRevoke,
        Action::AuditRead,
    ];

    #[test]
    fn roles_have_exactly_the_rights_of_the_design() {
        let allowed = |role: Role| -> Vec<&str> {
            EVERY_ACTION
                .into_iter()
                .filter(|a| role.permits(*a))
                .map(Action::as_str)
                .collect()
        };
        assert_eq!(allowed(Role::Owner).len(), EVERY_ACTION.len());
        assert_eq!(
            allowed(Role::Admin),
            [
                "secret.create",
                "secret.import",
                "secret.update",
                "secret.delete",
                "secret.list",
                "secret.read",
                "code.read",
                "code.verify",
                "audit.read"
            ]
        );
        assert_eq!(
            allowed(Role::Agent),
            [
                "secret.create",
                "secret.import",
                "secret.list",
                "secret.read",
                "code.read"
            ]
        );
        assert_eq!(allowed(Role::Verifier), ["code.verify"]);
    }

    #[test]
    fn role_names_round_trip_and_others_are_refused() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!("Owner".parse::<Role>(), Err(UnknownRole));
        assert_eq!("".parse::<Role>(), Err(UnknownRole));
    }

    #[test]
    fn a_scope_hides_other_secrets_and_the_role_is_checked_first() {
        let mine = Uuid::from_u128(7);
        let other = Uuid::from_u128(8);
        let agent = Principal {
            account_id: Uuid::from_u128(1),
            key_id: "tk_x".to_owned(),
            role: Role::Agent,
            scope: Scope::only([mine, mine]),
            origin: Origin::default(),
        };
        assert_eq!(agent.scope.ids(), Some(&[mine][..]));
        assert_eq!(agent.authorize(Action::CodeRead, Some(mine)), Ok(()));
        assert_eq!(
            agent.authorize(Action::CodeRead, Some(other)),
            Err(Denial::OutOfScope)
        );
        assert_eq!(
            agent.authorize(Action::SecretDelete, Some(other)),
            Err(Denial::Forbidden)
        );
        assert!(Scope::All.contains(other));
        assert_eq!(
            agent.authorize(Action::SecretCreate, None),
            Err(Denial::Forbidden),
            "a scoped key cannot enroll secrets it could never read"
        );
        let unscoped = Principal {
            scope: Scope::All,
            ..agent
        };
        assert_eq!(unscoped.authorize(Action::SecretCreate, None), Ok(()));
    }
}
