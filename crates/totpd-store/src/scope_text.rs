//! A key's scope as stored in `api_keys.secret_ids` on both backends: the
//! sorted secret ids, hyphenated and lower case, separated by commas; SQL
//! `NULL` for every secret of the account. The text is what the database
//! holds; the keyed hash covers the ids themselves.

use uuid::Uuid;

/// The stored text of a list of secret ids (in the order given: the vault
/// stores them sorted).
pub(crate) fn encode(ids: Option<&[Uuid]>) -> Option<String> {
    ids.map(|ids| {
        ids.iter()
            .map(|id| id.hyphenated().to_string())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The ids of a stored text; `Err` names what is wrong, never the text.
pub(crate) fn decode(text: Option<&str>) -> Result<Option<Vec<Uuid>>, &'static str> {
    let Some(text) = text else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(Some(Vec::new()));
    }
    text.split(',')
        .map(|id| Uuid::parse_str(id).map_err(|_| "api_keys.secret_ids holds a malformed id"))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_every_secret_differs_from_none() {
        let ids = [Uuid::from_u128(1), Uuid::from_u128(2)];
        for scope in [None, Some(&[][..]), Some(&ids[..1]), Some(&ids[..])] {
            let text = encode(scope);
            assert_eq!(
                decode(text.as_deref()).unwrap().as_deref(),
                scope,
                "{text:?}"
            );
        }
        assert_eq!(encode(None), None);
        assert_eq!(encode(Some(&[])).as_deref(), Some(""));
        assert!(decode(Some("nope")).is_err());
        assert!(decode(Some(",")).is_err());
    }
}
