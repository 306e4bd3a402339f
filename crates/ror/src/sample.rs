//! Synthetic bed-availability documents for benchmarks and profiling:
//! one establishment, one capacity record per unit (available beds), every
//! unit in the referential [`referential_csv`] writes. The benchmark
//! (`guichet-bench validate`) and the profiling driver (`examples/judge`)
//! judge the same documents.

use std::fmt::Write as _;
use std::ops::Range;

use crate::codes;
use crate::model::{Capacity, Document, Establishment, Field, Path, Unit, Value};

/// The establishment's FINESS EG and EJ (keys valid).
const FINESS_EG: &str = "350054680";
const FINESS_EJ: &str = "350000014";

/// Document `id` of the units `U{u}` for `u` in `units`, each with
/// `count` available beds updated at `updated`, written at `written`
/// (RFC 3339 both).
pub fn document(
    id: &str,
    units: Range<usize>,
    count: i64,
    written: &str,
    updated: &str,
) -> Document {
    Document {
        id: Some(text(id)),
        time: Some(text(written)),
        establishment: Establishment {
            finess_eg: Some(text(FINESS_EG)),
            finess_ej: Some(text(FINESS_EJ)),
            sender: None,
        },
        units: units.map(|u| unit(u, count, updated)).collect(),
        at: Path::default(),
    }
}

/// The referential (CSV) that knows the units `U0` to `U{units - 1}`.
pub fn referential_csv(units: usize) -> String {
    let mut csv = String::from("finess_eg,unit_id,label\n");
    for u in 0..units {
        let _ = writeln!(csv, "{FINESS_EG},U{u},Unit {u}");
    }
    csv
}

fn text(value: &str) -> Field<String> {
    Field::new(value.to_string(), Path::default())
}

fn unit(u: usize, count: i64, updated: &str) -> Unit {
    let mut capacity = Capacity::default();
    let code = |text: &str| Field::new(Value::Code(text.to_owned().into()), Path::default());
    capacity.set(&codes::CAPACITY_TYPE, code("01"));
    capacity.set(&codes::CAPACITY_STATUS, code("02"));
    capacity.set(&codes::TEMPORALITY, code("01"));
    capacity.set(
        &codes::COUNT,
        Field::new(Value::Integer(count), Path::default()),
    );
    capacity.set(&codes::SOURCE_TYPE, code("02"));
    capacity.set(&codes::GENDER, code("01"));
    let date = Field::new(Value::DateTime(updated.into()), Path::default());
    capacity.set(&codes::UPDATE_DATE, date);
    capacity.set(&codes::TEMPORARY_ASSIGNMENT, code("01"));
    Unit {
        id: text(&format!("U{u}")),
        capacities: vec![capacity],
        at: Path::default(),
    }
}
