//! The report's words: it-lanscape's French, and their English.

use super::Lang;
use crate::incident::{Cause, CauseKind, Status};

pub(super) struct Words {
    pub title: &'static str,
    pub generated: &'static str,
    pub rules: &'static str,
    /// `" : "` in French, `": "` in English.
    pub colon: &'static str,
    pub scenario: &'static str,
    pub scenario_headers: [&'static str; 5],
    pub summary: &'static str,
    pub summary_headers: [&'static str; 2],
    pub summary_rows: [&'static str; 4],
    pub by_establishment: &'static str,
    pub no_impact: &'static str,
    pub impacted: &'static str,
    pub app_headers: [&'static str; 7],
    pub actions: &'static str,
    pub processes: &'static str,
    pub blocked: &'static str,
    pub blocked_headers: [&'static str; 5],
    pub propagation: &'static str,
    pub propagation_headers: [&'static str; 4],
    pub no_data: &'static str,
    pub nothing: &'static str,
    pub not_given: &'static str,
    pub unknown: &'static str,
    pub no_establishment: &'static str,
    pub hosting: &'static str,
    pub flow: &'static str,
    pub dependency: &'static str,
    /// hs, degrade, latence, intermittent.
    pub status: [&'static str; 4],
    /// Descriptions, same order.
    descriptions: [&'static str; 4],
    /// application, server, flow, hosting.
    kinds: [&'static str; 4],
    guichet_rules: &'static str,
    actions_text: [&'static str; 17],
}

const FR: Words = Words {
    title: "Rapport incident / PRA-PCA",
    generated: "Généré le",
    rules: "Règles",
    colon: " : ",
    scenario: "Scénario",
    scenario_headers: ["Composant", "Type", "Statut", "Périmètre", "Détail"],
    summary: "Synthèse des impacts",
    summary_headers: ["Indicateur", "Valeur"],
    summary_rows: [
        "Composants du scénario",
        "Applications impactées",
        "Processus touchés",
        "Flux bloqués ou dégradés",
    ],
    by_establishment: "Rapport par établissement",
    no_impact: "Aucun impact identifié.",
    impacted: "Applications impactées",
    app_headers: [
        "Application",
        "Trigramme",
        "Statut",
        "Criticité",
        "Processus",
        "Hébergeur",
        "Causes",
    ],
    actions: "Actions recommandées",
    processes: "Services et processus touchés",
    blocked: "Flux bloqués / dégradés",
    blocked_headers: ["Source", "Cible", "Type", "Protocole", "Message"],
    propagation: "Propagation",
    propagation_headers: ["Source", "Cible", "Statut propagé", "Type"],
    no_data: "Aucune donnée.",
    nothing: "Aucun élément.",
    not_given: "Non renseigné",
    unknown: "Inconnu",
    no_establishment: "Établissement non renseigné",
    hosting: "Hébergeur",
    flow: "Flux",
    dependency: "Dépendance",
    status: ["Indisponible", "Dégradé", "Latence", "Intermittent"],
    descriptions: [
        "Arrêt complet du service",
        "Fonctionnalités limitées ou performance réduite",
        "Temps de réponse élevé",
        "Dysfonctionnements intermittents",
    ],
    kinds: ["application", "serveur", "flux", "hebergeur"],
    guichet_rules: "guichet (EAI et routes comme nœuds)",
    actions_text: [
        "Déclencher le PRA/PCA si disponible",
        "Notifier la DSI et les équipes support",
        "Vérifier l'état du serveur (monitoring, logs système)",
        "Basculer sur le serveur de secours ou redémarrer",
        "Surveiller les métriques (CPU, RAM, disque)",
        "Vérifier la disponibilité du middleware / de l'interface",
        "Activer le mode dégradé sans les flux dépendants",
        "Identifier un canal de substitution pour les données critiques",
        "Contacter l'hébergeur et obtenir un ETA de rétablissement",
        "Vérifier les engagements SLA contractuels",
        "Identifier et traiter le composant source en priorité",
        "Activer un mode de saisie manuelle si possible",
        "Prioriser les flux et processus critiques",
        "Informer les utilisateurs du mode dégradé",
        "Analyser les logs pour identifier le pattern d'instabilité",
        "Planifier une fenêtre de maintenance préventive",
        "Vérifier la saturation réseau et les ressources applicatives",
    ],
};

const EN: Words = Words {
    title: "Incident report / DRP-BCP",
    generated: "Generated on",
    rules: "Rules",
    colon: ": ",
    scenario: "Scenario",
    scenario_headers: ["Component", "Type", "Status", "Scope", "Detail"],
    summary: "Impact summary",
    summary_headers: ["Indicator", "Value"],
    summary_rows: [
        "Components in the scenario",
        "Impacted applications",
        "Processes affected",
        "Flows blocked or degraded",
    ],
    by_establishment: "Report by establishment",
    no_impact: "No impact found.",
    impacted: "Impacted applications",
    app_headers: [
        "Application",
        "Trigramme",
        "Status",
        "Criticality",
        "Process",
        "Hosting",
        "Causes",
    ],
    actions: "Recommended actions",
    processes: "Services and processes affected",
    blocked: "Flows blocked / degraded",
    blocked_headers: ["Source", "Target", "Type", "Protocol", "Message"],
    propagation: "Propagation",
    propagation_headers: ["Source", "Target", "Status carried", "Type"],
    no_data: "No data.",
    nothing: "None.",
    not_given: "Not given",
    unknown: "Unknown",
    no_establishment: "Establishment not given",
    hosting: "Hosting",
    flow: "Flow",
    dependency: "Dependency",
    status: ["Down", "Degraded", "Latency", "Intermittent"],
    descriptions: [
        "Service completely stopped",
        "Limited features or reduced performance",
        "High response times",
        "Intermittent malfunctions",
    ],
    kinds: ["application", "server", "flow", "hosting"],
    guichet_rules: "guichet (EAIs and routes as nodes)",
    actions_text: [
        "Trigger the disaster recovery / business continuity plan if there is one",
        "Notify the IT department and the support teams",
        "Check the server's state (monitoring, system logs)",
        "Fail over to the standby server or restart",
        "Watch the metrics (CPU, RAM, disk)",
        "Check that the middleware / interface is available",
        "Switch to degraded mode without the dependent flows",
        "Find a substitute channel for critical data",
        "Call the hosting provider and get an estimated time of recovery",
        "Check the contractual SLA commitments",
        "Find and fix the source component first",
        "Switch to manual entry if possible",
        "Give priority to critical flows and processes",
        "Tell users about the degraded mode",
        "Read the logs to find the pattern of instability",
        "Plan a preventive maintenance window",
        "Check network saturation and application resources",
    ],
};

impl Words {
    pub fn of(lang: Lang) -> &'static Words {
        match lang {
            Lang::Fr => &FR,
            Lang::En => &EN,
        }
    }

    pub fn rules_name(&self, rules: &str) -> &'static str {
        if rules == "guichet" {
            self.guichet_rules
        } else {
            "it-lanscape"
        }
    }

    /// A start's kind, as the scenario table shows it.
    pub fn kind(&self, kind: &str) -> &'static str {
        match kind {
            "application" => self.kinds[0],
            "server" => self.kinds[1],
            "flow" => self.kinds[2],
            "hosting" => self.kinds[3],
            "eai" => "EAI",
            _ => "route",
        }
    }

    pub fn describe(&self, status: Status) -> &'static str {
        match status {
            Status::Hs => self.descriptions[0],
            Status::Degrade => self.descriptions[1],
            Status::Latence => self.descriptions[2],
            Status::Intermittent => self.descriptions[3],
        }
    }

    /// it-lanscape's `incidentActionsByContext`, each action once; an EAI
    /// or a route counts as an interface.
    pub fn actions_for(&self, status: Status, causes: &[Cause]) -> Vec<String> {
        let has = |kinds: &[CauseKind]| causes.iter().any(|c| kinds.contains(&c.kind));
        let hs = status == Status::Hs;
        let interface = [
            CauseKind::Flow,
            CauseKind::FlowOutgoing,
            CauseKind::Eai,
            CauseKind::Route,
        ];
        let picks: [(bool, usize); 17] = [
            (hs, 0),
            (hs, 1),
            (has(&[CauseKind::Server]), 2),
            (has(&[CauseKind::Server]) && hs, 3),
            (has(&[CauseKind::Server]) && !hs, 4),
            (has(&interface), 5),
            (has(&interface), 6),
            (has(&interface) && hs, 7),
            (has(&[CauseKind::Hosting]), 8),
            (has(&[CauseKind::Hosting]), 9),
            (has(&[CauseKind::Upstream]), 10),
            (has(&[CauseKind::Upstream]), 11),
            (matches!(status, Status::Degrade | Status::Latence), 12),
            (matches!(status, Status::Degrade | Status::Latence), 13),
            (status == Status::Intermittent, 14),
            (status == Status::Intermittent, 15),
            (status == Status::Latence, 16),
        ];
        picks
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, i)| self.actions_text[*i].to_string())
            .collect()
    }
}
