//! Output: aligned tables for people, JSON for scripts, both on standard output; a closed
//! pipe ends the command quietly.

use std::io::{self, Write};

use crate::CliError;

/// Writes `text` and a newline to standard output.
pub(crate) fn line(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}").map_err(stdout_error)
}

/// Writes `value` as one line of JSON.
pub(crate) fn json(value: &serde_json::Value) -> Result<(), CliError> {
    line(&value.to_string())
}

pub(crate) fn stdout_error(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CliError::StdoutClosed
    } else {
        CliError::Usage(format!("writing to standard output: {e}"))
    }
}

/// A table with a header row; columns are as wide as their widest cell.
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    pub(crate) fn print(&self) -> Result<(), CliError> {
        let mut out = io::stdout().lock();
        out.write_all(self.render().as_bytes())
            .map_err(stdout_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&["NAME", "PARTITIONS"]);
        t.row(vec!["orders-eu".into(), "3".into()]);
        t.row(vec!["a".into(), "12".into()]);
        assert_eq!(
            t.render(),
            "NAME       PARTITIONS\norders-eu  3\na          12\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(Table::new(&["GROUP", "STATE"]).render(), "GROUP  STATE\n");
    }
}
