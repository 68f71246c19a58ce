//! Plain-text formatting shared by the commands: tables, lists, durations, times.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use shared::model::Selection;

/// How a column's cells line up: text to the left, numbers to the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Text,
    Number,
}

/// A table under `columns` (header and alignment), columns two spaces apart.
pub fn table(columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.len()).collect();
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
            if columns.get(i).map(|(_, a)| *a) == Some(Align::Number) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(&mut columns.iter().map(|(h, _)| *h));
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

/// How many rows a run inserted and updated.
pub fn rows_written(inserted: i64, updated: i64) -> String {
    format!("{inserted} inserted, {updated} updated")
}

/// Error messages in problem lists are cut to this many characters.
const MESSAGE_WIDTH: usize = 100;

/// A failed ticker's or batch's error as two cells: its name (`-` without one) and its message
/// on one line (empty without one).
pub fn error_cells(error_name: Option<&str>, message: Option<&str>) -> [String; 2] {
    [
        error_name.unwrap_or("-").to_string(),
        one_line(message.unwrap_or(""), MESSAGE_WIDTH),
    ]
}

/// `title (N):`, then one line per problem, indented, its cells two spaces apart; nothing when
/// there are no problems.
pub fn problem_list(title: &str, rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(out, "{title} ({}):", rows.len());
    for row in rows {
        let _ = writeln!(out, "  {}", row.join("  "));
    }
    out
}

/// [`problem_list`] with the cells in aligned columns and at most `limit` problems shown; a last
/// line counts the others and says where they all are (`see`).
pub fn problem_table(title: &str, rows: &[Vec<String>], limit: usize, see: &str) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(out, "{title} ({}):", rows.len());
    let shown = &rows[..rows.len().min(limit)];
    // Headerless: the title says what the columns are.
    let columns = vec![("", Align::Text); rows[0].len()];
    for line in table(&columns, shown).lines().skip(1) {
        let _ = writeln!(out, "  {line}");
    }
    if rows.len() > limit {
        let _ = writeln!(out, "  … and {} more ({see})", rows.len() - limit);
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
            &[("NAME", Align::Text), ("N", Align::Number)],
            &[
                vec!["a".into(), "10".into()],
                vec!["long".into(), "2".into()],
            ],
        );
        assert_eq!(t, "NAME   N\na     10\nlong   2\n");
    }

    #[test]
    fn problem_lists_keep_their_cells_two_spaces_apart() {
        let rows = vec![
            vec![
                "NOPE".into(),
                "failed".into(),
                "UnknownSymbol".into(),
                "gone".into(),
            ],
            vec![
                "IBM".into(),
                "rate_limited".into(),
                "-".into(),
                String::new(),
            ],
        ];
        assert_eq!(
            problem_list("problems", &rows),
            "problems (2):\n  NOPE  failed  UnknownSymbol  gone\n  IBM  rate_limited  -  \n"
        );
        assert_eq!(problem_list("problems", &[]), "");
    }

    #[test]
    fn problem_tables_align_and_count_what_they_leave_out() {
        let rows: Vec<Vec<String>> = ["A", "BB", "C"]
            .iter()
            .map(|s| vec![s.to_string(), "Err".into(), String::new()])
            .collect();
        assert_eq!(
            problem_table("failed tickers", &rows, 2, "see all"),
            "failed tickers (3):\n  A   Err\n  BB  Err\n  … and 1 more (see all)\n"
        );
        assert_eq!(problem_table("failed tickers", &[], 2, "see all"), "");
    }

    #[test]
    fn error_cells_name_a_missing_error_and_flatten_the_message() {
        assert_eq!(error_cells(None, None), ["-".to_string(), String::new()]);
        assert_eq!(
            error_cells(Some("RateLimited"), Some("slow\n  down")),
            ["RateLimited".to_string(), "slow down".to_string()]
        );
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
