//! The CSV files of `finopsia forecast --input`: a `ds,y` series, a Prophet
//! holidays frame (`holiday,ds[,lower_window,upper_window]`) and the
//! `ds,yhat,yhat_lower,yhat_upper` output.
//!
//! `ds` is an ISO date (`2024-05-31`); a time of day, if present, must be
//! midnight (`2024-05-31 00:00:00` or `2024-05-31T00:00:00`). Rows with an
//! empty `y` are skipped, as Python Prophet drops missing values.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;

use crate::model::{Forecast, HolidayRow, Series};
use crate::{Error, Result};

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Splits a CSV line into fields (double-quoted fields may contain commas
/// and doubled quotes).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|f| f.trim().to_string()).collect()
}

/// Column index by lower-case header name, and rows as (line number, fields).
type Table = (HashMap<String, usize>, Vec<(usize, Vec<String>)>);

/// Parses a CSV text with a header.
fn table(text: &str, path: &Path) -> Result<Table> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| Error::Input(format!("{}: empty file", path.display())))?;
    let header = fields(header.trim_start_matches('\u{feff}'));
    let cols = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.to_ascii_lowercase(), i))
        .collect();
    Ok((cols, lines.map(|(n, l)| (n, fields(l))).collect()))
}

fn column(cols: &HashMap<String, usize>, name: &str, path: &Path) -> Result<usize> {
    cols.get(name).copied().ok_or_else(|| {
        Error::Input(format!(
            "{}: no `{name}` column in the header",
            path.display()
        ))
    })
}

/// Parses an ISO date, optionally followed by a midnight time.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    let (date, time) = match text.find([' ', 'T']) {
        Some(i) => (&text[..i], Some(text[i + 1..].trim())),
        None => (text, None),
    };
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    match time {
        None => Some(day),
        Some(t)
            if t.trim_end_matches('Z')
                .split(':')
                .all(|p| p.chars().all(|c| c == '0' || c == '.') && !p.is_empty()) =>
        {
            Some(day)
        }
        Some(_) => None,
    }
}

fn get(row: &[String], i: usize) -> &str {
    row.get(i).map(String::as_str).unwrap_or("")
}

/// Reads a `ds,y` file. Dates need not be consecutive but must be unique.
pub fn read_series(path: &Path) -> Result<Series> {
    let text = read(path)?;
    let (cols, rows) = table(&text, path)?;
    let (ids, iy) = (column(&cols, "ds", path)?, column(&cols, "y", path)?);
    let mut points = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let at = |msg: String| Error::Input(format!("{}:{line}: {msg}", path.display()));
        let ds = parse_day(get(&row, ids))
            .ok_or_else(|| at(format!("ds {:?} is not an ISO date", get(&row, ids))))?;
        let y_text = get(&row, iy);
        if y_text.is_empty() || y_text.eq_ignore_ascii_case("nan") {
            continue;
        }
        let y: f64 = y_text
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| at(format!("y {y_text:?} is not a finite number")))?;
        points.push((ds, y));
    }
    points.sort_by_key(|p| p.0);
    if let Some(w) = points.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::Input(format!(
            "{}: date {} appears more than once",
            path.display(),
            w[0].0
        )));
    }
    if points.len() < 2 {
        return Err(Error::Input(format!(
            "{}: need at least 2 rows with a value, found {}",
            path.display(),
            points.len()
        )));
    }
    Series::new(
        points.iter().map(|p| p.0).collect(),
        points.iter().map(|p| p.1).collect(),
    )
}

/// Reads a Prophet holidays file: `holiday,ds` and optional
/// `lower_window,upper_window` (integers, default 0).
pub fn read_holidays(path: &Path) -> Result<Vec<HolidayRow>> {
    let text = read(path)?;
    let (cols, rows) = table(&text, path)?;
    let ih = column(&cols, "holiday", path)?;
    let ids = column(&cols, "ds", path)?;
    let il = cols.get("lower_window").copied();
    let iu = cols.get("upper_window").copied();
    let mut out = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let at = |msg: String| Error::Input(format!("{}:{line}: {msg}", path.display()));
        let name = get(&row, ih);
        if name.is_empty() {
            return Err(at("empty holiday name".into()));
        }
        let ds = parse_day(get(&row, ids))
            .ok_or_else(|| at(format!("ds {:?} is not an ISO date", get(&row, ids))))?;
        let window = |i: Option<usize>, which: &str| -> Result<i32> {
            let t = i.map(|i| get(&row, i)).unwrap_or("");
            if t.is_empty() {
                return Ok(0);
            }
            // pandas writes integer columns with NaNs as floats: accept "-1.0".
            t.parse::<i32>()
                .ok()
                .or_else(|| {
                    t.parse::<f64>()
                        .ok()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 1e6)
                        .map(|f| f as i32)
                })
                .ok_or_else(|| at(format!("{which} {t:?} is not an integer")))
        };
        let lower_window = window(il, "lower_window")?;
        let upper_window = window(iu, "upper_window")?;
        if lower_window > 0 || upper_window < 0 {
            return Err(at(format!(
                "lower_window must be <= 0 and upper_window >= 0 (got {lower_window}, {upper_window})"
            )));
        }
        out.push(HolidayRow {
            name: name.to_string(),
            ds,
            lower_window,
            upper_window,
        });
    }
    Ok(out)
}

/// Writes `ds,yhat,yhat_lower,yhat_upper` with full-precision floats.
pub fn write_forecast(out: &mut dyn Write, fc: &Forecast) -> std::io::Result<()> {
    writeln!(out, "ds,yhat,yhat_lower,yhat_upper")?;
    for i in 0..fc.ds.len() {
        writeln!(
            out,
            "{},{:?},{:?},{:?}",
            fc.ds[i], fc.yhat[i], fc.lower[i], fc.upper[i]
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        let d = NaiveDate::from_ymd_opt(2024, 5, 31).unwrap();
        assert_eq!(parse_day("2024-05-31"), Some(d));
        assert_eq!(parse_day("2024-05-31 00:00:00"), Some(d));
        assert_eq!(parse_day("2024-05-31T00:00:00Z"), Some(d));
        assert_eq!(parse_day("2024-05-31 12:00:00"), None);
        assert_eq!(parse_day("31/05/2024"), None);
    }

    #[test]
    fn quoted_fields() {
        assert_eq!(fields(r#"a,"b,c","""d""""#), vec!["a", "b,c", "\"d\""]);
    }

    #[test]
    fn series_and_holidays_files() {
        let dir = std::env::temp_dir().join(format!("fio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = dir.join("s.csv");
        std::fs::write(&s, "ds,y\n2024-01-02,2\n2024-01-01,1\n2024-01-03,\n").unwrap();
        let series = read_series(&s).unwrap();
        assert_eq!(series.y, vec![1.0, 2.0]);
        std::fs::write(&s, "ds,y\n2024-01-01,1\n2024-01-01,2\n").unwrap();
        assert!(read_series(&s)
            .unwrap_err()
            .to_string()
            .contains("more than once"));
        std::fs::write(&s, "ds,y\n2024-01-01,1\nxx,2\n").unwrap();
        assert!(read_series(&s).unwrap_err().to_string().contains(":3: ds"));
        let h = dir.join("h.csv");
        std::fs::write(
            &h,
            "holiday,ds,lower_window,upper_window\npay,2024-01-25,-1.0,1\nrent,2024-01-01,,\n",
        )
        .unwrap();
        let rows = read_holidays(&h).unwrap();
        assert_eq!((rows[0].lower_window, rows[0].upper_window), (-1, 1));
        assert_eq!((rows[1].lower_window, rows[1].upper_window), (0, 0));
        std::fs::write(&h, "holiday,ds,lower_window\npay,2024-01-25,2\n").unwrap();
        assert!(read_holidays(&h).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
