//! The map in other tools' forms: the flow matrix as CSV, the business
//! map as a draw.io file, the flows as a Mermaid flowchart.

pub mod csv;
pub mod drawio;
pub mod mermaid;

/// it-lanscape's colours of the interface families, in the order a card
/// takes its colour from (the first family the application has).
pub const INTERFACE_COLOURS: [(&str, &str); 5] = [
    ("Medicale", "#4caf50"),
    ("Administrative", "#ffeb3b"),
    ("Planification", "#2196f3"),
    ("Facturation", "#f44336"),
    ("Autre", "#9e9e9e"),
];

/// The colour of an application without an interface family.
pub const NO_INTERFACE: &str = "#64748b";

/// The colour of the application's first interface family.
pub fn colour_of(app: &crate::model::Application) -> &'static str {
    INTERFACE_COLOURS
        .iter()
        .find(|(family, _)| app.has_interface(family))
        .map_or(NO_INTERFACE, |(_, colour)| colour)
}

#[cfg(test)]
mod tests;
