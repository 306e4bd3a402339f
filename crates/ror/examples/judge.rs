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
//! sends the body on as received). The document is the benchmark's: guichet's XML, one
//! capacity record per unit, every unit in the referential, dated two
//! minutes before now.

use std::fmt::Write as _;
use std::time::Duration;

use guichet_ror::codes;
use guichet_ror::model::{Capacity, Document, Establishment, Field, Path, Unit, Value};
use guichet_ror::referential::Referential;
use guichet_ror::rules::{Context, Lang, Settings};
use guichet_ror::{xml, Keep};
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
    let text = xml::write(&document(units, now)?);
    let referential = Referential::read(referential_csv(units).as_bytes())?;
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

fn field(text: String) -> Field<String> {
    Field::new(text, Path::default())
}

fn document(units: usize, now: OffsetDateTime) -> Result<Document, time::error::Format> {
    let updated = (now - Duration::from_secs(120)).format(&Rfc3339)?;
    Ok(Document {
        id: Some(field("D-0".into())),
        time: Some(field(now.format(&Rfc3339)?)),
        establishment: Establishment {
            finess_eg: Some(field("350054680".into())),
            finess_ej: Some(field("350000014".into())),
            sender: None,
        },
        units: (0..units).map(|u| unit(u, &updated)).collect(),
        at: Path::default(),
    })
}

fn unit(u: usize, updated: &str) -> Unit {
    let mut capacity = Capacity::default();
    let code = |text: &str| Field::new(Value::Code(text.to_owned().into()), Path::default());
    capacity.set(&codes::CAPACITY_TYPE, code("01"));
    capacity.set(&codes::CAPACITY_STATUS, code("02"));
    capacity.set(&codes::TEMPORALITY, code("01"));
    capacity.set(
        &codes::COUNT,
        Field::new(Value::Integer((u % 9) as i64), Path::default()),
    );
    capacity.set(&codes::SOURCE_TYPE, code("02"));
    capacity.set(&codes::GENDER, code("01"));
    let date = Field::new(Value::DateTime(updated.into()), Path::default());
    capacity.set(&codes::UPDATE_DATE, date);
    capacity.set(&codes::TEMPORARY_ASSIGNMENT, code("01"));
    Unit {
        id: field(format!("U{u}")),
        capacities: vec![capacity],
        at: Path::default(),
    }
}

fn referential_csv(units: usize) -> String {
    let mut text = String::from("finess_eg,unit_id,label\n");
    for u in 0..units {
        let _ = writeln!(text, "350054680,U{u},Unit {u}");
    }
    text
}
