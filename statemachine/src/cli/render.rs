//! Plain-text formatting shared by the commands: tables, lists, durations, times.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use shared::model::Selection;

/// Left-aligned text columns, right-aligned numeric ones, two spaces apart.
pub fn table(headers: &[&str], numeric: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if numeric.get(i).copied().unwrap_or(false) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(&mut headers.iter().copied());
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// `A, B, C … and 12 more`.
pub fn list_truncated(items: &[String], max: usize) -> String {
    if items.len() <= max {
        return items.join(", ");
    }
    format!(
        "{} … and {} more",
        items[..max].join(", "),
        items.len() - max
    )
}

pub fn selection(selection: &Selection) -> String {
    match selection {
        Selection::MinArticles {
            min_articles,
            within_days,
        } => format!(
            "tickers with at least {min_articles} article mentions{}",
            window(*within_days)
        ),
        Selection::TopN {
            n,
            min_articles,
            within_days,
        } => format!(
            "top {n} most-mentioned tickers (at least {min_articles} mentions{})",
            window(*within_days)
        ),
        Selection::Explicit { symbols } => {
            let names: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
            format!("symbols {}", list_truncated(&names, 10))
        }
    }
}

fn window(within_days: Option<i64>) -> String {
    match within_days {
        Some(days) => format!(" in the last {days} days"),
        None => " all time".to_string(),
    }
}

/// `2h 05m`, `3m 10s`, `12s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn time_short(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// `key  value` lines with the keys padded to one width.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    out
}

/// One message on one line, cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let t = table(
            &["NAME", "N"],
            &[false, true],
            &[
                vec!["a".into(), "10".into()],
                vec!["long".into(), "2".into()],
            ],
        );
        assert_eq!(t, "NAME   N\na     10\nlong   2\n");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12.2), "12s");
        assert_eq!(duration(190.0), "3m 10s");
        assert_eq!(duration(7500.0), "2h 05m");
        assert_eq!(duration(90_000.0), "1d 01h");
    }

    #[test]
    fn long_lists_are_truncated() {
        let items: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        assert_eq!(list_truncated(&items, 3), "0, 1, 2 … and 2 more");
        assert_eq!(list_truncated(&items, 5), "0, 1, 2, 3, 4");
    }
}
