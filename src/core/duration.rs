//! Go's `time.ParseDuration` syntax, as Reloader's pause-period annotation uses it: signed
//! decimal numbers with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, combined (`1h30m`, `1.5h`).

use std::time::Duration;

/// Parses a Go duration; negative durations come back as `Err` of the value (they mean "now").
pub(crate) fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let orig = s;
    let err = || format!("{orig:?} is not a duration like \"10s\", \"5m\" or \"1h30m\"");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total += value * nanos;
    }
    if neg && total > 0.0 {
        return Err(format!("{orig:?} is negative"));
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ok = [
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1.5h", 5_400_000),
            ("300ms", 300),
            ("0", 0),
            ("1m30s500ms", 90_500),
            ("+2s", 2_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_go_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in ["", "10", "abc", "5 m", "1x", "m", "-1s", "1.2.3s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
