//! A folder route at work: files taken from the inbox, judged, stored in
//! the journal, delivered in the order they were taken, then moved to
//! `done/` or `rejected/` with a report.
//!
//! A file's state is where it lies and what the journal says of it:
//! - in the inbox: not taken yet;
//! - in the work folder, unknown to the journal: taken, not yet judged
//!   (judged again after a crash: the verdict is the same);
//! - in the work folder and in the journal: owed to the upstream, or
//!   delivered or refused and not yet moved (moved after a crash);
//! - in `done/` or `rejected/`, its report beside it: finished.
//!
//! Only the node holding the route's lease takes and delivers files.

mod files;
mod report;
mod send;

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use guichet_hl7::Meta;
use guichet_journal::{Claimed, Filter, Journal, MessageRecord, NewMessage, Outcome, State};
use guichet_ror::rules::{Severity, Violation};
use guichet_ror::{Keep, Verdict};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use self::files::{Odd, Ready, Watch};
use self::report::{Reason, Report};
use crate::certs::unix_ms;
use crate::config::FolderSpec;
use crate::lease::{Lease, Pause};
use crate::metrics::{FolderFileLabels, FolderViolationLabels, Metrics, RouteLabel};
use crate::national::Sent;
use crate::observe::{FlowEnds, Observer, Party, Seen, OUT};
use crate::upstream::UpstreamClient;

pub(crate) use files::make_folders;

/// Files claimed from the journal at a time: few, so a crash flags few
/// as possibly sent.
const CLAIM: usize = 4;

/// What the journal's listings show as a folder file's message type.
const MESSAGE_TYPE: &str = "bed-availability";

/// One folder route, ready to run.
pub(crate) struct FolderRoute {
    pub spec: FolderSpec,
    pub upstream: UpstreamClient,
    pub journal: Journal,
    pub node: String,
    pub lease_ttl: Duration,
    pub metrics: Metrics,
    pub observer: Arc<Observer>,
}

/// How a file ends, for its report.
struct Finished<'a> {
    reason: Reason,
    detail: Option<String>,
    record: Option<&'a MessageRecord>,
    sent: Option<&'a Sent>,
    violations: &'a [Violation],
    /// The file's size, when known.
    bytes: Option<u64>,
}

impl<'a> Finished<'a> {
    fn new(reason: Reason, detail: Option<String>) -> Finished<'a> {
        Finished {
            reason,
            detail,
            record: None,
            sent: None,
            violations: &[],
            bytes: None,
        }
    }
}

/// The route at work, on the node holding its lease.
struct Worker {
    route: FolderRoute,
    watch: Watch,
    /// Taken files get a sequence number: two taken in one millisecond
    /// keep apart.
    seq: u64,
    /// Claimed from the journal, not yet settled, in order.
    pending: VecDeque<Claimed>,
    /// Taken files the journal could not store: tried again each round.
    unstored: Vec<OsString>,
    wake: Notify,
}

impl FolderRoute {
    /// Works until `shutdown`; gives the lease back on the way out.
    pub async fn run(self, shutdown: CancellationToken) {
        let span = info_span!("folder", route = %self.spec.name, node = %self.node);
        async move {
            let name = self.spec.name.to_string();
            let mut lease = Lease::new(
                self.journal.clone(),
                &name,
                &self.node,
                self.lease_ttl,
                &self.metrics,
            );
            let mut worker = Worker {
                route: self,
                watch: Watch::default(),
                seq: 0,
                pending: VecDeque::new(),
                unstored: Vec::new(),
                wake: Notify::new(),
            };
            let mut holding = false;
            while !shutdown.is_cancelled() {
                if !holding {
                    holding = lease.take(&shutdown).await;
                    if holding {
                        worker.pending.clear();
                        worker.resume().await;
                    }
                    continue;
                }
                match worker.round(&mut lease, &shutdown).await {
                    Ok(()) => {}
                    Err(Pause::Shutdown) => break,
                    Err(Pause::LeaseLost) => {
                        lease.lost();
                        holding = false;
                    }
                }
            }
            if holding {
                lease.give_back().await;
            }
            info!("folder route stopped");
        }
        .instrument(span)
        .await;
    }
}

impl Worker {
    fn spec(&self) -> &FolderSpec {
        &self.route.spec
    }

    /// Takes what the inbox holds, delivers what is due, then waits for
    /// the next poll (or the next retry, if sooner).
    async fn round(
        &mut self,
        lease: &mut Lease,
        shutdown: &CancellationToken,
    ) -> Result<(), Pause> {
        self.take_ready().await;
        let wait = self.deliver(lease, shutdown).await?;
        lease.idle(&self.wake, shutdown, wait).await
    }

    /// Files left in the work folder by a crash or another node: each
    /// judged again, or finished per the journal.
    async fn resume(&mut self) {
        let entries = match std::fs::read_dir(self.spec().work()) {
            Ok(entries) => entries,
            Err(e) => {
                warn!(folder = %self.spec().work().display(), "cannot read the work folder: {e}");
                return;
            }
        };
        let mut names: Vec<OsString> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| !files::hidden(n))
            .collect();
        names.sort();
        let resumed = names.len();
        for name in names {
            self.resume_one(name).await;
        }
        if resumed > 0 {
            info!(files = resumed, "resumed the files left in the work folder");
        }
    }

    async fn resume_one(&mut self, name: OsString) {
        match self.record_of(&name).await {
            Err(e) => {
                warn!("journal unavailable, the file waits: {e}");
                self.unstored.push(name);
            }
            Ok(None) => self.admit(name, None).await,
            Ok(Some(record)) => match record.state {
                State::Delivered => self.finish(
                    &name,
                    Finished {
                        record: Some(&record),
                        ..Finished::new(Reason::Delivered, None)
                    },
                ),
                State::Dead => self.finish(
                    &name,
                    Finished {
                        record: Some(&record),
                        ..Finished::new(Reason::Refused, record.last_error.clone())
                    },
                ),
                // Still owed: the journal's queue has it.
                State::Queued | State::InFlight | State::Failed => {}
            },
        }
    }

    /// The journal's record of the taken file `name`, if it was stored.
    async fn record_of(
        &self,
        name: &OsStr,
    ) -> Result<Option<MessageRecord>, guichet_journal::JournalError> {
        let found = self
            .route
            .journal
            .list(Filter {
                route: Some(self.spec().name.to_string()),
                control_id: Some(name.to_string_lossy().into_owned()),
                limit: 1,
                ..Filter::default()
            })
            .await?;
        Ok(found.into_iter().next())
    }

    /// Takes every ready inbox file into the work folder and judges it.
    async fn take_ready(&mut self) {
        for name in std::mem::take(&mut self.unstored) {
            self.resume_one(name).await;
        }
        let ready = match self.watch.scan(&self.route.spec, Instant::now()) {
            Ok(ready) => ready,
            Err(e) => {
                warn!(inbox = %self.spec().inbox.display(), "cannot read the inbox: {e}");
                return;
            }
        };
        for file in ready {
            if let Some(work) = self.take(&file) {
                self.admit(work, file.odd).await;
            }
        }
    }

    /// Renames an inbox file into the work folder; its new name.
    fn take(&mut self, file: &Ready) -> Option<OsString> {
        let from = self.spec().inbox.join(&file.name);
        loop {
            let work = files::work_name(&file.name, SystemTime::now(), self.seq);
            self.seq += 1;
            match files::rename_new(&from, &self.spec().work().join(&work)) {
                Ok(true) => return Some(work),
                Ok(false) => continue,
                Err(e) => {
                    // Gone meanwhile, or the folder is not writable: it
                    // stays where it is, and is tried again.
                    warn!(file = %file.name.to_string_lossy(), "cannot take the file: {e}");
                    return None;
                }
            }
        }
    }

    /// Judges a taken file: refused, or stored for delivery.
    async fn admit(&mut self, work: OsString, odd: Option<Odd>) {
        let path = self.spec().work().join(&work);
        let max = self.spec().max_file_bytes;
        let bytes = match odd {
            Some(Odd::Link) => {
                let detail =
                    "a symbolic link: guichet does not follow links in the inbox".to_string();
                return self.finish(&work, Finished::new(Reason::Link, Some(detail)));
            }
            Some(Odd::TooLarge(len)) => return self.too_large(&work, len),
            None => match files::read_at_most(&path, max) {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(len)) => return self.too_large(&work, len),
                Err(e) => {
                    let detail = format!("cannot be read: {e}");
                    return self.finish(&work, Finished::new(Reason::Unreadable, Some(detail)));
                }
            },
        };
        let verdict = self.judge(bytes.clone()).await;
        if let Some(verdict) = verdict.as_ref().filter(|v| !v.valid()) {
            self.count_violations(&verdict.violations);
            let detail = format!("{} rule(s) broken", errors(&verdict.violations));
            let finished = Finished {
                violations: &verdict.violations,
                bytes: Some(bytes.len() as u64),
                ..Finished::new(Reason::Invalid, Some(detail))
            };
            return self.finish(&work, finished);
        }
        if let Some(verdict) = &verdict {
            self.count_violations(&verdict.violations);
        }
        self.store(work, bytes, verdict).await;
    }

    fn too_large(&mut self, work: &OsStr, len: u64) {
        let detail = format!(
            "{len} bytes, over max_file_bytes = {}",
            self.spec().max_file_bytes
        );
        let finished = Finished {
            bytes: Some(len),
            ..Finished::new(Reason::TooLarge, Some(detail))
        };
        self.finish(work, finished);
    }

    /// The rules' verdict, when the route validates.
    async fn judge(&self, bytes: Vec<u8>) -> Option<Verdict> {
        let validation = self.spec().validation.clone()?;
        // The document is kept: its establishment goes in the journal.
        Some(validation.judge_apart(bytes.into(), Keep::Document).await)
    }

    /// Stores a valid file in the journal, to be delivered.
    async fn store(&mut self, work: OsString, body: Vec<u8>, verdict: Option<Verdict>) {
        let establishment = verdict
            .as_ref()
            .and_then(|v| v.document.as_ref())
            .and_then(|d| d.establishment.finess_eg.as_ref())
            .map(|f| f.value.clone())
            .unwrap_or_default();
        let route = self.spec().name.to_string();
        let message = NewMessage {
            route: route.clone(),
            received_at_ms: unix_ms(SystemTime::now()),
            peer_app: None,
            peer_addr: format!("folder:{}", self.spec().inbox.display()),
            dedup_key: route,
            dedup_since_ms: None,
            meta: Meta {
                sending_facility: establishment,
                message_type: MESSAGE_TYPE.into(),
                control_id: work.to_string_lossy().into_owned(),
                ..Meta::default()
            },
            body,
            sealed: false,
        };
        match self.route.journal.ingest(vec![message]).await {
            Ok(_) => self.wake.notify_one(),
            Err(e) => {
                warn!(file = %work.to_string_lossy(), "journal unavailable, the file waits: {e}");
                self.unstored.push(work);
            }
        }
    }

    /// Delivers what is due, in order, until the queue is empty, the head
    /// waits for a retry, or a poll interval has passed (so the inbox is
    /// read again). How long to wait before the next round.
    async fn deliver(
        &mut self,
        lease: &mut Lease,
        shutdown: &CancellationToken,
    ) -> Result<Duration, Pause> {
        let started = Instant::now();
        let poll = self.spec().poll_interval;
        loop {
            if self.pending.is_empty() {
                let name = self.spec().name.to_string();
                match self.route.journal.claim(&name, CLAIM).await {
                    Ok(claimed) if claimed.is_empty() => return Ok(poll),
                    Ok(claimed) => self.pending.extend(claimed),
                    Err(e) => {
                        warn!("journal unavailable, delivery waits: {e}");
                        return Ok(poll);
                    }
                }
            }
            let now = unix_ms(SystemTime::now());
            let due = self.pending.front().and_then(|m| m.next_attempt_at_ms);
            if let Some(at) = due.filter(|at| *at > now) {
                return Ok(poll.min(Duration::from_millis((at - now) as u64)));
            }
            if started.elapsed() >= poll {
                return Ok(Duration::ZERO);
            }
            lease.keep().await?;
            self.deliver_head(shutdown).await?;
        }
    }

    /// One attempt at the head of the queue; recorded, and the file moved
    /// once settled.
    async fn deliver_head(&mut self, shutdown: &CancellationToken) -> Result<(), Pause> {
        let Some(mut message) = self.pending.pop_front() else {
            return Ok(());
        };
        let attempt = send::attempt(self.spec(), &self.route.upstream, &message);
        let (outcome, sent) = tokio::select! {
            () = shutdown.cancelled() => return Err(Pause::Shutdown),
            settled = attempt => settled,
        };
        if let Err(e) = self.route.journal.record(message.id, outcome.clone()).await {
            warn!("could not record a delivery outcome (the file will be sent again): {e}");
            self.pending.push_front(message);
            return Ok(());
        }
        let name = OsString::from(&message.meta.control_id);
        match outcome {
            Outcome::Delivered { .. } | Outcome::Dead { .. } => {
                let (reason, detail) = match outcome {
                    Outcome::Dead { error, .. } => (Reason::Refused, Some(error)),
                    _ => (Reason::Delivered, None),
                };
                let record = self.settled_record(&message, &sent);
                // Warnings go in a delivered file's report too.
                let verdict = match reason {
                    Reason::Delivered => self.judge(std::mem::take(&mut message.body)).await,
                    _ => None,
                };
                let finished = Finished {
                    record: Some(&record),
                    sent: Some(&sent),
                    violations: verdict.as_ref().map_or(&[], |v| &v.violations),
                    ..Finished::new(reason, detail)
                };
                self.finish(&name, finished);
            }
            Outcome::Retry {
                error,
                next_attempt_at_ms,
                ..
            } => {
                self.retried(&name, &error, message.attempts + 1);
                message.attempts += 1;
                message.next_attempt_at_ms = Some(next_attempt_at_ms);
                self.pending.push_front(message);
            }
        }
        Ok(())
    }

    fn retried(&self, name: &OsStr, error: &str, attempts: u32) {
        warn!(
            file = %name.to_string_lossy(),
            attempts,
            upstream = %self.spec().upstream.origin,
            "delivery failed, retried later: {error}"
        );
        let route = RouteLabel {
            route: self.spec().name.to_string(),
        };
        self.route
            .metrics
            .folder_retries
            .get_or_create(&route)
            .inc();
    }

    /// What the report says of a file's delivery, without reading the
    /// journal again.
    fn settled_record(&self, message: &Claimed, sent: &Sent) -> MessageRecord {
        MessageRecord {
            id: message.id,
            route: message.route.clone(),
            received_at_ms: message.received_at_ms,
            peer_app: None,
            peer_addr: String::new(),
            meta: message.meta.clone(),
            state: State::Delivered,
            attempts: message.attempts + 1,
            redelivered: message.redelivered,
            last_error: None,
            ack_code: sent.steps().last().map(|s| s.status.as_u16().to_string()),
            next_attempt_at_ms: None,
            finished_at_ms: None,
            body_len: Some(message.body.len() as u64),
            sealed: false,
        }
    }

    fn count_violations(&self, violations: &[Violation]) {
        for violation in violations {
            let labels = FolderViolationLabels {
                route: self.spec().name.to_string(),
                code: violation.code,
            };
            self.route
                .metrics
                .folder_violations
                .get_or_create(&labels)
                .inc();
        }
    }

    /// Writes the report, then moves the file beside it: a crash between
    /// the two leaves the file in the work folder, finished again later.
    fn finish(&self, work: &OsStr, finished: Finished<'_>) {
        let spec = self.spec();
        let reason = finished.reason;
        let (folder, other) = if reason == Reason::Delivered {
            (&spec.done, &spec.rejected)
        } else {
            (&spec.rejected, &spec.done)
        };
        let facility = finished
            .record
            .map(|r| r.meta.sending_facility.clone())
            .unwrap_or_default();
        self.observe(&facility, reason);
        let report = self.report(work, finished);
        let mut report_name = work.to_owned();
        report_name.push(".report.json");
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        let written = files::write_whole(&folder.join(&report_name), &json)
            .and_then(|()| self.move_out(work, folder, other, &report_name));
        let file = report.file.as_str();
        if let Err(e) = written {
            warn!(
                file,
                "cannot move the file out of the work folder (tried again at the next start): {e}"
            );
            return;
        }
        info!(
            file,
            outcome = reason.outcome(),
            reason = reason.as_str(),
            "file finished"
        );
        let labels = FolderFileLabels {
            route: spec.name.to_string(),
            outcome: reason.outcome(),
            reason: reason.as_str(),
        };
        self.route.metrics.folder_files.get_or_create(&labels).inc();
    }

    /// Counts a finished file among the route's flows: from the
    /// establishment it describes (its FINESS, when delivered) to the
    /// upstream, by how it ended.
    fn observe(&self, facility: &str, reason: Reason) {
        let spec = self.spec();
        let seen = Seen {
            route: spec.name.as_str(),
            direction: OUT,
            ends: FlowEnds {
                kind: "folder",
                tls_in: false,
                tls_out: spec.upstream.tls.is_some(),
            },
            application: "",
            source: Party(facility, ""),
            target: Party(&spec.upstream.origin, ""),
            message_type: MESSAGE_TYPE,
        };
        let observer = &self.route.observer;
        observer.record(&seen, reason.as_str(), SystemTime::now());
    }

    /// Moves a finished file from the work folder to `to`. A file an
    /// operator replayed (`guichet journal replay`) after it was finished
    /// moves from where it ended (`other`), its old report removed.
    fn move_out(&self, work: &OsStr, to: &Path, other: &Path, report: &OsStr) -> io::Result<()> {
        let target = to.join(work);
        for (from, earlier) in [(self.spec().work(), false), (other.to_path_buf(), true)] {
            let from = from.join(work);
            if from.symlink_metadata().is_ok() {
                files::rename_new(&from, &target)?;
                if earlier {
                    let _ = std::fs::remove_file(other.join(report));
                }
                return Ok(());
            }
        }
        if target.symlink_metadata().is_ok() {
            return Ok(()); // finished again where it was
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the file is no longer in the work folder",
        ))
    }

    fn report(&self, work: &OsStr, finished: Finished<'_>) -> Report {
        let work = work.to_string_lossy();
        let delivery = finished.record.map(|record| report::Delivery {
            upstream: self.spec().upstream.origin.to_string(),
            attempts: record.attempts,
            status: record.ack_code.as_deref().and_then(|c| c.parse().ok()),
            redelivered: record.redelivered,
            requests: finished
                .sent
                .map(|s| s.steps().iter().map(report::Request::of).collect())
                .unwrap_or_default(),
        });
        Report {
            file: dropped_name(&work).to_string(),
            stored_as: work.to_string(),
            route: self.spec().name.to_string(),
            outcome: finished.reason.outcome(),
            reason: finished.reason.as_str(),
            detail: finished.detail,
            taken_at: work.split('-').next().unwrap_or_default().to_string(),
            finished_at: now_rfc3339(),
            bytes: finished.bytes.or(finished.record.and_then(|r| r.body_len)),
            violations: finished.violations.to_vec(),
            delivery,
        }
    }
}

/// Now, as RFC 3339.
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// How many violations are errors.
fn errors(violations: &[Violation]) -> usize {
    violations
        .iter()
        .filter(|v| v.severity == Severity::Error)
        .count()
}

/// The file's name as dropped, from its work name.
fn dropped_name(work: &str) -> &str {
    work.splitn(3, '-').nth(2).unwrap_or(work)
}
