//! `/map`: the map of the information system, live, from `[map]`'s data
//! folder and the flows the journal observed.
//!
//! The page is rendered by a [`MapSite`] the binary hands over: the
//! atlas crate that reads the data folder also reads spreadsheets
//! (calamine, csv), which the gateway and its fuzz targets do without.
//!
//! Rendering reads a folder and builds a page of a few hundred
//! kilobytes: it happens on a blocking thread, one at a time, and only
//! when the last one is older than [`REFRESH`] and something changed
//! (the folder's files, the mapping, the journal's flows). Every other
//! request gets the page in cache. A page that cannot be rendered any
//! more is answered 503 with the reason, never replaced by the last good
//! one as if it were current.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guichet_journal::{FlowTotal, Journal};
use hyper::body::Bytes;
use tracing::{info, warn};

use crate::metrics::{MapRenderLabels, Metrics};

/// How long a rendered page is served before the sources are looked at
/// again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// A journal read longer than this fails the rendering.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Renders the map's page. Both methods block (they read files): the
/// admin server calls them on a blocking thread.
pub trait MapSite: Send + Sync + 'static {
    /// What identifies the sources' content without reading it (names,
    /// sizes and modification times of the data folder's files and of
    /// the mapping file): the page is rendered again when it changes.
    fn sources(&self) -> u64;

    /// The whole page from the sources and the journal's observed
    /// `flows`, or why it cannot be rendered: the file and what is wrong
    /// with it, never its content.
    fn render(&self, flows: Vec<FlowTotal>) -> Result<String, String>;
}

/// What a rendering was made from: when it is the same, so is the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    sources: u64,
    /// Aggregates, messages and the latest `last_seen`; `None` when the
    /// journal could not be read.
    flows: Option<(usize, u64, i64)>,
}

/// One rendering: the page, or why there is none.
struct Rendered {
    page: Result<Bytes, String>,
    stamp: Stamp,
    /// The `outcome` label of `guichet_map_renders_total`.
    outcome: &'static str,
}

/// The live map of one admin listener.
pub(super) struct LiveMap {
    site: Arc<dyn MapSite>,
    journal: Option<Journal>,
    /// The last rendering and when its sources were last looked at.
    current: Mutex<Option<(Arc<Rendered>, Instant)>>,
    /// Held by the one request that renders.
    rendering: tokio::sync::Mutex<()>,
}

/// What `/map` answers.
pub(super) enum MapAnswer {
    Page(Bytes),
    Unavailable(String),
}

impl LiveMap {
    pub(super) fn new(site: Arc<dyn MapSite>, journal: Option<Journal>) -> LiveMap {
        LiveMap {
            site,
            journal,
            current: Mutex::new(None),
            rendering: tokio::sync::Mutex::new(()),
        }
    }

    /// The page as of at most [`REFRESH`] ago, rendered again first when
    /// it is older and its sources changed. While one request renders,
    /// the others get the page in cache (the first ones wait for it).
    pub(super) async fn answer(&self, metrics: &Metrics) -> MapAnswer {
        if let Some(fresh) = self.fresh() {
            return fresh.answer();
        }
        let _rendering = match self.rendering.try_lock() {
            Ok(guard) => guard,
            Err(_) => match self.latest() {
                Some(cached) => return cached.answer(),
                None => self.rendering.lock().await,
            },
        };
        // Another request may have rendered while this one waited.
        if let Some(fresh) = self.fresh() {
            return fresh.answer();
        }
        self.refresh(metrics).await.answer()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Arc<Rendered>, Instant)>> {
        match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn latest(&self) -> Option<Arc<Rendered>> {
        self.lock().as_ref().map(|(r, _)| r.clone())
    }

    fn fresh(&self) -> Option<Arc<Rendered>> {
        self.lock()
            .as_ref()
            .filter(|(_, checked)| checked.elapsed() < REFRESH)
            .map(|(r, _)| r.clone())
    }

    /// Looks at the sources and renders the page if they changed.
    async fn refresh(&self, metrics: &Metrics) -> Arc<Rendered> {
        let flows = self.flows().await;
        let previous = self.latest();
        let site = self.site.clone();
        let last = previous.clone();
        let done = tokio::task::spawn_blocking(move || render(&*site, flows, last)).await;
        let rendered = match done {
            Ok(Some(rendered)) => Arc::new(rendered),
            Ok(None) => previous
                .clone()
                .unwrap_or_else(|| Arc::new(failed("the page could not be rendered".into()))),
            Err(e) => Arc::new(failed(format!("the page could not be rendered: {e}"))),
        };
        if !previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, &rendered)) {
            counted(metrics, &rendered);
            logged(previous.as_deref(), &rendered);
        }
        *self.lock() = Some((rendered.clone(), Instant::now()));
        rendered
    }

    /// The journal's observed flows (none without a journal), or why
    /// they cannot be read.
    async fn flows(&self) -> Result<Vec<FlowTotal>, String> {
        let Some(journal) = &self.journal else {
            return Ok(Vec::new());
        };
        match tokio::time::timeout(JOURNAL_TIMEOUT, journal.flows()).await {
            Ok(Ok(flows)) => Ok(flows),
            Ok(Err(e)) => Err(format!("the journal's observed flows cannot be read: {e}")),
            Err(_) => Err(format!(
                "the journal's observed flows were not read within {JOURNAL_TIMEOUT:?}"
            )),
        }
    }
}

impl Rendered {
    fn answer(&self) -> MapAnswer {
        match &self.page {
            Ok(page) => MapAnswer::Page(page.clone()),
            Err(why) => MapAnswer::Unavailable(why.clone()),
        }
    }
}

/// A new rendering, or `None` when the sources are those of `last`.
fn render(
    site: &dyn MapSite,
    flows: Result<Vec<FlowTotal>, String>,
    last: Option<Arc<Rendered>>,
) -> Option<Rendered> {
    let stamp = Stamp {
        sources: site.sources(),
        flows: flows.as_ref().ok().map(|f| flows_stamp(f)),
    };
    if last.is_some_and(|l| l.stamp == stamp) {
        return None;
    }
    let (page, outcome) = match flows {
        Err(why) => (Err(why), "journal_error"),
        Ok(flows) => match site.render(flows) {
            Ok(page) => (Ok(Bytes::from(page)), "ok"),
            Err(why) => (Err(why), "data_error"),
        },
    };
    Some(Rendered {
        page,
        stamp,
        outcome,
    })
}

/// A rendering that did not end (its thread failed).
fn failed(why: String) -> Rendered {
    Rendered {
        page: Err(why),
        stamp: Stamp {
            sources: 0,
            flows: None,
        },
        outcome: "data_error",
    }
}

/// What changes when the gateway adds observed flows to the journal.
fn flows_stamp(flows: &[FlowTotal]) -> (usize, u64, i64) {
    let messages = flows.iter().map(|f| f.count).sum();
    let latest = flows.iter().map(|f| f.last_ms).max().unwrap_or(0);
    (flows.len(), messages, latest)
}

fn counted(metrics: &Metrics, rendered: &Rendered) {
    let outcome = rendered.outcome;
    metrics
        .map_renders
        .get_or_create(&MapRenderLabels { outcome })
        .inc();
}

/// A warning when the reason the page cannot be rendered changes (not
/// at every request), a line when it can be again.
fn logged(previous: Option<&Rendered>, now: &Rendered) {
    let before = previous.and_then(|p| p.page.as_ref().err());
    match (&now.page, before) {
        (Err(why), Some(was)) if why == was => {}
        (Err(why), _) => {
            warn!(reason = %why, "/map cannot be rendered; it answers 503 until fixed")
        }
        (Ok(_), Some(_)) => info!("/map rendered again"),
        (Ok(_), None) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A site whose sources and page the test sets, counting renderings.
    #[derive(Default)]
    struct Site {
        sources: AtomicU64,
        broken: Mutex<Option<String>>,
        renders: AtomicU64,
    }

    impl MapSite for Arc<Site> {
        fn sources(&self) -> u64 {
            self.sources.load(Ordering::SeqCst)
        }

        fn render(&self, flows: Vec<FlowTotal>) -> Result<String, String> {
            let n = self.renders.fetch_add(1, Ordering::SeqCst) + 1;
            match self.broken.lock().unwrap().clone() {
                Some(why) => Err(why),
                None => Ok(format!("page {n}, {} flows", flows.len())),
            }
        }
    }

    fn text(answer: MapAnswer) -> Result<String, String> {
        match answer {
            MapAnswer::Page(p) => Ok(String::from_utf8_lossy(&p).into_owned()),
            MapAnswer::Unavailable(why) => Err(why),
        }
    }

    fn renders(metrics: &Metrics, outcome: &'static str) -> u64 {
        metrics
            .map_renders
            .get_or_create(&MapRenderLabels { outcome })
            .get()
    }

    /// Ages the cached page past [`REFRESH`].
    fn age(map: &LiveMap) {
        if let Some((_, checked)) = map.lock().as_mut() {
            *checked -= REFRESH;
        }
    }

    #[tokio::test]
    async fn renders_again_only_when_old_and_changed_and_says_why_it_cannot() {
        let site = Arc::new(Site::default());
        let map = LiveMap::new(Arc::new(site.clone()), None);
        let metrics = Metrics::default();
        assert_eq!(
            text(map.answer(&metrics).await),
            Ok("page 1, 0 flows".into())
        );
        // Changed but fresh: the cache.
        site.sources.store(1, Ordering::SeqCst);
        assert_eq!(
            text(map.answer(&metrics).await),
            Ok("page 1, 0 flows".into())
        );
        // Old but unchanged: the cache, not rendered again.
        site.sources.store(0, Ordering::SeqCst);
        age(&map);
        assert_eq!(
            text(map.answer(&metrics).await),
            Ok("page 1, 0 flows".into())
        );
        assert_eq!(site.renders.load(Ordering::SeqCst), 1);
        // Old and changed: rendered again.
        site.sources.store(2, Ordering::SeqCst);
        age(&map);
        assert_eq!(
            text(map.answer(&metrics).await),
            Ok("page 2, 0 flows".into())
        );

        *site.broken.lock().unwrap() = Some("a.json:1:1: not valid JSON".into());
        site.sources.store(3, Ordering::SeqCst);
        age(&map);
        assert_eq!(
            text(map.answer(&metrics).await),
            Err("a.json:1:1: not valid JSON".into()),
            "the error, not the last good page"
        );
        *site.broken.lock().unwrap() = None;
        site.sources.store(4, Ordering::SeqCst);
        age(&map);
        assert_eq!(
            text(map.answer(&metrics).await),
            Ok("page 4, 0 flows".into())
        );
        assert_eq!(
            (renders(&metrics, "ok"), renders(&metrics, "data_error")),
            (3, 1)
        );
    }

    #[tokio::test]
    async fn one_rendering_at_a_time_the_others_get_the_cache() {
        let site = Arc::new(Site::default());
        let map = Arc::new(LiveMap::new(Arc::new(site.clone()), None));
        let metrics = Arc::new(Metrics::default());
        let first: Vec<_> = (0..8)
            .map(|_| {
                let (map, metrics) = (map.clone(), metrics.clone());
                tokio::spawn(async move { text(map.answer(&metrics).await) })
            })
            .collect();
        for answer in first {
            assert_eq!(answer.await.unwrap(), Ok("page 1, 0 flows".into()));
        }
        assert_eq!(site.renders.load(Ordering::SeqCst), 1);
        site.sources.store(1, Ordering::SeqCst);
        age(&map);
        let _rendering = map.rendering.lock().await;
        assert_eq!(
            text(map.answer(&metrics).await),
            Ok("page 1, 0 flows".into()),
            "while another request renders"
        );
    }
}
