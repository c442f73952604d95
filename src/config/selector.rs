//! Label selectors and names as flags give them: Reloader's normalisation of its selector
//! flags, and the checks the API server would make, done at start so that a bad value names its
//! flag instead of making every list fail.

use crate::core::model::policy::is_object_name;
use crate::error::Error;

/// Reloader's selector normalisation: `k:v` → `k=v`, `k:*` / `k=*` → `k`; elements joined by `,`.
pub fn normalise_selector(elements: &[String]) -> Option<String> {
    let parts: Vec<String> = elements
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| {
            if let Some(k) = e.strip_suffix(":*").or_else(|| e.strip_suffix("=*")) {
                k.to_string()
            } else if !e.contains('=') && !e.contains(' ') && !e.contains('(') && e.contains(':') {
                e.replacen(':', "=", 1)
            } else {
                e.to_string()
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

pub(crate) fn validate_selector(flag: &'static str, sel: &str) -> Result<(), Error> {
    check_selector(sel).map_err(|why| Error::flag(flag, format!("{sel:?} is not a valid label selector: {why}")))
}

/// Checks a label selector as the API server parses it: requirements separated by commas, each
/// `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (v,…)` or `key notin (v,…)`.
/// Caught here, at start, a bad one names its flag; otherwise every list would be refused.
pub(crate) fn check_selector(sel: &str) -> Result<(), String> {
    let mut rest = sel.trim();
    loop {
        let (req, tail) = split_requirement(rest)?;
        check_requirement(req.trim())?;
        match tail {
            Some(t) => rest = t,
            None => return Ok(()),
        }
    }
}

/// The first requirement and what follows its comma (commas inside `( )` belong to it).
fn split_requirement(s: &str) -> Result<(&str, Option<&str>), String> {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Err("a ')' without '('".into()),
            ')' => depth -= 1,
            ',' if depth == 0 => return Ok((&s[..i], Some(&s[i + 1..]))),
            _ => {}
        }
    }
    if depth > 0 { Err("a '(' without ')'".into()) } else { Ok((s, None)) }
}

fn check_requirement(r: &str) -> Result<(), String> {
    if r.is_empty() {
        return Err("an empty requirement".into());
    }
    if let Some(key) = r.strip_prefix('!') {
        return check_key(key.trim());
    }
    for op in [" notin ", " in "] {
        if let Some((key, set)) = r.split_once(op) {
            check_key(key.trim())?;
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|x| x.strip_suffix(')'))
                .ok_or_else(|| format!("{set:?} is not a list of values in parentheses"))?;
            return inner.split(',').try_for_each(|v| check_value(v.trim()));
        }
    }
    for op in ["==", "!=", "="] {
        if let Some((key, value)) = r.split_once(op) {
            check_key(key.trim())?;
            return check_value(value.trim());
        }
    }
    check_key(r)
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn check_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && !is_object_name(p)
    {
        return Err(format!("{p:?} is not a DNS subdomain (a label key prefix)"));
    }
    if name.is_empty() || check_value(name).is_err() {
        return Err(format!("{k:?} is not a label key"));
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9._-]` starting and ending
/// with a letter or digit.
fn check_value(v: &str) -> Result<(), String> {
    let b = v.as_bytes();
    let ok = v.is_empty()
        || (b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c)));
    if ok { Ok(()) } else { Err(format!("{v:?} is not a label value")) }
}

/// A namespace name: a DNS-1123 label (at most 63 of `[a-z0-9-]`, alphanumeric at both ends).
pub(crate) fn is_namespace_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}
