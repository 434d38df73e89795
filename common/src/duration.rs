//! The one way a duration is typed on either program's command line:
//! `500ms`, `1.5s`, `30` (seconds), `2m` or `2min`, `1h`.
//!
//! A number, whole or with a decimal point, then a unit (`ms`, `s`, `m`,
//! `min`, `h`; none means seconds), spaces allowed around and between. The
//! value is computed exactly in nanoseconds (no floating point), so `0.3s`
//! is 300 ms and a whole number of milliseconds is exact up to the largest
//! `u64`. Each caller says the longest duration it takes and words its own
//! error message; this module only reads the text.

use std::time::Duration;

/// The longest `hapgent ctl --timeout`: a day.
pub const DAY: Duration = Duration::from_secs(86_400);

/// The duration `text` says, if it is one and at most `max`.
pub fn parse(text: &str, max: Duration) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_ns: u128 = match unit.trim() {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    // More digits than this is beyond any `Duration` in any unit.
    if whole.len() > 30 {
        return None;
    }
    let whole_ns = if whole.is_empty() {
        0
    } else {
        whole.parse::<u128>().ok()?.checked_mul(unit_ns)?
    };
    let (fraction_ns, exact) = fraction_of(fraction, unit_ns);
    let total = whole_ns.checked_add(fraction_ns)?;
    let max = max.as_nanos();
    if total > max || (total == max && !exact) {
        return None;
    }
    let secs = u64::try_from(total / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// `0.DIGITS` of a unit, in whole nanoseconds (rounded down), and whether
/// that is exact. Digits past the 24th only decide exactness: below a
/// nanosecond in every unit.
fn fraction_of(digits: &str, unit_ns: u128) -> (u128, bool) {
    let (kept, rest) = digits.split_at(digits.len().min(24));
    let scale = 10u128.pow(kept.len() as u32);
    let value: u128 = kept.parse().unwrap_or(0);
    let scaled = value * unit_ns;
    let exact = scaled.is_multiple_of(scale) && rest.bytes().all(|b| b == b'0');
    (scaled / scale, exact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        let most = Duration::from_millis(u64::MAX);
        for (text, max, want) in [
            ("30s", DAY, Some(ms(30_000))),
            ("30", DAY, Some(ms(30_000))),
            ("500ms", DAY, Some(ms(500))),
            ("1.5s", DAY, Some(ms(1500))),
            ("0.3s", DAY, Some(ms(300))),
            (".5s", DAY, Some(ms(500))),
            ("5.s", DAY, Some(ms(5000))),
            ("2m", DAY, Some(ms(120_000))),
            ("2min", DAY, Some(ms(120_000))),
            ("1h", DAY, Some(ms(3_600_000))),
            (" 5 s ", DAY, Some(ms(5000))),
            ("0", DAY, Some(ms(0))),
            ("0.0000000001s", DAY, Some(ms(0))),
            ("24h", DAY, Some(DAY)),
            ("86400.000000000s", DAY, Some(DAY)),
            ("86400.0000000001s", DAY, None),
            ("100000h", DAY, None),
            ("100000h", most, Some(ms(360_000_000_000))),
            ("18446744073709551615ms", most, Some(most)),
            ("18446744073709551616ms", most, None),
            ("99999999999999999999h", most, None),
            ("0000000000000000000000000000000001s", DAY, Some(ms(1000))),
            ("1.000000000000000000000000000001s", DAY, Some(ms(1000))),
            ("", DAY, None),
            (".", DAY, None),
            ("s", DAY, None),
            ("1.2.3s", DAY, None),
            ("5x", DAY, None),
            ("-1s", DAY, None),
            ("+1s", DAY, None),
            ("1e3", DAY, None),
            ("2d", DAY, None),
            ("5 m s", DAY, None),
        ] {
            assert_eq!(parse(text, max), want, "{text:?}");
        }
    }
}
