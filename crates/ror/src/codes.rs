//! The slices of the ROR's `ror-location-supported-capacity` extension and
//! the codes each may hold: the national tables (TRE) and, within them,
//! the value sets the ROR accepts in exchanges (JDV).
//!
//! Source: the ROR implementation guide (`RORLocationSupportedCapacity`)
//! and the ANS API documentation's examples, whose code system URLs are
//! these.

/// The canonical URL of the capacity extension.
pub const CAPACITY_URL: &str =
    "https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition/ror-location-supported-capacity";

/// What a slice holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A code of [`Slice::codes`].
    Coded,
    /// `valueInteger`.
    Integer,
    /// `valueDateTime`.
    DateTime,
}

/// One code of a national table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub code: &'static str,
    /// The table's French label, written as the FHIR `display`.
    pub label: &'static str,
    /// In the value set the ROR accepts in exchanges.
    pub accepted: bool,
    /// Withdrawn from exchanges by the ANS, still sent by some (the
    /// documentation's own examples send gender 03).
    pub deprecated: bool,
}

/// One slice of the capacity extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// Its place in [`SLICES`] (and in a capacity record's values).
    pub index: usize,
    /// The extension's `url`, and the element name in guichet's XML.
    pub name: &'static str,
    pub kind: Kind,
    /// `1..1` in the profile.
    pub required: bool,
    /// The value set (JDV), for messages.
    pub value_set: &'static str,
    /// The code system of the national table (TRE).
    pub system: &'static str,
    pub codes: &'static [Code],
}

const fn code(code: &'static str, label: &'static str) -> Code {
    Code {
        code,
        label,
        accepted: true,
        deprecated: false,
    }
}

const fn deprecated(code: &'static str, label: &'static str) -> Code {
    Code {
        code,
        label,
        accepted: false,
        deprecated: true,
    }
}

const fn outside(code: &'static str, label: &'static str) -> Code {
    Code {
        code,
        label,
        accepted: false,
        deprecated: false,
    }
}

const fn coded(
    index: usize,
    name: &'static str,
    required: bool,
    value_set: &'static str,
    system: &'static str,
    codes: &'static [Code],
) -> Slice {
    Slice {
        index,
        name,
        kind: Kind::Coded,
        required,
        value_set,
        system,
        codes,
    }
}

pub const CAPACITY_TYPE: Slice = coded(
    0,
    "capacityType",
    true,
    "JDV_J187",
    "https://mos.esante.gouv.fr/NOS/TRE_R329-NatureCapacite/FHIR/TRE-R329-NatureCapacite",
    &[code("01", "Lit"), code("02", "Place")],
);

pub const CAPACITY_STATUS: Slice = coded(
    1,
    "capacityStatus",
    true,
    "JDV_J188",
    "https://mos.esante.gouv.fr/NOS/TRE_R330-TypeStatutCapacite/FHIR/TRE-R330-TypeStatutCapacite",
    &[
        code("01", "Installé"),
        code("02", "Disponible"),
        code("03", "Occupé"),
        code("04", "Réservé"),
        code("05", "Fermé"),
        code("06", "Supplémentaire"),
        deprecated("07", "Opérationnel"),
        outside("08", "Installé constaté"),
        outside("09", "Autorisé"),
    ],
);

pub const TEMPORALITY: Slice = coded(
    2,
    "temporalityCapacity",
    true,
    "JDV_J189",
    "https://mos.esante.gouv.fr/NOS/TRE_R331-TemporaliteCapacite/FHIR/TRE-R331-TemporaliteCapacite",
    &[
        code("01", "Courant"),
        code("02", "Prévisionnel 1 heure"),
        code("03", "Prévisionnel 24 heures"),
        code("04", "Prévisionnel 48 heures"),
        code("05", "Prévisionnel 7 jours"),
    ],
);

pub const COUNT: Slice = Slice {
    index: 3,
    name: "nbCapacity",
    kind: Kind::Integer,
    required: true,
    value_set: "",
    system: "",
    codes: &[],
};

pub const SOURCE_TYPE: Slice = coded(
    4,
    "capacitySourceType",
    true,
    "JDV_J193",
    "https://mos.esante.gouv.fr/NOS/TRE_R335-TypeSourceCapacite/FHIR/TRE-R335-TypeSourceCapacite",
    &[
        code("01", "Saisie manuelle"),
        code("02", "Bed management"),
        code("03", "GAM"),
        code("04", "DPI"),
    ],
);

pub const GENDER: Slice = coded(
    5,
    "genderCapacityAvailable",
    false,
    "JDV_J190",
    "https://mos.esante.gouv.fr/NOS/TRE_R332-GenreCapacite/FHIR/TRE-R332-GenreCapacite",
    &[
        code("01", "Femme"),
        code("02", "Homme"),
        deprecated("03", "Indifférencié"),
        code("04", "Indéterminé"),
    ],
);

pub const UPDATE_DATE: Slice = Slice {
    index: 6,
    name: "capacityUpdateDate",
    kind: Kind::DateTime,
    required: true,
    value_set: "",
    system: "",
    codes: &[],
};

pub const CLOSING_TYPE: Slice = coded(
    7,
    "capacityClosingType",
    false,
    "JDV_J191",
    "https://mos.esante.gouv.fr/NOS/TRE_R333-TypeFermetureCapacite/FHIR/TRE-R333-TypeFermetureCapacite",
    &[
        code("01", "Réactivable"),
        code("02", "Non réactivable"),
        code("03", "Indéterminé"),
    ],
);

pub const ADDITIONAL_BED_TYPE: Slice = coded(
    8,
    "additionalBedType",
    false,
    "JDV_J192",
    "https://mos.esante.gouv.fr/NOS/TRE_R334-TypeLitSupplementaire/FHIR/TRE-R334-TypeLitSupplementaire",
    &[
        code("01", "Mobilisé"),
        code("02", "Mobilisable sans RH"),
        code("03", "Mobilisable avec RH"),
    ],
);

pub const CRISIS_TYPE: Slice = coded(
    9,
    "crisisType",
    false,
    "JDV_J194",
    "https://mos.esante.gouv.fr/NOS/TRE_R336-TypeCrise/FHIR/TRE-R336-TypeCrise",
    &[code("01", "PMIE 1"), code("02", "SSE (Plan blanc)")],
);

/// Spelled as the profile spells it.
pub const TEMPORARY_ASSIGNMENT: Slice = coded(
    10,
    "temporaryAssignement",
    true,
    "JDV_J195",
    "https://mos.esante.gouv.fr/NOS/TRE_R337-AffectationTemporaire/FHIR/TRE-R337-AffectationTemporaire",
    &[code("01", "Aucune"), code("02", "Covid+"), code("03", "Covid-")],
);

/// Every slice, in the order guichet writes them.
pub const SLICES: [&Slice; 11] = [
    &CAPACITY_TYPE,
    &CAPACITY_STATUS,
    &TEMPORALITY,
    &COUNT,
    &SOURCE_TYPE,
    &GENDER,
    &UPDATE_DATE,
    &CLOSING_TYPE,
    &ADDITIONAL_BED_TYPE,
    &CRISIS_TYPE,
    &TEMPORARY_ASSIGNMENT,
];

/// The slices that make an indicator (the tuple the national ROR checks
/// against its list, and that identifies a record within a unit).
pub const INDICATOR: [&Slice; 7] = [
    &CAPACITY_STATUS,
    &TEMPORALITY,
    &GENDER,
    &CLOSING_TYPE,
    &ADDITIONAL_BED_TYPE,
    &CRISIS_TYPE,
    &TEMPORARY_ASSIGNMENT,
];

/// The slice called `name`.
pub fn slice(name: &str) -> Option<&'static Slice> {
    SLICES.iter().copied().find(|s| s.name == name)
}

impl Slice {
    /// `code`'s entry in the national table.
    pub fn code(&self, code: &str) -> Option<&'static Code> {
        self.codes.iter().find(|c| same(c.code, code))
    }
}

/// Whether two short texts (codes) are equal, compared in place: `==`
/// would call `memcmp` for a couple of bytes.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOS: &str = "https://mos.esante.gouv.fr/NOS/";

    #[test]
    fn each_slice_knows_its_place() {
        for (i, slice) in SLICES.iter().enumerate() {
            assert_eq!(slice.index, i, "{}", slice.name);
        }
    }

    #[test]
    fn every_code_system_is_a_nos_table_of_its_own() {
        let coded: Vec<_> = SLICES.iter().filter(|s| s.kind == Kind::Coded).collect();
        assert_eq!(coded.len(), 9);
        for slice in &coded {
            assert!(slice.system.starts_with(NOS), "{}", slice.name);
            let same: Vec<_> = coded.iter().filter(|s| s.system == slice.system).collect();
            assert_eq!(same.len(), 1, "{}", slice.name);
        }
    }

    #[test]
    fn deprecated_codes_are_the_two_the_ans_withdrew() {
        let deprecated: Vec<_> = SLICES
            .iter()
            .flat_map(|s| s.codes.iter().map(move |c| (s.name, c)))
            .filter(|(_, c)| c.deprecated)
            .map(|(name, c)| (name, c.code))
            .collect();
        assert_eq!(
            deprecated,
            [("capacityStatus", "07"), ("genderCapacityAvailable", "03")]
        );
    }
}
