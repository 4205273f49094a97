//! `WWW-Authenticate` challenges of registries (RFC 7235 syntax, as the distribution token
//! specification uses it): which scheme a registry wants, and for Bearer where to get a token.

use std::collections::BTreeMap;

/// What a registry asked for in its 401 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic: send the pull secret's user and password with every request.
    Basic,
    /// The token flow: fetch a token from `realm` for `service` and `scope`, then send it as Bearer.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first challenge of a `WWW-Authenticate` header; `None` for schemes we do not speak or
/// a Bearer challenge without a realm.
pub fn parse(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// `key="value", key=value, ...` with quoted strings that may contain commas and `\"` escapes.
fn parse_params(input: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return params;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_of_the_distribution_token_spec() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#;
        assert_eq!(
            parse(header),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:samalba/my-app:pull,push".into()),
            })
        );
    }

    #[test]
    fn bearer_with_spaces_unquoted_values_and_escapes() {
        let header = r#"bearer  realm = "http://127.0.0.1:9/t\"x" , service=reg ,error="insufficient_scope""#;
        assert_eq!(
            parse(header),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:9/t\"x".into(),
                service: Some("reg".into()),
                scope: None
            })
        );
    }

    #[test]
    fn basic_and_unknown_schemes() {
        assert_eq!(parse(r#"Basic realm="registry""#), Some(Challenge::Basic));
        assert_eq!(parse("Basic"), Some(Challenge::Basic));
        assert_eq!(parse(r#"Negotiate abc"#), None);
        assert_eq!(parse(r#"Bearer service="no-realm""#), None);
        assert_eq!(parse(""), None);
    }
}
