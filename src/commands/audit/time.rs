//! Times in the audit log and on the command line: RFC 3339 read into milliseconds since the
//! Unix epoch (the log's own `YYYY-MM-DDTHH:MM:SS.fffZ` and any offset), and `--since` as a
//! time or a duration back from now. No dependency: the calendar is a few lines.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `--since`: an RFC 3339 time, or a duration back from `now` ("90s", "30m", "1h", "2d").
pub fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    if let Some(time) = parse_rfc3339(text) {
        return Ok(time);
    }
    if let Some(ago) = crate::config::parse_duration(text) {
        let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(now.saturating_sub(ago));
    }
    Err(format!(
        "invalid --since {text:?}; expected an RFC 3339 time such as 2026-11-29T19:00:00Z, or a \
         duration back from now such as 30m, 1h or 2d"
    ))
}

/// An RFC 3339 date-time (`2026-11-29T19:22:03.123Z`, `2026-11-29T20:22:03+01:00`) as
/// milliseconds since the Unix epoch; digits past milliseconds are dropped.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let at = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if at(i, b".") {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for k in 0..3 {
            millis = millis * 10
                + if k < digits {
                    i64::from(b[i + 1 + k] - b'0')
                } else {
                    0
                };
        }
        i += 1 + digits;
    }
    let offset_minutes = match b.get(i..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && at(i + 3, b":") => {
            let (h, m) = (number(i + 1..i + 3)?, number(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// Milliseconds since the Unix epoch as the proxy writes `time` (times before 1970 show as
/// 1970: no log holds them).
pub fn format_rfc3339(millis: i64) -> String {
    let since_epoch = Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    crate::audit::rfc3339(UNIX_EPOCH + since_epoch)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

pub(super) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .try_into()
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_to_milliseconds() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("1970-01-01T00:00:00.001Z", Some(1)),
            ("2026-11-29T19:22:03.123Z", Some(1_795_980_123_123)),
            ("2026-11-29T19:22:03.123456789Z", Some(1_795_980_123_123)),
            ("2026-11-29t19:22:03.1z", Some(1_795_980_123_100)),
            ("2026-11-29 19:22:03Z", Some(1_795_980_123_000)),
            ("2026-11-29T20:22:03.123+01:00", Some(1_795_980_123_123)),
            ("2026-11-29T18:52:03.123-00:30", Some(1_795_980_123_123)),
            ("2000-02-29T00:00:00Z", Some(951_782_400_000)),
            ("1969-12-31T23:59:59.999Z", Some(-1)),
            ("2001-02-29T00:00:00Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-11-31T00:00:00Z", None),
            ("2026-11-29T24:00:00Z", None),
            ("2026-11-29T19:22:03", None),
            ("2026-11-29T19:22:03.Z", None),
            ("2026-11-29T19:22:03+0100", None),
            ("2026-11-29T19:22:03Zjunk", None),
            ("2026-1-29T19:22:03Z", None),
            ("+026-11-29T19:22:03Z", None),
            ("2026-11-29", None),
            ("", None),
            ("١٩٧٠-01-01T00:00:00Z", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_rfc3339(text), expected, "{text}");
        }
    }

    #[test]
    fn times_the_proxy_writes_parse_back() {
        for millis in [
            0,
            1,
            951_782_400_000,
            1_795_980_123_123,
            253_402_300_799_999,
        ] {
            let text = format_rfc3339(millis);
            assert_eq!(parse_rfc3339(&text), Some(millis), "{text}");
        }
        assert_eq!(
            format_rfc3339(1_795_980_123_123),
            "2026-11-29T19:22:03.123Z"
        );
        // A time of every day of four centuries, as the writer formats it.
        for day in 0..146_097 {
            let millis = day * 86_400_000 + (day * 7_919_993) % 86_400_000;
            let text = format_rfc3339(millis);
            assert_eq!(parse_rfc3339(&text), Some(millis), "{text}");
        }
    }

    #[test]
    fn since_takes_a_time_or_a_duration_back_from_now() {
        let now = parse_rfc3339("2026-11-29T19:00:00Z").unwrap();
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("2026-11-29T18:00:00Z", Ok("2026-11-29T18:00:00.000Z")),
            ("1h", Ok("2026-11-29T18:00:00.000Z")),
            ("90s", Ok("2026-11-29T18:58:30.000Z")),
            ("2d", Ok("2026-11-27T19:00:00.000Z")),
            ("500ms", Ok("2026-11-29T18:59:59.500Z")),
            ("yesterday", Err(())),
            ("60", Err(())),
            ("", Err(())),
        ];
        for &(text, expected) in cases {
            let got = parse_since(text, now).map(format_rfc3339).map_err(|_| ());
            assert_eq!(got.as_deref().map_err(|_| ()), expected, "{text}");
        }
        let message = parse_since("soon", now).unwrap_err();
        assert_eq!(
            message,
            "invalid --since \"soon\"; expected an RFC 3339 time such as 2026-11-29T19:00:00Z, \
             or a duration back from now such as 30m, 1h or 2d"
        );
    }
}
