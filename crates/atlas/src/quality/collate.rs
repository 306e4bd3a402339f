//! The order of finding titles, as JavaScript's `localeCompare` gives it
//! for it-lanscape's French titles: letters compared without accents or
//! case (`É` with `E`), white space and punctuation before digits before
//! letters; equal that way, the exact text decides. This is not a full
//! Unicode collation, only as much of one as French titles need, and it
//! never depends on the machine's locale.

use std::cmp::Ordering;

/// A letter without its accent, in lower case.
fn base(c: char) -> char {
    let c = c.to_lowercase().next().unwrap_or(c);
    match c {
        'à' | 'â' | 'ä' | 'á' => 'a',
        'ç' => 'c',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'î' | 'ï' | 'í' => 'i',
        'ô' | 'ö' | 'ó' => 'o',
        'ù' | 'û' | 'ü' | 'ú' => 'u',
        'ÿ' => 'y',
        other => other,
    }
}

/// (class, letter): punctuation and space 0, digits 1, letters 2.
fn key(c: char) -> (u8, char) {
    let b = base(c);
    let class = if b.is_alphabetic() {
        2
    } else if b.is_numeric() {
        1
    } else {
        0
    };
    // Punctuation compares as one class: ICU orders it before letters.
    (class, if class == 0 { ' ' } else { b })
}

/// `a.localeCompare(b)` for French titles.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    a.chars()
        .map(key)
        .cmp(b.chars().map(key))
        .then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// it-lanscape's 30 titles, in the order Node 20's `localeCompare`
    /// sorts them.
    const NODE_ORDER: [&str; 30] = [
        "Adresse IP serveur invalide",
        "Application critique non exploitable pour PRA/PCA",
        "Application critique sans flux documenté",
        "Application incomplète",
        "Application sans serveur rattaché",
        "CIDR réseau invalide",
        "Criticité invalide",
        "Dépendance de flux non exploitable",
        "Établissement absent de l’infrastructure",
        "Établissement absent du réseau",
        "Flux absents pour un établissement",
        "Flux avec trigramme hors référentiel",
        "Flux incomplet",
        "Flux vers application inconnue",
        "Format de trigramme invalide",
        "Interfaces applicatives non qualifiées",
        "Objet NetBox sans site",
        "Passerelle réseau invalide",
        "Port de flux invalide",
        "Protocole de flux invalide",
        "Référent manquant",
        "Serveur absent de la vue réseau",
        "Serveur incomplet",
        "Serveur non rattaché à une application",
        "Serveur réseau absent de l’infrastructure",
        "Trigramme applicatif dupliqué",
        "Trigramme applicatif inconnu",
        "Trigramme serveur inconnu",
        "Type d’interface invalide",
        "VLAN incomplet",
    ];

    #[test]
    fn titles_sort_as_node_sorts_them() {
        let mut titles = NODE_ORDER;
        titles.reverse();
        titles.sort_by(|a, b| compare(a, b));
        assert_eq!(titles, NODE_ORDER);
    }

    #[test]
    fn accents_and_case_fold_before_the_exact_text_decides() {
        assert_eq!(compare("Été", "ete"), Ordering::Greater);
        assert_eq!(compare("Étang", "ete"), Ordering::Less);
        assert_eq!(compare("a b", "ab"), Ordering::Less);
    }
}
