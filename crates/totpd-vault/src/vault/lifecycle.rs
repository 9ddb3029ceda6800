//! A secret's life after enrollment: reading one, renaming it, finding it
//! in a filtered, paged list, and codes that stay valid long enough.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::{Vault, authorize, secret_info};
use crate::clock::Clock;
use crate::crypto::{Canonical, hmac_sha256};
use crate::error::VaultError;
use crate::model::{IssuedCode, Issuer, Label, SecretInfo, SecretKind, Skew, UnixTime};
use crate::policy::{Action, Principal};
use crate::store::{LIST_PAGE, ListCursor, SecretRow, SecretUpdate};

/// A validated change to a secret's descriptive fields: each `None` is
/// left as it is. The key material and the OTP parameters (type,
/// algorithm, digits, period) are bound into the ciphertext's associated
/// data and never change; the label and issuer are not bound, so a change
/// is a plain update of the row, never a re-seal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretPatch {
    /// The new label.
    pub label: Option<Label>,
    /// The new issuer: `Some(None)` clears it.
    pub issuer: Option<Option<Issuer>>,
    /// How many steps either side of the current one a verification
    /// accepts (TOTP secrets only). Like the label, not bound into the
    /// ciphertext: it changes which codes verify, never the codes.
    pub skew: Option<Skew>,
}

impl SecretPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.label.is_none() && self.issuer.is_none() && self.skew.is_none()
    }
}

/// Which secrets a list shows; every filter that is set must match.
///
/// Matching is case-insensitive by Unicode lower case (`str::to_lowercase`)
/// and done by the vault on the rows the store pages through, so both
/// backends answer exactly alike and no character of the query has any
/// special meaning (no `LIKE` pattern is ever built from it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretFilter {
    /// The issuer, lower-cased: only secrets whose issuer is exactly this.
    issuer: Option<String>,
    /// Lower-cased text that the label or the issuer must contain.
    text: Option<String>,
}

impl SecretFilter {
    /// A filter on the exact issuer and on text in the label or issuer
    /// (either may be absent).
    pub fn new(issuer: Option<&str>, text: Option<&str>) -> SecretFilter {
        SecretFilter {
            issuer: issuer.map(str::to_lowercase),
            text: text.map(str::to_lowercase),
        }
    }

    /// Whether the filter lets every secret through.
    pub fn is_empty(&self) -> bool {
        self.issuer.is_none() && self.text.is_none()
    }

    fn matches(&self, row: &SecretRow) -> bool {
        let issuer = row.issuer.as_deref().map(str::to_lowercase);
        if let Some(wanted) = &self.issuer
            && issuer.as_deref() != Some(wanted.as_str())
        {
            return false;
        }
        match &self.text {
            None => true,
            Some(text) => {
                row.label.to_lowercase().contains(text.as_str())
                    || issuer.is_some_and(|issuer| issuer.contains(text.as_str()))
            }
        }
    }
}

/// Bytes of the tag that authenticates a list cursor.
const CURSOR_TAG: usize = 16;
/// `created_at` (8 bytes), `id` (16) and the tag.
const CURSOR_LEN: usize = 8 + 16 + CURSOR_TAG;

impl Vault {
    /// One of the caller's secrets, described (never its secret).
    pub async fn secret(&self, principal: &Principal, id: Uuid) -> Result<SecretInfo, VaultError> {
        let row = self
            .authorized_row(principal, Action::SecretRead, id)
            .await?;
        secret_info(&row)
    }

    /// Changes the label and/or issuer of one of the caller's secrets, and
    /// records it (`secret.update`). Returns the secret as it is now.
    pub async fn update_secret(
        &self,
        principal: &Principal,
        id: Uuid,
        patch: SecretPatch,
        now: UnixTime,
    ) -> Result<SecretInfo, VaultError> {
        let updated = self.update_secret_unrecorded(principal, id, patch).await;
        self.record_result(Action::SecretUpdate, principal, Some(id), now, &updated)
            .await;
        updated
    }

    async fn update_secret_unrecorded(
        &self,
        principal: &Principal,
        id: Uuid,
        patch: SecretPatch,
    ) -> Result<SecretInfo, VaultError> {
        authorize(principal, Action::SecretUpdate, Some(id))?;
        if patch.is_empty() {
            return Err(VaultError::Invalid(
                "the request changes nothing: give \"label\", \"issuer\" or \"skew\"".to_owned(),
            ));
        }
        if patch.skew.is_some() {
            // The type never changes, so reading it first is no race.
            let row = self
                .authorized_row(principal, Action::SecretUpdate, id)
                .await?;
            if let SecretKind::Hotp { .. } = secret_info(&row)?.kind {
                return Err(VaultError::Invalid(
                    "\"skew\" applies to TOTP secrets only".to_owned(),
                ));
            }
        }
        let update = SecretUpdate {
            label: patch.label.map(|label| label.as_str().to_owned()),
            issuer: patch
                .issuer
                .map(|issuer| issuer.map(|issuer| issuer.as_str().to_owned())),
            skew: patch.skew.map(|skew| i64::from(skew.get())),
        };
        let row = self
            .store
            .update_secret(principal.account_id, id, &update)
            .await?
            .ok_or(VaultError::NotFound)?;
        secret_info(&row)
    }

    /// Up to `limit` of the caller's secrets that match `filter` and come
    /// after `after` in list order (`created_at`, then id), and the cursor
    /// of the next page: `None` when no matching secret follows (the page
    /// is the last one, so a list never ends on an empty page it could
    /// have avoided).
    ///
    /// Memory stays bounded by the page size whatever the account holds: a
    /// filter is applied page by page, reading on until `limit` secrets
    /// match or the account ends. Like [`Vault::list_secrets_page`], pages
    /// read one after another are not one snapshot, but a secret that
    /// exists from the first page to the last is listed exactly once.
    pub async fn list_secrets_matching(
        &self,
        principal: &Principal,
        filter: &SecretFilter,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<(Vec<SecretInfo>, Option<ListCursor>), VaultError> {
        authorize(principal, Action::SecretList, None)?;
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut found: Vec<SecretRow> = Vec::new();
        match principal.scope.ids() {
            Some(ids) => {
                found = self
                    .scoped_rows(principal.account_id, ids)
                    .await?
                    .into_iter()
                    .filter(|row| after.is_none_or(|a| ListCursor::after(row) > a))
                    .filter(|row| filter.matches(row))
                    .take(wanted.saturating_add(1))
                    .collect();
            }
            None => {
                // One more than asked, to know whether another page follows.
                let page = if filter.is_empty() {
                    limit.saturating_add(1)
                } else {
                    LIST_PAGE.max(limit.saturating_add(1))
                };
                let mut position = after;
                loop {
                    let rows = self
                        .store
                        .list_secrets_page(principal.account_id, position, page)
                        .await?;
                    let full = u32::try_from(rows.len()).is_ok_and(|n| n >= page);
                    if let Some(last) = rows.last() {
                        position = Some(ListCursor::after(last));
                    }
                    found.extend(rows.into_iter().filter(|row| filter.matches(row)));
                    if found.len() > wanted || !full {
                        break;
                    }
                }
            }
        }
        let more = found.len() > wanted;
        found.truncate(wanted);
        let next = if more {
            found.last().map(ListCursor::after)
        } else {
            None
        };
        let infos = found.iter().map(secret_info).collect::<Result<_, _>>()?;
        Ok((infos, next))
    }

    /// The opaque text form of a list position for the caller's account
    /// (`next_cursor`): base64url of the position and a tag (HMAC-SHA-256
    /// under the pepper, domain `totpd/list-cursor/v1`, over the account,
    /// `created_at` and id), so a cursor that was changed, made up, or
    /// issued to another account is refused by [`Vault::parse_list_cursor`].
    /// It reveals only the creation time and id of a secret the caller has
    /// just been shown.
    pub fn list_cursor_token(&self, principal: &Principal, cursor: &ListCursor) -> String {
        let mut bytes = Vec::with_capacity(CURSOR_LEN);
        bytes.extend_from_slice(&cursor.created_at.to_be_bytes());
        bytes.extend_from_slice(cursor.id.as_bytes());
        bytes.extend_from_slice(&self.cursor_tag(principal.account_id, cursor));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The list position a [`Vault::list_cursor_token`] of the caller's
    /// account names; `None` for anything else.
    pub fn parse_list_cursor(&self, principal: &Principal, token: &str) -> Option<ListCursor> {
        if token.len() > 2 * CURSOR_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != CURSOR_LEN {
            return None;
        }
        let (position, tag) = bytes.split_at(8 + 16);
        let (created_at, id) = position.split_at(8);
        let cursor = ListCursor {
            created_at: i64::from_be_bytes(created_at.try_into().ok()?),
            id: Uuid::from_slice(id).ok()?,
        };
        let expected = self.cursor_tag(principal.account_id, &cursor);
        bool::from(expected.ct_eq(tag)).then_some(cursor)
    }

    fn cursor_tag(&self, account_id: Uuid, cursor: &ListCursor) -> [u8; CURSOR_TAG] {
        let message = Canonical::new("totpd/list-cursor/v1")
            .field("account_id", account_id.as_bytes())
            .field("created_at", &cursor.created_at.to_be_bytes())
            .field("id", cursor.id.as_bytes())
            .finish();
        let mac = hmac_sha256(&self.pepper, &message);
        let mut tag = [0u8; CURSOR_TAG];
        tag.copy_from_slice(mac.get(..CURSOR_TAG).unwrap_or(&[0u8; CURSOR_TAG]));
        tag
    }

    /// A code of one of the caller's secrets that stays valid for at least
    /// `min_remaining` seconds (`0..=period`, else `Invalid`; an HOTP
    /// secret's code never expires, so it is answered at once): when the
    /// current one has less left, waits on `clock` for the next period and
    /// answers that period's code. The wait is shorter than
    /// `min_remaining`, so shorter than the period; dropping the future
    /// ends it with nothing left running and nothing recorded (no code was
    /// given out). The secret is opened only after the wait, and the
    /// `code.read` record is for the code returned, at the time it was
    /// computed.
    pub async fn code_with_min_remaining(
        &self,
        principal: &Principal,
        id: Uuid,
        min_remaining: u64,
        clock: &dyn Clock,
    ) -> Result<IssuedCode, VaultError> {
        let now = match self
            .wait_for_min_remaining(principal, id, min_remaining, clock)
            .await
        {
            Ok(now) => now,
            Err(error) => {
                let now = clock.now();
                return self.record_code(principal, id, now, Err(error)).await;
            }
        };
        let code = self.issue_code(principal, id, now).await;
        self.record_code(principal, id, now, code).await
    }

    /// Waits until the secret's current code has at least `min_remaining`
    /// seconds left; returns the time at which it has.
    async fn wait_for_min_remaining(
        &self,
        principal: &Principal,
        id: Uuid,
        min_remaining: u64,
        clock: &dyn Clock,
    ) -> Result<UnixTime, VaultError> {
        let row = self.authorized_row(principal, Action::CodeRead, id).await?;
        let info = secret_info(&row)?;
        if let SecretKind::Hotp { .. } = info.kind {
            // An HOTP code does not expire: there is nothing to wait for.
            return Ok(clock.now());
        }
        let period = u64::from(info.period.get());
        if min_remaining > period {
            return Err(VaultError::Invalid(format!(
                "\"min_remaining\" must be from 0 to the secret's period ({period} seconds)"
            )));
        }
        loop {
            let now = clock.now();
            let t = now.seconds();
            let remaining = period - t % period;
            if remaining >= min_remaining {
                return Ok(now);
            }
            let next_period = (t + remaining).saturating_mul(1000);
            clock
                .sleep_until(UnixTime(i64::try_from(next_period).unwrap_or(i64::MAX)))
                .await;
        }
    }
}
