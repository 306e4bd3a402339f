//! A `folder` route: files an establishment's connector drops in an inbox
//! (written, then renamed), each validated, delivered to an HTTP(S)
//! upstream, then moved to `done/` or `rejected/` with a report beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::http::{upstream, Upstream};
use super::raw::{RawLimits, RawRoute, RawRule};
use super::types::{Limits, ProfileName, RouteName, TlsProfile};
use super::validation::{validation, Validation};
use super::{check_name, duration, in_range, limits, SettingError};

/// The `kind` of a folder route.
pub const FOLDER: &str = "folder";

/// A checked `folder` route.
#[derive(Debug, Clone)]
pub struct FolderSpec {
    pub name: RouteName,
    /// Watched for files; names starting with `.` or ending in `.tmp` are
    /// not taken (a writer's file before its rename).
    pub inbox: PathBuf,
    pub done: PathBuf,
    pub rejected: PathBuf,
    pub upstream: Upstream,
    pub validation: Option<Arc<Validation>>,
    /// How often the inbox is read.
    pub poll_interval: Duration,
    /// A file is taken once its size and time have not changed for this
    /// long: a writer that writes in place is not read half way.
    pub settle_time: Duration,
    /// A larger file is rejected unread.
    pub max_file_bytes: u64,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// For each request to the upstream (and its token).
    pub response_timeout: Duration,
    pub limits: Limits,
}

impl FolderSpec {
    /// The wait before attempt `attempts + 1`, after `attempts` failures.
    pub fn backoff(&self, attempts: u32) -> Duration {
        super::types::backoff(self.retry_initial, self.retry_max, attempts)
    }

    /// Where a file is kept while guichet works on it: inside the inbox
    /// (so a rename moves it, never a copy), hidden from the scan.
    pub fn work(&self) -> PathBuf {
        self.inbox.join(".guichet")
    }
}

/// The fields a folder route takes; the others belong to listening routes.
const LISTENING_FIELDS: &str = "listen, listen_tls, client_auth, allow, forward, forward_tls, rule, identity_headers, rate_limit, max_frame_bytes, delivery";

/// Checks a `kind = "folder"` route.
pub(super) fn folder_spec(
    raw: &RawRoute,
    defaults: &RawLimits,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
    dir: &Path,
) -> Result<FolderSpec, SettingError> {
    check_name(&raw.name, "name")?;
    if let Some(field) = listening_field(raw) {
        return Err(SettingError::field(
            field,
            format!("a folder route listens on nothing; it takes none of {LISTENING_FIELDS}"),
        ));
    }
    let inbox = folder(raw.inbox.as_deref(), "inbox", dir)?
        .ok_or_else(|| SettingError::field("inbox", "missing (the folder files are dropped in)"))?;
    let sibling = |name: &str| inbox.parent().unwrap_or(&inbox).join(name);
    let done = folder(raw.done.as_deref(), "done", dir)?.unwrap_or_else(|| sibling("done"));
    let rejected =
        folder(raw.rejected.as_deref(), "rejected", dir)?.unwrap_or_else(|| sibling("rejected"));
    if done == inbox || rejected == inbox || done == rejected {
        return Err(SettingError::conflict(
            "inbox, done and rejected must be three different folders",
        ));
    }
    let rule = as_rule(raw)?;
    let (retry_initial, retry_max) = retries(raw)?;
    Ok(FolderSpec {
        name: RouteName::new(&raw.name),
        upstream: upstream(&rule, profiles)?,
        validation: validation(&rule, dir)?.map(Arc::new),
        inbox,
        done,
        rejected,
        poll_interval: duration(raw.poll_interval.as_deref(), "poll_interval")?
            .unwrap_or(Duration::from_secs(1)),
        settle_time: duration(raw.settle_time.as_deref(), "settle_time")?
            .unwrap_or(Duration::from_secs(1)),
        max_file_bytes: in_range(
            raw.max_file_bytes.unwrap_or(10 * 1024 * 1024),
            "max_file_bytes",
            1..=1024 * 1024 * 1024,
        )? as u64,
        retry_initial,
        retry_max,
        response_timeout: duration(raw.response_timeout.as_deref(), "response_timeout")?
            .unwrap_or(Duration::from_secs(30)),
        limits: limits(&raw.limits().over(defaults), "")?,
    })
}

/// The route's upstream and validation settings, read as a rule's.
fn as_rule(raw: &RawRoute) -> Result<RawRule, SettingError> {
    let upstream = raw.upstream.clone().ok_or_else(|| {
        SettingError::field(
            "upstream",
            "missing (the http:// or https:// URL files go to)",
        )
    })?;
    Ok(RawRule {
        name: raw.name.clone(),
        host: None,
        path: "/".into(),
        upstream,
        upstream_tls: raw.upstream_tls.clone(),
        server_name: raw.server_name.clone(),
        token_url: raw.token_url.clone(),
        allow: Vec::new(),
        validate: raw.validate.clone(),
        referential: raw.referential.clone(),
        rules: raw.rules.clone(),
        indicators: raw.indicators.clone(),
        convert: raw.convert.clone(),
    })
}

fn retries(raw: &RawRoute) -> Result<(Duration, Duration), SettingError> {
    let initial =
        duration(raw.retry_initial.as_deref(), "retry_initial")?.unwrap_or(Duration::from_secs(1));
    let max = duration(raw.retry_max.as_deref(), "retry_max")?.unwrap_or(Duration::from_secs(300));
    if max < initial {
        return Err(SettingError::field(
            "retry_max",
            "must not be shorter than retry_initial",
        ));
    }
    Ok((initial, max))
}

/// A folder setting, against the config's folder when relative.
fn folder(value: Option<&str>, field: &str, dir: &Path) -> Result<Option<PathBuf>, SettingError> {
    match value {
        None => Ok(None),
        Some("") => Err(SettingError::field(field, "give a folder")),
        Some(v) => Ok(Some(dir.join(v))),
    }
}

/// A listening route's field set on a folder route.
fn listening_field(raw: &RawRoute) -> Option<&'static str> {
    [
        ("listen", raw.listen.is_some()),
        ("listen_tls", raw.listen_tls.is_some()),
        ("client_auth", raw.client_auth.is_some()),
        ("allow", raw.allow.is_some()),
        ("forward", raw.forward.is_some()),
        ("forward_tls", raw.forward_tls.is_some()),
        ("rule", raw.rule.is_some()),
        ("identity_headers", raw.identity_headers.is_some()),
        ("rate_limit", raw.rate_limit.is_some()),
        ("max_frame_bytes", raw.max_frame_bytes.is_some()),
        ("delivery", raw.delivery.is_some()),
        ("ack_timeout", raw.ack_timeout.is_some()),
        ("max_body_bytes", raw.max_body_bytes.is_some()),
    ]
    .into_iter()
    .find_map(|(field, set)| set.then_some(field))
}

/// A folder route's field set on a listening route.
pub(super) fn folder_field(raw: &RawRoute) -> Option<&'static str> {
    [
        ("inbox", raw.inbox.is_some()),
        ("done", raw.done.is_some()),
        ("rejected", raw.rejected.is_some()),
        ("upstream", raw.upstream.is_some()),
        ("upstream_tls", raw.upstream_tls.is_some()),
        ("token_url", raw.token_url.is_some()),
        ("validate", raw.validate.is_some()),
        ("referential", raw.referential.is_some()),
        ("rules", raw.rules.is_some()),
        ("indicators", raw.indicators.is_some()),
        ("convert", raw.convert.is_some()),
        ("poll_interval", raw.poll_interval.is_some()),
        ("settle_time", raw.settle_time.is_some()),
        ("max_file_bytes", raw.max_file_bytes.is_some()),
    ]
    .into_iter()
    .find_map(|(field, set)| set.then_some(field))
}
