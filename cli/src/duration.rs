//! Durations as people type them: `10s`, `500ms`, `1.5s`, `2m`, `1h30m`.

use std::time::Duration;

/// Parses a duration: one or more `NUMBER UNIT` pairs, where the number may have a fraction and
/// the unit is one of `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, `d`. A bare `0` is zero.
///
/// ```
/// use redlock_cli::duration::parse;
/// use std::time::Duration;
/// assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
/// assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
/// assert!(parse("10").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration; write e.g. 10s or 500ms".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() {
            return Err(format!(
                "{text:?} is not a duration; write e.g. 10s or 500ms"
            ));
        }
        let value: f64 = num
            .parse()
            .map_err(|_| format!("{text:?}: {num:?} is not a number"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => {
                return Err(format!(
                    "{text:?} has no unit; write e.g. {num}s or {num}ms"
                ))
            }
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?} (use ns, us, ms, s, m, h or d)"
                ))
            }
        };
        total += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("{text:?} is out of range"))
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
            ("10s", Duration::from_secs(10)),
            ("500ms", Duration::from_millis(500)),
            (" 2m ", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.25s", Duration::from_millis(1250)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("1d", Duration::from_secs(86400)),
            ("0ms", Duration::ZERO),
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
        for text in ["", "10", "s", "10x", "1..5s", "-1s", "ms10", "1e3s"] {
            assert!(parse(text).is_err(), "{text:?} should not parse");
        }
        assert!(parse("10").unwrap_err().contains("no unit"));
        assert!(parse("10x").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn shows() {
        assert_eq!(show(Duration::from_secs(10)), "10s");
        assert_eq!(show(Duration::from_millis(1500)), "1.500s");
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::from_micros(90)), "90µs");
    }
}
