//! A route's live state: its checked spec and the TLS ends built from the
//! certificate material. Rebuilt whole on reload and swapped atomically.

use std::collections::BTreeMap;

use guichet_tls::{ClientTls, EndpointError, Identity, Material, MaterialError, ServerTls};

use crate::config::{Config, ProfileName, RouteName, RouteSpec};
use crate::status::{cert_status, CertStatus};

pub struct RouteState {
    pub spec: RouteSpec,
    pub server: Option<ServerTls>,
    pub client: Option<ClientTls>,
}

/// Why certificate material could not be turned into TLS ends.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("[tls.{profile}]: {error}")]
    Material {
        profile: ProfileName,
        error: MaterialError,
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
}

/// Loads every profile the routes use (once each) and builds each route's
/// TLS ends. Nothing is changed on error: the caller keeps what it had.
pub fn build_states(config: &Config) -> Result<Built, BuildError> {
    let mut materials: BTreeMap<&ProfileName, Material> = BTreeMap::new();
    for route in &config.routes {
        let used = route
            .listen_tls
            .as_ref()
            .map(|t| &t.profile)
            .into_iter()
            .chain(route.forward_tls.as_ref().map(|t| &t.profile));
        for name in used {
            if !materials.contains_key(name) {
                let profile = &config.profiles[name];
                let material =
                    Material::load(&profile.files).map_err(|error| BuildError::Material {
                        profile: name.clone(),
                        error,
                    })?;
                materials.insert(name, material);
            }
        }
    }
    let mut states = BTreeMap::new();
    for spec in &config.routes {
        let endpoint_err = |error| BuildError::Endpoint {
            route: spec.name.clone(),
            error,
        };
        let server = match &spec.listen_tls {
            Some(tls) => {
                let settings = config.profiles[&tls.profile].settings;
                Some(
                    ServerTls::new(&materials[&tls.profile], tls.client_auth(), settings)
                        .map_err(endpoint_err)?,
                )
            }
            None => None,
        };
        let client = match &spec.forward_tls {
            Some(tls) => {
                let settings = config.profiles[&tls.profile].settings;
                Some(ClientTls::new(&materials[&tls.profile], settings).map_err(endpoint_err)?)
            }
            None => None,
        };
        states.insert(
            spec.name.clone(),
            RouteState {
                spec: spec.clone(),
                server,
                client,
            },
        );
    }
    let certificates = materials
        .iter()
        .flat_map(|(name, material)| certificates(config, name, material))
        .collect();
    Ok(Built {
        states,
        certificates,
    })
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
