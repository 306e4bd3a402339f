//! The static site: one self-contained HTML page (no CDN, no request
//! leaves it, it opens from `file://`) with the indicators, the business
//! map, the applications, the flows, the flow matrix, incident simulation
//! and data quality. French by default, English a click away. The
//! gateway's admin listener serves the same page live at `/map`.

mod data;

pub use data::SiteData;

/// The page's script and style, written for it and embedded whole.
const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// Nothing may be fetched: every resource is inline, and the policy says
/// so to the browser, which then refuses any request a bug would make.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                      img-src data: blob:; form-action 'none'; base-uri 'none'";

/// JSON that can sit inside a `<script>` element: no `<` at all, so no
/// `</script>` or `<!--` can end it early.
fn script_json(data: &SiteData) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string(data)?.replace('<', "\\u003c"))
}

/// The whole page.
pub fn page(data: &SiteData) -> Result<String, serde_json::Error> {
    let json = script_json(data)?;
    let lang = data.lang.code();
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>guichet</title><style>{STYLE}</style></head>\n<body>\
         <header><h1 id=\"brand\"></h1><nav id=\"nav\"></nav><div class=\"lang\" id=\"langs\"></div></header>\
         <main id=\"view\"></main><footer id=\"footer\"></footer>\n\
         <script id=\"atlas-data\" type=\"application/json\">{json}</script>\n\
         <script>{SCRIPT}</script>\n</body></html>\n"
    ))
}

#[cfg(test)]
mod tests;
