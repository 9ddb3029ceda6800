//! What both backends' `copy_from` share: how a copy is checked before it
//! is committed.
//!
//! Once every row is in, the copy reads the source snapshot a second time and
//! the target's rows inside the copy's own transaction, page by page, and
//! requires them to be equal. Only then does it commit; on a difference it
//! rolls back, so the target is left as empty as it was found.

use totpd_vault::StoreError;

use crate::tables::Table;

/// The failure of a copy whose target does not read back as its source.
pub(crate) fn mismatch(what: &str) -> StoreError {
    StoreError::corrupt_msg(format!(
        "verification failed: {what} differ between source and target; nothing was committed"
    ))
}

/// Checks one page of rows of `table` read back from the target against the
/// same page of the source, naming the first row that differs by its `id`.
pub(crate) fn same_page<T: PartialEq, Id: std::fmt::Display>(
    table: Table,
    source: &[T],
    target: &[T],
    id: impl Fn(&T) -> Id,
) -> Result<(), StoreError> {
    if source == target {
        return Ok(());
    }
    let differing = source
        .iter()
        .zip(target)
        .find(|(a, b)| a != b)
        .map(|(a, _)| id(a))
        .or_else(|| source.get(target.len()).map(&id))
        .or_else(|| target.get(source.len()).map(&id));
    let what = table.rows();
    Err(match differing {
        Some(first) => mismatch(&format!("{what} (first at id {first})")),
        None => mismatch(what),
    })
}

/// The number of rows in `rows`, for a [`totpd_vault::CopyReport`].
pub(crate) fn count<T>(rows: &[T]) -> u64 {
    u64::try_from(rows.len()).unwrap_or(u64::MAX)
}
