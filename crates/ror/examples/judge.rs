//! Judges one bed-availability document many times, as the validating
//! HTTP rule does for each request: a steady load for a profiler
//! (`valgrind --tool=callgrind`), whose instruction count divided by the
//! documents is the cost of one.
//!
//! ```text
//! cargo build --release -p guichet-ror --example judge
//! valgrind --tool=callgrind target/release/examples/judge 1000 10
//! ```
//!
//! Arguments: documents to judge (default 1000), units per document
//! (default 10), and `document` to keep each document as a converting
//! rule does (by default only the violations are, as for a rule that
//! sends the body on as received). The document is the benchmark's
//! ([`guichet_ror::sample`]): guichet's XML, one capacity record per
//! unit, every unit in the referential, dated two minutes before now.

use std::time::Duration;

use guichet_ror::referential::Referential;
use guichet_ror::rules::{Context, Lang, Settings};
use guichet_ror::{sample, xml, Keep};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let documents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let units: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let keep = match args.next().as_deref() {
        Some("document") => Keep::Document,
        _ => Keep::Violations,
    };
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let written = now.format(&Rfc3339)?;
    let updated = (now - Duration::from_secs(120)).format(&Rfc3339)?;
    let text = xml::write(&sample::document("D-0", 0..units, 4, &written, &updated));
    let referential = Referential::read(sample::referential_csv(units).as_bytes())?;
    let settings = Settings::default();
    let context = Context {
        referential: Some(&referential),
        indicators: None,
        settings: &settings,
        now,
        lang: Lang::Fr,
    };
    let mut valid = 0;
    for _ in 0..documents {
        let bytes = std::hint::black_box(text.as_bytes());
        let verdict = guichet_ror::validate_keeping(bytes, &context, keep);
        valid += usize::from(verdict.valid() && verdict.violations.is_empty());
    }
    if valid != documents {
        return Err(format!(
            "{} of {documents} documents judged invalid",
            documents - valid
        )
        .into());
    }
    println!(
        "{documents} documents of {units} units ({} bytes) judged valid, keeping {keep:?}",
        text.len()
    );
    Ok(())
}
