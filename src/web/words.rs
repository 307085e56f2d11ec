//! Times and sizes in words, as pages show them: "5 minutes ago", `2026-11-22 14:26 UTC`,
//! "1.5 MiB".

/// Bytes in words.
pub fn human_size(bytes: Option<i64>) -> String {
    let Some(bytes) = bytes else {
        return String::new();
    };
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// How long ago (or how far ahead) `at` is, in words: "just now", "5 minutes ago", "in 2 hours".
pub fn ago(at: chrono::DateTime<chrono::Utc>) -> String {
    let seconds = (chrono::Utc::now() - at).num_seconds();
    let (amount, future) = (seconds.abs(), seconds < 0);
    let phrase = |n: i64, unit: &str| {
        let plural = if n == 1 { "" } else { "s" };
        if future {
            format!("in {n} {unit}{plural}")
        } else {
            format!("{n} {unit}{plural} ago")
        }
    };
    match amount {
        0..=44 => "just now".to_string(),
        45..=3599 => phrase((amount / 60).max(1), "minute"),
        3600..=86_399 => phrase(amount / 3600, "hour"),
        _ => phrase(amount / 86_400, "day"),
    }
}

/// `2026-11-22 14:26 UTC`, as `%Y-%m-%d %H:%M UTC` would print it.
pub fn utc_minute(at: chrono::DateTime<chrono::Utc>) -> String {
    match utc_text(at) {
        Some(text) => [&text[..16], &text[19..]].concat(),
        None => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

/// `2026-11-22 14:26:05 UTC`, as `%Y-%m-%d %H:%M:%S UTC` would print it.
pub fn utc_second(at: chrono::DateTime<chrono::Utc>) -> String {
    match utc_text(at) {
        Some(text) => text.to_string(),
        None => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// `at` to the second, its digits put in place by hand (a page of 100 backups shows 300 dates,
/// and `format!` with padded fields spent a tenth of the page's time on them); `None` for a
/// year outside 0–9999.
fn utc_text(at: chrono::DateTime<chrono::Utc>) -> Option<String> {
    use chrono::{Datelike, Timelike};
    let (date, time) = (at.date_naive(), at.time());
    let year = u32::try_from(date.year())
        .ok()
        .filter(|year| *year <= 9999)?;
    let mut text = *b"0000-00-00 00:00:00 UTC";
    for (range, value) in [
        (0..4, year),
        (5..7, date.month()),
        (8..10, date.day()),
        (11..13, time.hour()),
        (14..16, time.minute()),
        (17..19, time.second()),
    ] {
        let mut value = value;
        for digit in text[range].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    #[test]
    fn dates_read_as_strftime_would_write_them() {
        for at in [
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            Utc.with_ymd_and_hms(999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-5, 6, 7, 8, 9, 10).unwrap(),
            Utc::now(),
        ] {
            assert_eq!(
                super::utc_minute(at),
                at.format("%Y-%m-%d %H:%M UTC").to_string()
            );
            assert_eq!(
                super::utc_second(at),
                at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            );
        }
    }
}
