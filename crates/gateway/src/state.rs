//! A route's live state: its checked spec and the TLS ends built from the
//! certificate material. Rebuilt whole on reload and swapped atomically.

use std::collections::BTreeMap;
use std::sync::Arc;

use guichet_tls::{
    ClientTls, EndpointError, Identity, Material, MaterialError, Revoked, ServerTls,
};

use crate::certs::{cert_status, CertStatus};
use crate::config::{
    Config, ForwardTls, HttpSpec, Limits, ListenTls, ProfileName, RouteName, RouteSpec, Upstream,
};
use crate::ocsp::{profile_ocsp, OcspMetrics, ProfileOcsp};
use crate::revocation::{CrlCache, CrlStatus};
use crate::upstream::{TokenSource, UpstreamClient, ALPN};

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
    #[error("route \"{route}\", rule \"{rule}\": upstream: {error}")]
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
    /// Each folder route's upstream, by route.
    pub folders: BTreeMap<RouteName, UpstreamClient>,
}

/// Loads every profile the routes use (once each), adds the CRLs fetched
/// for it, and builds each route's TLS ends. Nothing is changed on error:
/// the caller keeps what it had.
pub fn build_states(
    config: &Config,
    ocsp_metrics: &OcspMetrics,
    fetched: &CrlCache,
) -> Result<Built, BuildError> {
    let materials = load_materials(config, fetched)?;
    let ocsp = ocsp_ends(config, &materials, ocsp_metrics)?;
    let ends = Ends {
        config,
        materials,
        ocsp,
    };
    let mut states = BTreeMap::new();
    for spec in &config.routes {
        states.insert(spec.name.clone(), ends.route_state(spec)?);
    }
    let mut folders = BTreeMap::new();
    for folder in &config.folders {
        let upstream = ends.upstream(&folder.name, "-", &folder.upstream, &folder.limits)?;
        folders.insert(folder.name.clone(), upstream);
    }
    let certificates = ends
        .materials
        .iter()
        .flat_map(|(name, material)| certificates(config, name, material))
        .collect();
    let crls = ends
        .materials
        .iter()
        .flat_map(|(name, material)| crls_in_force(config, name, material))
        .collect();
    Ok(Built {
        states,
        certificates,
        staplers: ends.staplers(),
        crls,
        folders,
    })
}

/// What the routes' TLS ends are built from: each used profile's material
/// and OCSP ends, loaded once.
struct Ends<'a> {
    config: &'a Config,
    materials: BTreeMap<&'a ProfileName, Material>,
    ocsp: BTreeMap<&'a ProfileName, ProfileOcsp>,
}

/// The material of every profile the routes use, each loaded once, in
/// the order the routes name them.
fn load_materials<'a>(
    config: &'a Config,
    fetched: &CrlCache,
) -> Result<BTreeMap<&'a ProfileName, Material>, BuildError> {
    let mut materials = BTreeMap::new();
    let folder_profiles = config
        .folders
        .iter()
        .filter_map(|f| f.upstream.tls.as_ref().map(|t| &t.profile));
    for name in config
        .routes
        .iter()
        .flat_map(used_profiles)
        .chain(folder_profiles)
    {
        if !materials.contains_key(name) {
            materials.insert(name, load_material(config, name, fetched)?);
        }
    }
    Ok(materials)
}

/// The profiles a route uses: its listener's, its forward side's and its
/// upstreams'.
fn used_profiles(route: &RouteSpec) -> impl Iterator<Item = &ProfileName> {
    let upstream_profiles = route
        .http()
        .into_iter()
        .flat_map(|h| h.rules.iter())
        .filter_map(|rule| rule.upstream.tls.as_ref().map(|t| &t.profile));
    route
        .listen_tls
        .as_ref()
        .map(|t| &t.profile)
        .into_iter()
        .chain(route.forward_tls.as_ref().map(|t| &t.profile))
        .chain(upstream_profiles)
}

/// One profile's files, with the CRLs fetched for it and the hooks that
/// learn CRL addresses and report stale CRLs.
fn load_material(
    config: &Config,
    name: &ProfileName,
    fetched: &CrlCache,
) -> Result<Material, BuildError> {
    let profile = &config.profiles[name];
    let mut material = Material::load(&profile.files).map_err(|error| BuildError::Material {
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
    Ok(material)
}

impl Ends<'_> {
    fn route_state(&self, spec: &RouteSpec) -> Result<RouteState, BuildError> {
        let endpoint_err = |error| BuildError::Endpoint {
            route: spec.name.clone(),
            error,
        };
        let server = match &spec.listen_tls {
            Some(tls) => Some(self.server_end(spec, tls).map_err(endpoint_err)?),
            None => None,
        };
        let http = match spec.http() {
            Some(http) => Some(self.http_state(spec, http)?),
            None => None,
        };
        let client = match &spec.forward_tls {
            Some(tls) => Some(self.forward_end(tls).map_err(endpoint_err)?),
            None => None,
        };
        Ok(RouteState {
            spec: spec.clone(),
            server,
            client,
            http,
        })
    }

    /// The listener's TLS end, offering HTTP's ALPN on `http` routes.
    fn server_end(&self, spec: &RouteSpec, tls: &ListenTls) -> Result<ServerTls, EndpointError> {
        let alpn: &[&[u8]] = if spec.http().is_some() { &ALPN } else { &[] };
        let settings = self.config.profiles[&tls.profile].settings;
        let ocsp = &self.ocsp[&tls.profile];
        let material = &self.materials[&tls.profile];
        Ok(
            ServerTls::with_alpn(material, tls.client_auth(), settings, alpn)?
                .with_ocsp(ocsp.checker.clone(), ocsp.stapler.clone()),
        )
    }

    /// The TLS end towards a route's receiver.
    fn forward_end(&self, tls: &ForwardTls) -> Result<ClientTls, EndpointError> {
        let settings = self.config.profiles[&tls.profile].settings;
        Ok(ClientTls::new(&self.materials[&tls.profile], settings)?
            .with_ocsp(self.ocsp[&tls.profile].checker.clone()))
    }

    /// An `http` route's upstream pools, in rule order, and what its
    /// listener's CRLs revoke.
    fn http_state(&self, spec: &RouteSpec, http: &HttpSpec) -> Result<HttpState, BuildError> {
        let mut upstreams = Vec::with_capacity(http.rules.len());
        for rule in &http.rules {
            let name = rule.name.as_str();
            upstreams.push(self.upstream(&spec.name, name, &rule.upstream, &spec.limits)?);
        }
        let revoked = spec
            .listen_tls
            .as_ref()
            .map(|tls| {
                Revoked::from_crls(self.materials[&tls.profile].crls.iter().map(|c| c.as_ref()))
            })
            .unwrap_or_default();
        Ok(HttpState { upstreams, revoked })
    }

    /// One rule's upstream pool, with TLS (and HTTP's ALPN) when its URL
    /// is https, and its token source when it asks for access tokens.
    pub(crate) fn upstream(
        &self,
        route: &RouteName,
        rule: &str,
        upstream: &Upstream,
        limits: &Limits,
    ) -> Result<UpstreamClient, BuildError> {
        let failed = |error: String| BuildError::Upstream {
            route: route.clone(),
            rule: rule.to_string(),
            error,
        };
        let client = self.pool(route, upstream, limits).map_err(failed)?;
        let Some(token) = &upstream.token else {
            return Ok(client);
        };
        let path = token.base_path.as_deref().unwrap_or("/");
        let path = path
            .parse()
            .map_err(|_| failed(format!("token_url path {path:?}")))?;
        let source = TokenSource::new(
            self.pool(route, token, limits).map_err(failed)?,
            path,
            token.origin.to_string(),
        );
        Ok(client.with_token(Arc::new(source)))
    }

    fn pool(
        &self,
        route: &RouteName,
        upstream: &Upstream,
        limits: &Limits,
    ) -> Result<UpstreamClient, String> {
        let tls = match &upstream.tls {
            Some(tls) => {
                let settings = self.config.profiles[&tls.profile].settings;
                let end = ClientTls::with_alpn(&self.materials[&tls.profile], settings, &ALPN)
                    .map_err(|error| format!("route {route}: {error}"))?;
                Some(end.with_ocsp(self.ocsp[&tls.profile].checker.clone()))
            }
            None => None,
        };
        UpstreamClient::new(
            upstream,
            tls,
            limits.connect_timeout,
            limits.handshake_timeout,
        )
        .map_err(|e| e.to_string())
    }

    /// Our own certificates' OCSP staplers, one per listening profile
    /// that staples.
    fn staplers(&self) -> Vec<std::sync::Arc<guichet_tls::Stapler>> {
        let mut staplers = BTreeMap::new();
        for tls in self
            .config
            .routes
            .iter()
            .filter_map(|s| s.listen_tls.as_ref())
        {
            if let Some(stapler) = &self.ocsp[&tls.profile].stapler {
                staplers.insert(&tls.profile, stapler.clone());
            }
        }
        staplers.into_values().collect()
    }
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
