//! `guichet test generate bed-availability`: the boundary book of a
//! referential. A valid document per unit; each rule broken once; edge
//! values. Each case expects what guichet's own rules say of it, so the
//! book passes against guichet and shows where another engine differs.

use std::path::Path;

use guichet_ror::referential::Referential;
use guichet_ror::rules::{Context, Lang, Settings, Severity};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// One capacity record as written.
#[derive(Clone)]
struct Record {
    status: &'static str,
    count: String,
    gender: Option<&'static str>,
    updated: String,
}

/// One document as written: its establishment and units.
struct Doc {
    finess: String,
    units: Vec<(String, Vec<Record>)>,
    time: String,
}

/// A case of the book: its file name and message.
pub struct Generated {
    pub file: String,
    pub body: String,
}

/// FINESS numbers with a right key, tried for an establishment the
/// referential does not know.
const OTHER_FINESS: [&str; 4] = ["010780914", "750712184", "350054680", "130786049"];

/// Documents dated from one clock.
struct Maker {
    now: OffsetDateTime,
}

impl Maker {
    fn at(&self, delta: Duration) -> String {
        let when = (self.now + delta).replace_nanosecond(0).unwrap_or(self.now);
        when.format(&Rfc3339).unwrap_or_default()
    }

    /// A record of `count` beds in `status`, updated two minutes ago.
    fn record(&self, status: &'static str, count: i64) -> Record {
        Record {
            status,
            count: count.to_string(),
            gender: Some("01"),
            updated: self.at(-Duration::minutes(2)),
        }
    }

    fn doc(&self, finess: &str, unit: &str, records: Vec<Record>) -> Doc {
        Doc {
            finess: finess.to_string(),
            units: vec![(unit.to_string(), records)],
            time: self.at(Duration::ZERO),
        }
    }

    fn one(&self, finess: &str, unit: &str, status: &'static str, count: i64) -> Doc {
        self.doc(finess, unit, vec![self.record(status, count)])
    }
}

/// The cases of the boundary book of `referential`, dated `now`.
pub fn bed_availability(
    referential: &Referential,
    now: OffsetDateTime,
) -> Result<Vec<Generated>, String> {
    let first = referential
        .units()
        .next()
        .ok_or("the referential names no unit")?;
    let make = Maker { now };
    let mut cases: Vec<(String, Doc)> = referential
        .units()
        .map(|u| {
            (
                format!("valid-{}-{}", u.finess_eg, u.unit_id),
                make.one(&u.finess_eg, &u.unit_id, "02", 5),
            )
        })
        .collect();
    cases.extend(boundaries(
        &make,
        referential,
        &first.finess_eg,
        &first.unit_id,
    ));
    let mut generated: Vec<Generated> = cases
        .into_iter()
        .map(|(name, d)| Generated {
            file: format!("{name}.xml"),
            body: write(&d),
        })
        .collect();
    let whole = write(&make.one(&first.finess_eg, &first.unit_id, "02", 5));
    let missing = whole.replace("<capacityStatus>02</capacityStatus>\n", "");
    generated.push(Generated {
        file: "slice-missing.xml".into(),
        body: missing,
    });
    generated.push(Generated {
        file: "xml-broken.xml".into(),
        body: whole[..whole.len() / 2].to_string(),
    });
    Ok(generated)
}

/// Each rule broken once, and edge values, on the unit `unit` of `finess`.
fn boundaries(
    make: &Maker,
    referential: &Referential,
    finess: &str,
    unit: &str,
) -> Vec<(String, Doc)> {
    let stranger = OTHER_FINESS
        .iter()
        .find(|f| !referential.knows(f))
        .copied()
        .unwrap_or("010780914");
    let mut cases = vec![
        ("finess-key", make.one(&wrong_key(finess), unit, "02", 5)),
        ("establishment-unknown", make.one(stranger, unit, "02", 5)),
        ("unit-unknown", make.one(finess, "UNITE-INCONNUE", "02", 5)),
        ("capacity-negative", make.one(finess, unit, "02", -1)),
        ("code-unknown", make.one(finess, unit, "99", 5)),
        ("zero-beds", make.one(finess, unit, "02", 0)),
        (
            "largest-count",
            make.one(finess, unit, "01", i64::from(i32::MAX)),
        ),
        ("finess-2a", make.one("2A0000170", unit, "02", 5)),
        ("finess-2b", make.one("2B0000020", unit, "02", 5)),
    ];
    cases.extend(records(make, finess, unit));
    cases
        .into_iter()
        .map(|(name, doc)| (name.to_string(), doc))
        .collect()
}

/// The cases about the records themselves: their codes, their dates,
/// their number.
fn records(make: &Maker, finess: &str, unit: &str) -> Vec<(&'static str, Doc)> {
    let with = |records: Vec<Record>| make.doc(finess, unit, records);
    let changed = |record: Record| with(vec![record]);
    let base = || make.record("02", 5);
    vec![
        (
            "code-deprecated",
            changed(Record {
                gender: Some("03"),
                ..base()
            }),
        ),
        ("record-duplicate", with(vec![base(), make.record("02", 6)])),
        (
            "counts-inconsistent",
            with(vec![make.record("01", 10), make.record("02", 45)]),
        ),
        (
            "date-future",
            changed(Record {
                updated: make.at(Duration::days(1)),
                ..base()
            }),
        ),
        (
            "date-stale",
            changed(Record {
                updated: make.at(-Duration::days(3)),
                ..base()
            }),
        ),
        (
            "no-unit",
            Doc {
                units: Vec::new(),
                ..with(Vec::new())
            },
        ),
    ]
}

/// `finess` with its last digit changed: the key no longer holds.
fn wrong_key(finess: &str) -> String {
    let mut chars: Vec<char> = finess.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == '0' { '1' } else { '0' };
    }
    chars.into_iter().collect()
}

fn write(doc: &Doc) -> String {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<bedAvailability xmlns=\"urn:guichet:bed-availability:1\" id=\"generated\" time=\"{}\">\n  <establishment finessEg=\"{}\"/>\n",
        doc.time, doc.finess
    );
    for (unit, records) in &doc.units {
        xml.push_str(&format!("  <unit id=\"{unit}\">\n"));
        for r in records {
            xml.push_str(&format!(
                "    <capacity>\n      <capacityType>01</capacityType>\n      <capacityStatus>{}</capacityStatus>\n      <temporalityCapacity>01</temporalityCapacity>\n      <nbCapacity>{}</nbCapacity>\n      <capacitySourceType>02</capacitySourceType>\n",
                r.status, r.count
            ));
            if let Some(gender) = r.gender {
                xml.push_str(&format!(
                    "      <genderCapacityAvailable>{gender}</genderCapacityAvailable>\n"
                ));
            }
            xml.push_str(&format!(
                "      <capacityUpdateDate>{}</capacityUpdateDate>\n      <temporaryAssignement>01</temporaryAssignement>\n    </capacity>\n",
                r.updated
            ));
        }
        xml.push_str("  </unit>\n");
    }
    xml.push_str("</bedAvailability>\n");
    xml
}

/// What guichet's rules say of `body`, as a case's expectations: `valid`,
/// and for an invalid document the codes of its errors.
pub fn expectations(body: &str, referential: &Referential, now: OffsetDateTime) -> String {
    let settings = Settings::default();
    let context = Context {
        referential: Some(referential),
        indicators: None,
        settings: &settings,
        now,
        lang: Lang::Fr,
    };
    let verdict = guichet_ror::validate(body.as_bytes(), &context);
    if verdict.valid() {
        return "[expect]\nvalid = true\n".into();
    }
    let mut codes: Vec<&str> = verdict
        .violations
        .iter()
        .filter(|v| v.severity == Severity::Error)
        .map(|v| v.code)
        .collect();
    codes.dedup();
    let list: Vec<String> = codes.iter().map(|c| format!("{c:?}")).collect();
    format!(
        "[expect]\nvalid = false\nviolations = [{}]\n",
        list.join(", ")
    )
}

/// Writes the book in `out`: book.toml and cases/.
pub fn write_book(
    out: &Path,
    referential: &Referential,
    now: OffsetDateTime,
) -> Result<usize, String> {
    let cases = bed_availability(referential, now)?;
    let folder = out.join("cases");
    std::fs::create_dir_all(&folder)
        .map_err(|e| format!("cannot make {}: {e}", folder.display()))?;
    let book = "# The boundary book of a referential, written by guichet test generate.\n\
        # Each case expects what guichet's own rules say of it. Run it against a\n\
        # validating rule or a drop folder:\n\
        #   guichet test run BOOK --target rule=https://HOST:PORT/PATH --ca CA.pem --cert CERT.pem --key KEY.pem\n\
        name = \"bed availability: boundaries\"\n";
    let write = |path: std::path::PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(out.join("book.toml"), book)?;
    for case in &cases {
        write(folder.join(&case.file), &case.body)?;
        let toml = folder.join(&case.file).with_extension("toml");
        write(toml, &expectations(&case.body, referential, now))?;
    }
    Ok(cases.len())
}
