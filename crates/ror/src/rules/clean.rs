//! Whether a document in guichet's layout breaks no rule at all, judged
//! from its borrowed view: what most documents are, at a fraction of the
//! cost of building the document and reporting on it.
//!
//! It answers `true` only when [`check`](super::check) would find
//! nothing, whatever the severities: every finding `check` can make is
//! looked for here, and anything this does not judge itself (an
//! indicator list, a unit of very many records, sums that overflow)
//! answers `false`, so the caller checks the document in full. A test
//! keeps the two in agreement.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::codes::{self, Kind, SLICES};
use crate::finess::Finess;
use crate::xml::scan::{Record, Slot, View};

use super::Context;

/// Records per unit this judges; a unit of more is checked in full.
const RECORDS: usize = 64;

/// Whether `view` breaks no rule (see the module's documentation).
pub(crate) fn clean(view: &View<'_>, context: &Context<'_>) -> bool {
    if context.indicators.is_some() || view.records.is_empty() {
        return false;
    }
    let site = view.finess_eg;
    if !Finess::is_valid(site) || view.finess_ej.is_some_and(|ej| !Finess::is_valid(ej)) {
        return false;
    }
    let mut dates = Dates {
        context,
        last: None,
    };
    if view.time.is_some_and(|time| !dates.fine(time, false)) {
        return false;
    }
    // The establishment's units, when there is a referential.
    let units = match context.referential {
        Some(referential) => match referential.units_of(site) {
            Some(units) => Some(units),
            None => return false,
        },
        None => None,
    };
    view.units.iter().all(|unit| {
        let known = units.is_none_or(|units| units.rows(unit.id).len() == 1);
        let records = &view.records[unit.records.clone()];
        known
            && records.len() <= RECORDS
            && records.iter().all(|record| fine(record, &mut dates))
            && no_duplicate(records)
            && counts_consistent(records)
    })
}

/// Every 1..1 slice there, every code in its value set and not
/// deprecated, no negative count, dates neither future nor stale.
fn fine<'t>(record: &Record<'t>, dates: &mut Dates<'_, 't>) -> bool {
    SLICES
        .iter()
        .zip(record)
        .all(|(slice, slot)| match (*slot, slice.kind) {
            (None, _) => !slice.required,
            (Some(Slot::Integer(count)), _) => count >= 0,
            (Some(Slot::Text(text)), Kind::DateTime) => dates.fine(text, true),
            (Some(Slot::Text(code)), _) => slice
                .code(code)
                .is_some_and(|known| known.accepted && !known.deprecated),
        })
}

/// The code of a coded slice in `record`.
fn code<'t>(record: &Record<'t>, slice: &codes::Slice) -> Option<&'t str> {
    match record[slice.index] {
        Some(Slot::Text(text)) => Some(text),
        _ => None,
    }
}

/// What identifies a record within its unit: its capacity type and
/// indicator.
fn key<'t>(record: &Record<'t>) -> [Option<&'t str>; 1 + codes::INDICATOR.len()] {
    let mut key = [code(record, &codes::CAPACITY_TYPE); 1 + codes::INDICATOR.len()];
    for (at, slice) in key[1..].iter_mut().zip(codes::INDICATOR) {
        *at = code(record, slice);
    }
    key
}

/// The same codes, or none, in each place.
fn same(a: &[Option<&str>], b: &[Option<&str>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (Some(a), Some(b)) => codes::same(a, b),
            (a, b) => a.is_none() && b.is_none(),
        })
}

/// No two records with the same capacity type and indicator.
fn no_duplicate(records: &[Record<'_>]) -> bool {
    records.iter().enumerate().all(|(i, record)| {
        let key = key(record);
        records[..i]
            .iter()
            .all(|earlier| !same(&self::key(earlier), &key))
    })
}

/// Per capacity type, temporality, gender and assignment, where an
/// installed count is given: used (occupied, available, reserved,
/// closed) within offered (installed, supplementary).
fn counts_consistent(records: &[Record<'_>]) -> bool {
    records.iter().enumerate().all(|(i, record)| {
        let Some((group, ..)) = counted(record) else {
            return true;
        };
        let summed = records[..i]
            .iter()
            .any(|earlier| counted(earlier).is_some_and(|(g, ..)| same(&g, &group)));
        summed || group_consistent(&records[i..], group)
    })
}

/// What a record counts in: its group, status and count, when it has
/// a status and a count.
type Counted<'t> = ([Option<&'t str>; 4], &'t str, i64);

fn counted<'t>(record: &Record<'t>) -> Option<Counted<'t>> {
    let status = code(record, &codes::CAPACITY_STATUS)?;
    let Some(Slot::Integer(count)) = record[codes::COUNT.index] else {
        return None;
    };
    let group = [
        code(record, &codes::CAPACITY_TYPE),
        code(record, &codes::TEMPORALITY),
        code(record, &codes::GENDER),
        code(record, &codes::TEMPORARY_ASSIGNMENT),
    ];
    Some((group, status, count))
}

/// The records of `group` use no more than they offer; `false` too
/// when a sum overflows (the document is then checked in full).
fn group_consistent(records: &[Record<'_>], group: [Option<&str>; 4]) -> bool {
    let (mut used, mut offered, mut installed) = (0_i64, 0_i64, false);
    let counted = records.iter().filter_map(counted);
    for (_, status, count) in counted.filter(|c| same(&c.0, &group)) {
        let sum = match status {
            "02" | "03" | "04" | "05" => &mut used,
            "01" => {
                installed = true;
                &mut offered
            }
            "06" => &mut offered,
            _ => continue,
        };
        let Some(added) = sum.checked_add(count) else {
            return false;
        };
        *sum = added;
    }
    !installed || used <= offered
}

/// Dates checked against the context's clock; the last verdict kept,
/// since a document's records are mostly updated at the same time.
struct Dates<'c, 't> {
    context: &'c Context<'c>,
    /// The last text judged, whether as a capacity update, and whether
    /// it was fine.
    last: Option<(&'t str, bool, bool)>,
}

impl<'t> Dates<'_, 't> {
    /// Readable, not in the future, and (for a capacity update) not stale.
    fn fine(&mut self, text: &'t str, capacity: bool) -> bool {
        if let Some((last, was_capacity, fine)) = self.last {
            if last == text && was_capacity == capacity {
                return fine;
            }
        }
        let fine = self.judge(text, capacity);
        self.last = Some((text, capacity, fine));
        fine
    }

    fn judge(&self, text: &str, capacity: bool) -> bool {
        let Ok(when) = OffsetDateTime::parse(text, &Rfc3339) else {
            return false;
        };
        let settings = self.context.settings;
        let now = self.context.now;
        if when > now + settings.future_tolerance {
            return false;
        }
        !(capacity && now - when > settings.stale_after)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;
    use crate::model::{Capacity, Document, Establishment, Field, Path, Unit, Value};
    use crate::referential::Referential;
    use crate::rules::{check, Settings};
    use crate::xml;

    fn field(text: &str) -> Field<String> {
        Field::new(text.to_string(), Path::default())
    }

    /// Mostly what meets the rules; sometimes what breaks one.
    fn mostly<T: Clone + std::fmt::Debug + 'static>(
        good: Vec<T>,
        bad: Vec<T>,
    ) -> impl Strategy<Value = T> {
        prop_oneof![30 => prop::sample::select(good), 1 => prop::sample::select(bad)]
    }

    fn capacity() -> impl Strategy<Value = Capacity> {
        let slots = SLICES.map(|slice| {
            let value = match slice.kind {
                Kind::Coded => {
                    // Two codes each: records often share an indicator
                    // or a group of counts.
                    let accepted = slice.codes.iter().filter(|c| c.accepted);
                    let others = slice.codes.iter().filter(|c| !c.accepted);
                    let good: Vec<&'static str> = accepted.take(2).map(|c| c.code).collect();
                    let mut bad: Vec<&'static str> = others.map(|c| c.code).collect();
                    bad.extend(["99", "1", " 01"]);
                    mostly(good, bad)
                        .prop_map(|t| Value::Code(t.into()))
                        .boxed()
                }
                Kind::Integer => mostly((0..30).collect(), vec![-1, -20])
                    .prop_map(Value::Integer)
                    .boxed(),
                Kind::DateTime => mostly(
                    vec!["2026-12-05T09:58:00+01:00", "2026-12-05T08:59:00Z"],
                    vec![
                        "2026-12-03T09:58:00+01:00",
                        "2026-12-05T11:58:00+01:00",
                        "2026-12-05 09:58",
                    ],
                )
                .prop_map(|t| Value::DateTime(t.to_string()))
                .boxed(),
            };
            let present = if slice.required { 0.995 } else { 0.2 };
            prop::option::weighted(present, value)
        });
        slots.prop_map(|values| {
            let mut capacity = Capacity::default();
            for (slice, value) in SLICES.iter().zip(values) {
                if let Some(value) = value {
                    capacity.set(slice, Field::new(value, Path::default()));
                }
            }
            capacity
        })
    }

    fn document() -> impl Strategy<Value = Document> {
        let unit = (
            mostly(vec!["U1", "U2"], vec!["TWICE", "NOPE"]),
            prop::collection::vec(capacity(), 0..3),
        )
            .prop_map(|(id, capacities)| Unit {
                id: field(id),
                capacities,
                at: Path::default(),
            });
        let eg = mostly(
            vec!["350054680"],
            vec!["750712184", "350054681", "3500546", "2C0000020"],
        );
        let ej = prop::option::of(mostly(vec!["350000014", "2A0000170"], vec!["350000015"]));
        let time = prop::option::of(mostly(
            vec!["2026-12-05T10:00:00+01:00", "2026-12-01T10:00:00+01:00"],
            vec!["2026-12-05T10:30:00+01:00", "tomorrow"],
        ));
        (eg, ej, time, prop::collection::vec(unit, 0..4)).prop_map(|(eg, ej, time, units)| {
            Document {
                id: Some(field("D-1")),
                time: time.map(field),
                establishment: Establishment {
                    finess_eg: Some(field(eg)),
                    finess_ej: ej.map(field),
                    sender: None,
                },
                units,
                at: Path::default(),
            }
        })
    }

    fn referential() -> Referential {
        let csv = "finess_eg,unit_id,label\n350054680,U1,A\n350054680,U2,B\n\
            350054680,TWICE,C\n350054680,TWICE,D\n";
        Referential::read(csv.as_bytes()).unwrap()
    }

    /// Whether the view of `document`, written in guichet's XML, is
    /// clean, and whether the full check finds nothing.
    fn both(document: &Document, referential: Option<&Referential>) -> (bool, bool) {
        let settings = Settings::default();
        let context = Context {
            referential,
            indicators: None,
            settings: &settings,
            now: datetime!(2026-12-05 10:00 +01:00),
            lang: crate::rules::Lang::Fr,
        };
        let text = xml::write(document);
        let view = xml::scan::view(text.as_bytes()).expect("guichet's layout");
        (clean(&view, &context), check(document, &context).is_empty())
    }

    #[test]
    fn a_document_that_breaks_no_rule_is_clean() {
        let document = xml::read(xml::tests::SAMPLE.as_bytes()).unwrap();
        assert_eq!(both(&document, None), (true, true));
        let csv = b"finess_eg,unit_id,label\n350054680,SSR38888,SSR\n";
        let knows = Referential::read(csv).unwrap();
        assert_eq!(both(&document, Some(&knows)), (true, true));
        let unknown = Referential::read(b"finess_eg,unit_id,label\n350054680,U1,A\n").unwrap();
        assert_eq!(both(&document, Some(&unknown)), (false, false));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// With every rule on, clean exactly when the full check finds
        /// nothing: never clean where a rule would speak.
        #[test]
        fn clean_when_and_only_when_the_full_check_finds_nothing(document in document()) {
            let referential = referential();
            for referential in [Some(&referential), None] {
                let (clean, none) = both(&document, referential);
                prop_assert_eq!(clean, none);
            }
        }
    }
}
