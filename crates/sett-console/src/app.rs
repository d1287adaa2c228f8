//! The state every request shares: the Redis, the users and sessions, the live-event hubs, and
//! the short-lived caches of status reports and workflow rows that browsers refreshing on the
//! same event share.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use sett_core::{ArtifactId, InstanceName};
use sett_store::{Redis, Store, now_ms};
use tokio_util::sync::CancellationToken;

use crate::auth::{Sessions, Users};
use crate::live::Hubs;
use crate::respond::{error, store_error};
use crate::{Config, data, html};

/// How long a component's `/healthz` may take on the instances page.
const PROBE_TIMEOUT: Duration = Duration::from_millis(700);
/// A claim untouched this long counts as stuck (as `sett status` does).
const STUCK_AFTER: Duration = Duration::from_secs(600);
/// How long cached status reports are used at most, even when no event arrived.
const STATUS_FOR: Duration = Duration::from_secs(2);
/// How long cached workflow rows are used at most, even when no event arrived.
const ROWS_FOR: Duration = Duration::from_secs(5);

/// The instances' status reports, by name.
pub(crate) type Statuses = (Vec<String>, Vec<Result<sett_ops::status::StatusReport, String>>);

type WorkflowRows = (String, Instant, Arc<Vec<data::WorkflowRow>>);

/// State shared by every connection.
pub(crate) struct App {
    pub redis: Redis,
    pub instances: Option<Vec<InstanceName>>,
    pub users: Users,
    pub sessions: Sessions,
    pub hubs: Hubs,
    pub shutdown: CancellationToken,
    /// The last status reports, with the stream heads they were read at.
    status: std::sync::Mutex<Option<(String, Instant, Arc<Statuses>)>>,
    /// Workflow rows per instance, with the stream head they were read at.
    rows: std::sync::Mutex<HashMap<String, WorkflowRows>>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl App {
    pub(crate) fn new(redis: Redis, config: Config, shutdown: CancellationToken) -> Self {
        Self {
            hubs: Hubs::new(redis.clone(), shutdown.clone()),
            redis,
            instances: config.instances,
            users: config.users,
            sessions: Sessions::new(config.session_lifetime, config.clock.clone()),
            shutdown,
            rows: Default::default(),
            status: Default::default(),
            metrics: config.metrics,
        }
    }

    /// The instances shown: those named at start, else every one registered.
    pub(crate) async fn instance_names(&self) -> sett_store::Result<Vec<InstanceName>> {
        match &self.instances {
            Some(list) => Ok(list.clone()),
            None => Ok(self.redis.instances().await?.into_keys().collect()),
        }
    }

    /// The store of instance `raw` when it is one this console shows.
    async fn store(&self, raw: &str) -> sett_store::Result<Option<Store>> {
        let Ok(name) = InstanceName::parse(raw) else { return Ok(None) };
        let known = match &self.instances {
            Some(list) => list.contains(&name),
            None => self.redis.instance_record(&name).await?.is_some(),
        };
        Ok(known.then(|| self.redis.instance(&name)))
    }

    /// The store of instance `name`, or the 404 (`api`: as JSON) saying where the instances are.
    pub(crate) async fn known(&self, api: bool, name: &str) -> Result<Store, Response> {
        match self.store(name).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(error(
                api,
                StatusCode::NOT_FOUND,
                &format!("no instance '{name}' here; the instances are listed at / (GET /api/v1/instances)"),
            )),
            Err(e) => Err(store_error(api, &e)),
        }
    }

    /// The store of instance `name` and the artifact id `raw` names: the 404 of [`App::known`],
    /// or a 400 (`api`: as JSON) saying `how` to name the artifact.
    pub(crate) async fn known_artifact(
        &self,
        api: bool,
        name: &str,
        raw: &str,
        how: &str,
    ) -> Result<(Store, ArtifactId), Response> {
        let store = self.known(api, name).await?;
        let id = ArtifactId::parse(raw).map_err(|_| error(api, StatusCode::BAD_REQUEST, how))?;
        Ok((store, id))
    }

    /// Where each instance's stream is now, for a page's live updates.
    pub(crate) async fn live(&self, stores: &[Store]) -> html::Live {
        let ids = futures::future::join_all(stores.iter().map(|s| s.last_event_id())).await;
        stores
            .iter()
            .zip(ids)
            .map(|(s, id)| (s.instance().to_string(), id.ok().flatten().unwrap_or_else(|| "0-0".into())))
            .collect()
    }

    /// The status of every instance shown (as `sett status`: it reads every claim). Kept while
    /// no instance's event stream has moved, for at most [`STATUS_FOR`] (component health
    /// changes without events), so browsers refreshing on the same event share one read.
    pub(crate) async fn statuses(&self) -> sett_store::Result<Arc<Statuses>> {
        let names = self.instance_names().await?;
        let stores: Vec<Store> = names.iter().map(|n| self.redis.instance(n)).collect();
        let heads = futures::future::try_join_all(stores.iter().map(|s| s.last_event_id())).await?;
        let key: String =
            names.iter().zip(&heads).map(|(n, h)| format!("{n}={} ", h.as_deref().unwrap_or(""))).collect();
        if let Some((k, at, cached)) = &*self.status.lock().expect("status lock")
            && *k == key
            && at.elapsed() < STATUS_FOR
        {
            return Ok(cached.clone());
        }
        let now = now_ms();
        let reports = futures::future::join_all(stores.iter().map(|store| async move {
            sett_ops::status::instance_status(store, now, STUCK_AFTER, PROBE_TIMEOUT).await.map_err(|e| e.to_string())
        }))
        .await;
        let got = Arc::new((names.iter().map(|n| n.to_string()).collect(), reports));
        *self.status.lock().expect("status lock") = Some((key, Instant::now(), got.clone()));
        Ok(got)
    }

    /// The workflow rows of an instance. Grouping needs every artifact and claim, so the rows
    /// are kept per instance and reused while the instance's event stream has not moved and for
    /// at most [`ROWS_FOR`] (artifacts and state changes append events; a claim write without
    /// one is picked up when the rows expire). The many browsers that refresh on the same event
    /// share one read instead of each reading the whole instance.
    pub(crate) async fn workflow_rows(&self, store: &Store) -> sett_store::Result<Arc<Vec<data::WorkflowRow>>> {
        let key = store.instance().to_string();
        let head = store.last_event_id().await?.unwrap_or_default();
        if let Some((h, at, rows)) = self.rows.lock().expect("rows lock").get(&key)
            && *h == head
            && at.elapsed() < ROWS_FOR
        {
            return Ok(rows.clone());
        }
        let rows: Arc<Vec<_>> = Arc::new(data::workflows(store).await?.iter().map(data::WorkflowRow::of).collect());
        self.rows.lock().expect("rows lock").insert(key, (head, Instant::now(), rows.clone()));
        Ok(rows)
    }
}
