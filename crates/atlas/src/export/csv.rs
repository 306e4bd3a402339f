//! The flow matrix as CSV: a row per source application, a column per
//! target, each cell the exchanges between them and the pair's state.

use crate::matrix::Matrix;
use crate::Lang;

/// The matrix as CSV text (RFC 4180, comma-separated, UTF-8), headings
/// in French or English.
pub fn matrix_csv(matrix: &Matrix, lang: Lang) -> String {
    let corner = if lang == Lang::Fr {
        "source \\ cible"
    } else {
        "source \\ target"
    };
    let mut out = String::new();
    let header = std::iter::once(corner.to_string()).chain(matrix.applications.iter().cloned());
    push_row(&mut out, header);
    for source in &matrix.applications {
        let cells = matrix.applications.iter().map(|target| {
            matrix.cell(source, target).map_or_else(String::new, |c| {
                format!("{} [{}]", c.exchanges.join(" / "), c.state.label(lang))
            })
        });
        push_row(&mut out, std::iter::once(source.clone()).chain(cells));
    }
    out
}

fn push_row(out: &mut String, fields: impl Iterator<Item = String>) {
    let fields: Vec<String> = fields.map(|f| quote(&f)).collect();
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

/// A field quoted when it must be, quotes doubled.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) || field.starts_with(['=', '+', '-', '@']) {
        // A leading formula character is neutralised for spreadsheets.
        let field = if field.starts_with(['=', '+', '-', '@']) {
            format!("'{field}")
        } else {
            field.to_string()
        };
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}
