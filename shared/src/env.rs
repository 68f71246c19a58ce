//! How settings are read. Every `from_lookup` takes any key lookup (tests pass a map, `main`
//! passes [`var`]) and reads it through [`non_blank`], so a value that is unset, empty or only
//! blanks means "not set" for every setting alike.

/// The process environment, as a lookup.
pub fn var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// `get` with each value trimmed and blank values read as unset.
pub fn non_blank(get: impl Fn(&str) -> Option<String>) -> impl Fn(&str) -> Option<String> {
    move |key| {
        get(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_read_as_unset_and_others_are_trimmed() {
        let get = non_blank(|k: &str| match k {
            "EMPTY" => Some(String::new()),
            "BLANKS" => Some(" \t".into()),
            "PADDED" => Some("  value \n".into()),
            _ => None,
        });
        assert_eq!(get("EMPTY"), None);
        assert_eq!(get("BLANKS"), None);
        assert_eq!(get("UNSET"), None);
        assert_eq!(get("PADDED").as_deref(), Some("value"));
    }
}
