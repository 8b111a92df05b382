//! The date we write into headers (`Received`, `Date` of what we send).

use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 5322 §3.3 date-time in UTC (`Fri, 27 Nov 2026 09:25:19 +0000`), by mail-parser's
/// date type. Times before 1970 (a broken clock) print as the epoch, so a header we write
/// is always well-formed.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    mail_parser::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX)).to_rfc822()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn date_table() {
        let cases: &[(u64, &str)] = &[
            (0, "Thu, 1 Jan 1970 00:00:00 +0000"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 +0000"),
            (1_795_771_519, "Fri, 27 Nov 2026 09:25:19 +0000"),
            (1_798_363_519, "Sun, 27 Dec 2026 09:25:19 +0000"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 +0000"),
        ];
        for (secs, want) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(*secs);
            assert_eq!(rfc5322_date(t), *want, "{secs}");
        }
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc5322_date(before), "Thu, 1 Jan 1970 00:00:00 +0000");
    }
}
