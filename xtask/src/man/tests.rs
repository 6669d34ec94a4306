//! The page date: days-to-civil against dates worked out by hand.

use super::date;

#[test]
fn dates_are_utc_calendar_days() {
    for (seconds, expected) in [
        (0, "1970-01-01"),
        (86_399, "1970-01-01"),
        (951_782_400, "2000-02-29"),
        (1_700_000_000, "2023-11-14"),
        (1_735_603_200 + 86_399, "2024-12-31"),
        (4_107_542_400, "2100-03-01"),
    ] {
        assert_eq!(date(seconds), expected, "{seconds}");
    }
}
