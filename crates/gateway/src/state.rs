//! A route's live state: its checked spec and the TLS ends built from the
//! certificate material. Rebuilt whole on reload and swapped atomically.

use std::collections::BTreeMap;

use guichet_tls::{
    ClientTls, EndpointError, Identity, Material, MaterialError, Revoked, ServerTls,
};

use crate::certs::{cert_status, CertStatus};
use crate::config::{Config, ProfileName, RouteName, RouteSpec};
use crate::ocsp::{profile_ocsp, OcspMetrics, ProfileOcsp};
use crate::revocation::{CrlCache, CrlStatus};
use crate::upstream::{UpstreamClient, ALPN};

pub struct RouteState {
    pub spec: RouteSpec,
    pub server: Option<ServerTls>,
    pub client: Option<ClientTls>,
    /// `http` routes: each rule's upstream pool, in rule order.
    pub http: Option<HttpState>,
}

/// The upstream pools of an `http` route's rules; rebuilt with the state,
/// so a reload also renews the upstreams' TLS material.
pub struct HttpState {
    pub upstreams: Vec<UpstreamClient>,
    /// What the listener's CRLs revoke now: checked at every request, so a
    /// CRL update reaches connections admitted before it.
    pub revoked: Revoked,
}

/// Why certificate material could not be turned into TLS ends.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("[tls.{profile}]: {error}")]
    Material {
        profile: ProfileName,
        error: MaterialError,
    },
    #[error("route \"{route}\", rule \"{rule}\": upstream address: {error}")]
    Upstream {
        route: RouteName,
        rule: String,
        error: String,
    },
    #[error("[tls.{profile}] ocsp: {error}")]
    Ocsp {
        profile: ProfileName,
        error: guichet_tls::ocsp::OcspError,
    },
    #[error("route \"{route}\": {error}")]
    Endpoint {
        route: RouteName,
        error: EndpointError,
    },
}

/// Route states ready to swap in, and the certificates they were built from.
pub struct Built {
    pub states: BTreeMap<RouteName, RouteState>,
    pub certificates: Vec<CertStatus>,
    /// Our own certificates' OCSP staplers, one per listening profile that
    /// staples: [`guichet_tls::Stapler::spawn`] starts their refreshes.
    pub staplers: Vec<std::sync::Arc<guichet_tls::Stapler>>,
    /// Every CRL in force (files and fetched), for the freshness gauge.
    pub crls: Vec<CrlStatus>,
}

/// Loads every profile the routes use (once each), adds the CRLs fetched
/// for it, and builds each route's TLS ends. Nothing is changed on error:
/// the caller keeps what it had.
pub fn build_states(
    config: &Config,
    ocsp_metrics: &OcspMetrics,
    fetched: &CrlCache,
) -> Result<Built, BuildError> {
    let mut materials: BTreeMap<&ProfileName, Material> = BTreeMap::new();
    for route in &config.routes {
        let upstream_profiles = route
            .http()
            .into_iter()
            .flat_map(|h| h.rules.iter())
            .filter_map(|rule| rule.upstream.tls.as_ref().map(|t| &t.profile));
        let used = route
            .listen_tls
            .as_ref()
            .map(|t| &t.profile)
            .into_iter()
            .chain(route.forward_tls.as_ref().map(|t| &t.profile))
            .chain(upstream_profiles);
        for name in used {
            if !materials.contains_key(name) {
                let profile = &config.profiles[name];
                let mut material =
                    Material::load(&profile.files).map_err(|error| BuildError::Material {
                        profile: name.clone(),
                        error,
                    })?;
                material.crls.extend(fetched.crls(name));
                if profile.crl_fetch.from_certificates {
                    material.learn = Some(fetched.learnt(name));
                }
                if profile.settings.revocation.expired == guichet_tls::CrlExpired::Warn {
                    material.on_stale = Some(fetched.stale_hook(name));
                }
                materials.insert(name, material);
            }
        }
    }
    let ocsp = ocsp_ends(config, &materials, ocsp_metrics)?;
    let mut staplers: BTreeMap<&ProfileName, std::sync::Arc<guichet_tls::Stapler>> =
        BTreeMap::new();
    let mut states = BTreeMap::new();
    for spec in &config.routes {
        let endpoint_err = |error| BuildError::Endpoint {
            route: spec.name.clone(),
            error,
        };
        let alpn: &[&[u8]] = if spec.http().is_some() { &ALPN } else { &[] };
        let server = match &spec.listen_tls {
            Some(tls) => {
                let settings = config.profiles[&tls.profile].settings;
                Some(
                    ServerTls::with_alpn(
                        &materials[&tls.profile],
                        tls.client_auth(),
                        settings,
                        alpn,
                    )
                    .map_err(endpoint_err)?
                    .with_ocsp(
                        ocsp[&tls.profile].checker.clone(),
                        ocsp[&tls.profile].stapler.clone(),
                    ),
                )
            }
            None => None,
        };
        if let Some(tls) = &spec.listen_tls {
            if let Some(stapler) = &ocsp[&tls.profile].stapler {
                staplers.insert(&tls.profile, stapler.clone());
            }
        }
        let http = match spec.http() {
            Some(http) => {
                let mut upstreams = Vec::with_capacity(http.rules.len());
                for rule in &http.rules {
                    let tls = match &rule.upstream.tls {
                        Some(tls) => Some(
                            ClientTls::with_alpn(
                                &materials[&tls.profile],
                                config.profiles[&tls.profile].settings,
                                &ALPN,
                            )
                            .map_err(endpoint_err)?
                            .with_ocsp(ocsp[&tls.profile].checker.clone()),
                        ),
                        None => None,
                    };
                    let client = UpstreamClient::new(
                        &rule.upstream,
                        tls,
                        spec.limits.connect_timeout,
                        spec.limits.handshake_timeout,
                    )
                    .map_err(|e| BuildError::Upstream {
                        route: spec.name.clone(),
                        rule: rule.name.to_string(),
                        error: e.to_string(),
                    })?;
                    upstreams.push(client);
                }
                let revoked = spec
                    .listen_tls
                    .as_ref()
                    .map(|tls| {
                        Revoked::from_crls(materials[&tls.profile].crls.iter().map(|c| c.as_ref()))
                    })
                    .unwrap_or_default();
                Some(HttpState { upstreams, revoked })
            }
            None => None,
        };
        let client = match &spec.forward_tls {
            Some(tls) => {
                let settings = config.profiles[&tls.profile].settings;
                Some(
                    ClientTls::new(&materials[&tls.profile], settings)
                        .map_err(endpoint_err)?
                        .with_ocsp(ocsp[&tls.profile].checker.clone()),
                )
            }
            None => None,
        };
        states.insert(
            spec.name.clone(),
            RouteState {
                spec: spec.clone(),
                server,
                client,
                http,
            },
        );
    }
    let certificates = materials
        .iter()
        .flat_map(|(name, material)| certificates(config, name, material))
        .collect();
    let crls = materials
        .iter()
        .flat_map(|(name, material)| crls_in_force(config, name, material))
        .collect();
    Ok(Built {
        states,
        certificates,
        staplers: staplers.into_values().collect(),
        crls,
    })
}

/// Each used profile's OCSP checker and stapler, built once and shared by
/// its routes (so they share one answer cache).
fn ocsp_ends<'a>(
    config: &Config,
    materials: &BTreeMap<&'a ProfileName, Material>,
    metrics: &OcspMetrics,
) -> Result<BTreeMap<&'a ProfileName, ProfileOcsp>, BuildError> {
    materials
        .iter()
        .map(|(name, material)| {
            profile_ocsp(&config.profiles[*name], material, metrics)
                .map(|ends| (*name, ends))
                .map_err(|error| BuildError::Ocsp {
                    profile: (*name).clone(),
                    error,
                })
        })
        .collect()
}

fn crls_in_force(config: &Config, name: &ProfileName, material: &Material) -> Vec<CrlStatus> {
    let policy = config.profiles[name].settings.revocation.expired;
    material
        .crls
        .iter()
        .filter_map(|der| guichet_tls::crl::inspect(der).ok())
        .map(|info| CrlStatus {
            profile: name.clone(),
            info,
            expired_policy: policy,
        })
        .collect()
}

fn certificates(config: &Config, name: &ProfileName, material: &Material) -> Vec<CertStatus> {
    let files = &config.profiles[name].files;
    let profile = name.as_str();
    let own = material
        .own
        .as_ref()
        .zip(files.cert.as_deref())
        .map(|(own, file)| cert_status(profile, "certificate", file, &own.identity));
    let cas = files.ca.as_deref().into_iter().flat_map(|file| {
        material
            .ca_certs
            .iter()
            .filter_map(|der| Identity::from_der(der).ok())
            .map(move |id| cert_status(profile, "ca", file, &id))
    });
    own.into_iter().chain(cas).collect()
}
