//! Durations as docker's `ps` says them: "Less than a second", "5 seconds", "About a minute",
//! "3 minutes", "About an hour", "2 hours", "3 days", "2 weeks", "4 months", "2 years".

pub fn human(secs: u64) -> String {
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    let minutes = secs / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    match secs {
        0 => "Less than a second".into(),
        1..=59 => plural(secs, "second"),
        60..=119 => "About a minute".into(),
        _ if minutes < 60 => plural(minutes, "minute"),
        _ if hours < 2 => "About an hour".into(),
        _ if hours < 48 => plural(hours, "hour"),
        _ if days < 14 => plural(days, "day"),
        _ if days < 60 => plural(days / 7, "week"),
        _ if days < 730 => plural(days / 30, "month"),
        _ => plural(days / 365, "year"),
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn as_docker_says_them() {
        for (secs, says) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (61, "About a minute"),
            (180, "3 minutes"),
            (3600, "About an hour"),
            (3 * 3600, "3 hours"),
            (3 * 86400, "3 days"),
            (20 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ] {
            assert_eq!(human(secs), says);
        }
    }
}
