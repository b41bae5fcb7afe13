//! Durations as people type them: `10s`, `500ms`, `2m`, `1h30m`, `1m 30s` (humantime's forms),
//! or a bare number of seconds as `flock -w 10` takes it: `10`, `0.5`.

use std::time::Duration;

/// Parses a duration: a bare number of seconds (digits with an optional fraction: `10`, `0.5`),
/// or one or more `NUMBER UNIT` pairs as [`humantime::parse_duration`] reads them (whole numbers;
/// units `ns`, `us`, `ms`, `s`, `m`, `h`, `d` and their longer spellings).
///
/// ```
/// use redlock_cli::duration::parse;
/// use std::time::Duration;
/// assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
/// assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
/// assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
/// assert!(parse("10x").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. 10s, 500ms or 10 (seconds)".into());
    }
    if is_decimal(s) {
        return s
            .parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| format!("{text:?} is out of range"));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write e.g. 10s, 500ms, 1m30s or 10 (seconds)")
    })
}

/// Digits with an optional `.` and more digits: what a bare number of seconds may look like
/// (no sign, exponent, `inf` or `NaN`, which `f64::from_str` would take).
fn is_decimal(s: &str) -> bool {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction)
}

/// Shows a duration compactly for messages: `1.5s`, `250ms`, `90µs`.
pub fn show(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{s:.0}s")
        } else {
            format!("{s:.3}s")
        }
    } else if d >= Duration::from_millis(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}µs", d.as_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts() {
        let ok = [
            ("0", Duration::ZERO),
            ("10", Duration::from_secs(10)),
            ("0.5", Duration::from_millis(500)),
            ("1.25", Duration::from_millis(1250)),
            ("10s", Duration::from_secs(10)),
            ("500ms", Duration::from_millis(500)),
            (" 2m ", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("1m 30s", Duration::from_secs(90)),
            ("1s 250ms", Duration::from_millis(1250)),
            ("250us", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("1d", Duration::from_secs(86400)),
            ("0ms", Duration::ZERO),
            ("2min", Duration::from_secs(120)),
        ];
        for (text, want) in ok {
            let got = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let diff = got.abs_diff(want);
            assert!(
                diff < Duration::from_nanos(2),
                "{text}: {got:?} != {want:?}"
            );
        }
    }

    #[test]
    fn refuses() {
        for text in [
            "", " ", "s", "10x", "1..5s", "-1s", "-1", "ms10", "1e3s", "1e3", "inf", "NaN", ".5",
            "5.", "1.5.5",
        ] {
            assert!(parse(text).is_err(), "{text:?} should not parse");
        }
        assert!(parse("10x").unwrap_err().contains("not a duration"));
        assert!(parse("1e400").is_err(), "too large");
        assert!(parse("99999999999999999999999")
            .unwrap_err()
            .contains("out of range"));
    }

    #[test]
    fn shows() {
        assert_eq!(show(Duration::from_secs(10)), "10s");
        assert_eq!(show(Duration::from_millis(1500)), "1.500s");
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::from_micros(90)), "90µs");
    }
}
