//! The ANS API documentation's examples of bed availability, as the
//! documentation writes them (scenarios 2, 2 BIS and 3 of
//! `creation-maj-lieu-offre`), for the tests: vendors copy them, so they
//! must be read as written.

/// The capacity extension of the ANS documentation's scenarios 2 and 2
/// BIS, with `COUNT` for its count.
pub(crate) const EXTENSION: &str = r#"{"extension": [
  {"url": "nbCapacity", "valueInteger": COUNT},
  {"url": "capacityUpdateDate", "valueDateTime": "2025-02-26T15:17:33Z"},
  {"url": "capacityStatus", "valueCodeableConcept": {"coding": [{"code": "02", "display": "Disponible", "system": "https://mos.esante.gouv.fr/NOS/TRE_R330-TypeStatutCapacite/FHIR/TRE-R330-TypeStatutCapacite"}]}},
  {"url": "capacityType", "valueCodeableConcept": {"coding": [{"code": "02", "display": "Place", "system": "https://mos.esante.gouv.fr/NOS/TRE_R329-NatureCapacite/FHIR/TRE-R329-NatureCapacite"}]}},
  {"url": "temporalityCapacity", "valueCodeableConcept": {"coding": [{"code": "01", "display": "Courant", "system": "https://mos.esante.gouv.fr/NOS/TRE_R331-TemporaliteCapacite/FHIR/TRE-R331-TemporaliteCapacite"}]}},
  {"url": "capacitySourceType", "valueCodeableConcept": {"coding": [{"code": "02", "display": "Bed management", "system": "https://mos.esante.gouv.fr/NOS/TRE_R335-TypeSourceCapacite/FHIR/TRE-R335-TypeSourceCapacite"}]}},
  {"url": "genderCapacityAvailable", "valueCodeableConcept": {"coding": [{"code": "03", "display": "Indifférencié", "system": "https://mos.esante.gouv.fr/NOS/TRE_R332-GenreCapacite/FHIR/TRE-R332-GenreCapacite"}]}},
  {"url": "temporaryAssignement", "valueCodeableConcept": {"coding": [{"code": "01", "display": "Aucune", "system": "https://mos.esante.gouv.fr/NOS/TRE_R337-AffectationTemporaire/FHIR/TRE-R337-AffectationTemporaire"}]}}
], "url": "https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition/ror-location-supported-capacity"}"#;

/// The selector of scenarios 2 BIS and 3, spacing as written there.
pub(crate) const SELECTOR: &str = "Location.extension.where(url='https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition/ror-location-supported-capacity').where(extension.where(url = 'capacityStatus' and valueCodeableConcept.coding.code = '02') and extension.where(url = 'temporalityCapacity' and valueCodeableConcept.coding.code = '01')  and extension.where(url = 'genderCapacityAvailable' and valueCodeableConcept.coding.code = '03') and extension.where(url = 'temporaryAssignement' and valueCodeableConcept.coding.code = '01'))";

/// The extension with `count` places, in a `Location` of unit
/// `1350054680/SSR38888` (identifier type 26).
pub(crate) fn location(count: i64) -> String {
    let extension = EXTENSION.replace("COUNT", &count.to_string());
    format!(
        r#"{{"resourceType": "Location", "identifier": [{{"type": {{"coding": [{{"system": "{}", "code": "26"}}]}}, "value": "1350054680/SSR38888"}}], "extension": [{extension}]}}"#,
        crate::fhir::UNIT_ID_SYSTEM
    )
}
