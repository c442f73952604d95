//! Go's `time.ParseDuration` syntax, as Reloader's pause-period annotation uses it: signed
//! decimal numbers with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, combined (`1h30m`, `1.5h`).

use std::time::Duration;

/// 2^63 ns: Go's `time.ParseDuration` rejects this much and more as an overflow.
const MAX_NANOS: f64 = 9_223_372_036_854_775_808.0;

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
    // Go's durations are i64 nanoseconds: a longer one is an error there, not ~584 years.
    if total >= MAX_NANOS {
        return Err(format!("{orig:?} is longer than the longest duration, 2562047h47m16.854775807s"));
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

    /// Go's durations end at 2^63-1 ns (about 292 years); past that `time.ParseDuration`
    /// fails, so a pause period that long is reported and ignored, not saturated to ~584 years.
    #[test]
    fn overflow_table() {
        let huge = format!("1{}s", "0".repeat(400));
        let cases: [(&str, Option<Duration>); 7] = [
            ("2562047h", Some(Duration::from_secs(2_562_047 * 3600))),
            ("2562047h47m16s", Some(Duration::from_secs(2_562_047 * 3600 + 47 * 60 + 16))),
            ("2562048h", None),
            ("5124096h", None),
            ("9223372036854775808ns", None),
            ("2562047h47m17s", None),
            (&huge, None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_go_duration(s).ok(), want, "{s}");
        }
    }
}
