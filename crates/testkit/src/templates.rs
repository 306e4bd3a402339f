//! Realistic French test messages (IHE PAM FR 2.11 profile of HL7 v2.5).
//!
//! Every message declares `2.5^FRA^2.11` in MSH-12 and `8859/15` in MSH-18,
//! and is encoded in ISO-8859-15 as French hospitals send it: the patient's
//! name holds an Œ (0xBC), which ISO-8859-1 cannot carry, so a receiver that
//! decodes with the wrong charset shows it wrongly. The patient is fictitious.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use guichet_hl7::Charset;

use crate::stamp::{next_control_id, now_timestamp};

/// One kind of message the simulators can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    /// Admission of an inpatient (PAM FR "admission hospitalisé").
    AdtA01,
    /// Registration of an outpatient (consultation externe).
    AdtA04,
    /// Update of patient information.
    AdtA08,
    /// Discharge (sortie).
    AdtA03,
    /// A discharge letter as a base64 PDF (report transmission).
    MdmT02,
    /// Laboratory results: a blood electrolytes panel.
    OruR01,
}

/// Who sends and who receives, and the identity of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateContext {
    /// MSH-3, written as given (it may hold components: `EAI^1.2.3^ISO`).
    pub sending_application: String,
    /// MSH-4.
    pub sending_facility: String,
    /// MSH-5.
    pub receiving_application: String,
    /// MSH-6.
    pub receiving_facility: String,
    /// MSH-10; also the suffix of the movement, document and order ids so
    /// that each message describes a new event.
    pub control_id: String,
    /// MSH-7 and the event times, an HL7 DTM.
    pub timestamp: String,
}

/// `--template NAME` names no template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown template `{0}`; choose one of: {names}", names = Template::NAMES.join(", "))]
pub struct UnknownTemplate(pub String);

/// The fictitious patient, identical in every template so that a flow of
/// ADT messages tells one coherent story.
const PATIENT_ID: &str = "123456^^^CHU&1.2.250.1.999.1.1&ISO^PI";
const PATIENT_NAME: &str = "DUPONT^Jean^Noël^^M.^^L~CŒUR-DUPONT^Jean^^^^^D";
const PATIENT_ADDRESS: &str = "12 rue de l'Œuvre^^Besançon^^25000^FRA^H";
const VISIT_NUMBER: &str = "2501234567^^^CHU&1.2.250.1.999.1.2&ISO^AN";
const PHYSICIAN: &str = "801234567890^MARTIN^Sophie^^^Dr";
const CARDIOLOGY_BED: &str = "2101^101^1^CHU";
const CARDIOLOGY_UF: &str = "Cardiologie^^^^^^UF^^^2101";

/// Lab results: LOINC code and name, value, UCUM unit, reference range, flag.
const RESULTS: [(&str, &str, &str, &str, &str); 4] = [
    (
        "2951-2^Sodium^LN",
        "140",
        "mmol/L^mmol/L^UCUM",
        "135-145",
        "N",
    ),
    (
        "2823-3^Potassium^LN",
        "4.2",
        "mmol/L^mmol/L^UCUM",
        "3.5-5.0",
        "N",
    ),
    (
        "14682-9^Créatinine^LN",
        "72",
        "umol/L^µmol/L^UCUM",
        "59-104",
        "N",
    ),
    (
        "14749-6^Glucose^LN",
        "6.4",
        "mmol/L^mmol/L^UCUM",
        "3.9-5.8",
        "H",
    ),
];

/// A document that looks like a one-page PDF to whoever decodes OBX-5.
const LETTER_PDF: &[u8] = b"%PDF-1.4\n\
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >> endobj\n\
4 0 obj << /Length 58 >> stream\n\
BT /F1 12 Tf 72 770 Td (Lettre de sortie - patient fictif) Tj ET\n\
endstream endobj\n\
trailer << /Root 1 0 R >>\n\
%%EOF\n";

impl Template {
    pub const ALL: [Template; 6] = [
        Template::AdtA01,
        Template::AdtA04,
        Template::AdtA08,
        Template::AdtA03,
        Template::MdmT02,
        Template::OruR01,
    ];

    /// The names `--template` accepts, in the order of [`Template::ALL`].
    pub const NAMES: [&'static str; 6] = [
        "adt-a01", "adt-a04", "adt-a08", "adt-a03", "mdm-t02", "oru-r01",
    ];

    pub fn name(self) -> &'static str {
        match self {
            Template::AdtA01 => "adt-a01",
            Template::AdtA04 => "adt-a04",
            Template::AdtA08 => "adt-a08",
            Template::AdtA03 => "adt-a03",
            Template::MdmT02 => "mdm-t02",
            Template::OruR01 => "oru-r01",
        }
    }

    /// MSH-9 as PAM FR and the HL7 v2.5 message structures write it.
    pub fn message_type(self) -> &'static str {
        match self {
            Template::AdtA01 => "ADT^A01^ADT_A01",
            Template::AdtA04 => "ADT^A04^ADT_A01",
            Template::AdtA08 => "ADT^A08^ADT_A01",
            Template::AdtA03 => "ADT^A03^ADT_A03",
            Template::MdmT02 => "MDM^T02^MDM_T02",
            Template::OruR01 => "ORU^R01^ORU_R01",
        }
    }

    /// The message for `ctx`, segments ended by `\r`, in ISO-8859-15.
    ///
    /// Characters of `ctx` that ISO-8859-15 cannot carry become `?`.
    pub fn render(&self, ctx: &TemplateContext) -> Vec<u8> {
        let segments = self.segments(ctx);
        let mut text = String::new();
        for segment in segments {
            text.push_str(&segment);
            text.push('\r');
        }
        Charset::Latin9.encode_lossy(&text)
    }

    fn segments(self, ctx: &TemplateContext) -> Vec<String> {
        let msh = msh(ctx, self.message_type());
        let inpatient = pv1(ctx, "I", false);
        match self {
            Template::AdtA01 => vec![msh, evn(self, ctx), pid(), inpatient, zbe(ctx)],
            Template::AdtA04 => vec![msh, evn(self, ctx), pid(), pv1(ctx, "O", false), zbe(ctx)],
            Template::AdtA08 => vec![msh, evn(self, ctx), pid(), inpatient],
            Template::AdtA03 => vec![msh, evn(self, ctx), pid(), pv1(ctx, "I", true), zbe(ctx)],
            Template::MdmT02 => vec![
                msh,
                evn(self, ctx),
                pid(),
                inpatient,
                txa(ctx),
                letter_obx(),
            ],
            Template::OruR01 => {
                let mut out = vec![msh, pid(), inpatient, obr(ctx)];
                out.extend(results(ctx));
                out
            }
        }
    }
}

impl TemplateContext {
    /// `from` (application, facility) to `to`, with a fresh control id and
    /// the current time.
    pub fn new(from: (&str, &str), to: (&str, &str)) -> Self {
        TemplateContext {
            sending_application: from.0.to_owned(),
            sending_facility: from.1.to_owned(),
            receiving_application: to.0.to_owned(),
            receiving_facility: to.1.to_owned(),
            control_id: next_control_id(),
            timestamp: now_timestamp(),
        }
    }

    /// The same parties with a new control id and the current time: what
    /// each new message needs.
    pub fn refreshed(&self) -> Self {
        TemplateContext {
            control_id: next_control_id(),
            timestamp: now_timestamp(),
            ..self.clone()
        }
    }
}

/// EAI of the CHU sending to its patient record (DPI).
impl Default for TemplateContext {
    fn default() -> Self {
        TemplateContext::new(("EAI", "CHU"), ("DPI", "CHU"))
    }
}

impl FromStr for Template {
    type Err = UnknownTemplate;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownTemplate(s.to_owned()))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A segment under construction: field `n` by HL7 numbering.
struct Seg {
    /// `fields[0]` is the segment id.
    fields: Vec<String>,
}

impl Seg {
    fn new(id: &str) -> Self {
        Seg {
            fields: vec![id.to_owned()],
        }
    }

    fn set(mut self, n: usize, value: impl Into<String>) -> Self {
        if self.fields.len() <= n {
            self.fields.resize(n + 1, String::new());
        }
        self.fields[n] = value.into();
        self
    }

    fn finish(self) -> String {
        self.fields.join("|")
    }
}

/// MSH-1 is the field separator itself, written by the join: MSH-`n` sits
/// at index `n - 1`.
fn msh(ctx: &TemplateContext, message_type: &str) -> String {
    let at = |n: usize| n - 1;
    Seg::new("MSH")
        .set(at(2), "^~\\&")
        .set(at(3), &ctx.sending_application)
        .set(at(4), &ctx.sending_facility)
        .set(at(5), &ctx.receiving_application)
        .set(at(6), &ctx.receiving_facility)
        .set(at(7), &ctx.timestamp)
        .set(at(9), message_type)
        .set(at(10), &ctx.control_id)
        .set(at(11), "P")
        .set(at(12), "2.5^FRA^2.11")
        .set(at(17), "FRA")
        .set(at(18), "8859/15")
        .finish()
}

fn evn(template: Template, ctx: &TemplateContext) -> String {
    let code = template.message_type().split('^').nth(1).unwrap_or("");
    Seg::new("EVN")
        .set(1, code)
        .set(2, &ctx.timestamp)
        .set(5, PHYSICIAN)
        .set(6, &ctx.timestamp)
        .finish()
}

fn pid() -> String {
    Seg::new("PID")
        .set(1, "1")
        .set(3, PATIENT_ID)
        .set(5, PATIENT_NAME)
        .set(7, "19580312")
        .set(8, "M")
        .set(11, PATIENT_ADDRESS)
        .set(13, "^PRN^PH^^^^^^^^^0381000000")
        .finish()
}

fn pv1(ctx: &TemplateContext, class: &str, discharged: bool) -> String {
    let seg = Seg::new("PV1")
        .set(1, "1")
        .set(2, class)
        .set(3, CARDIOLOGY_BED)
        .set(7, PHYSICIAN)
        .set(19, VISIT_NUMBER)
        .set(44, &ctx.timestamp);
    match discharged {
        true => seg.set(45, &ctx.timestamp).finish(),
        false => seg.finish(),
    }
}

/// The PAM FR movement segment: which movement, when, what to do with it,
/// and the medical unit (UF) responsible.
fn zbe(ctx: &TemplateContext) -> String {
    Seg::new("ZBE")
        .set(1, format!("M{}^CHU^1.2.250.1.999.1.3^ISO", ctx.control_id))
        .set(2, &ctx.timestamp)
        .set(4, "INSERT")
        .set(5, "N")
        .set(7, CARDIOLOGY_UF)
        .finish()
}

fn txa(ctx: &TemplateContext) -> String {
    Seg::new("TXA")
        .set(1, "1")
        .set(2, "11490-0^Lettre de sortie^LN")
        .set(3, "AP")
        .set(4, &ctx.timestamp)
        .set(5, PHYSICIAN)
        .set(12, format!("D{}^CHU", ctx.control_id))
        .set(17, "AU")
        .set(19, "AV")
        .finish()
}

fn letter_obx() -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(LETTER_PDF);
    Seg::new("OBX")
        .set(1, "1")
        .set(2, "ED")
        .set(3, "11490-0^Lettre de sortie^LN")
        .set(5, format!("^application^pdf^Base64^{b64}"))
        .set(11, "F")
        .finish()
}

fn obr(ctx: &TemplateContext) -> String {
    Seg::new("OBR")
        .set(1, "1")
        .set(2, format!("P{}^DPI", ctx.control_id))
        .set(3, format!("F{}^LABO", ctx.control_id))
        .set(4, "IONO^Ionogramme sanguin^L")
        .set(7, &ctx.timestamp)
        .set(22, &ctx.timestamp)
        .set(25, "F")
        .finish()
}

fn results(ctx: &TemplateContext) -> Vec<String> {
    RESULTS
        .iter()
        .enumerate()
        .map(|(i, (code, value, unit, range, flag))| {
            Seg::new("OBX")
                .set(1, (i + 1).to_string())
                .set(2, "NM")
                .set(3, *code)
                .set(5, *value)
                .set(6, *unit)
                .set(7, *range)
                .set(8, *flag)
                .set(11, "F")
                .set(14, &ctx.timestamp)
                .finish()
        })
        .collect()
}

#[cfg(test)]
mod tests;
