//! The page handlers: each reads what its page shows and renders it with [`crate::html`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use sett_core::{ArtifactId, InstanceName};
use sett_store::Store;

use crate::app::App;
use crate::auth::Role;
use crate::html::{self, PageCtx};
use crate::respond::{Reply, down, error, html_resp, respond};
use crate::{data, graph};

/// Questions (and workflows) per page.
pub(crate) const PAGE_SIZE: usize = 50;
/// Claims whose bids the timeline shows (the most recent ones).
const TIMELINE_BIDS: usize = 200;

type Q = Query<HashMap<String, String>>;

/// `GET /`: every instance with its health, components, claims and open questions.
pub(crate) async fn instances(State(app): State<Arc<App>>, Extension(ctx): Extension<PageCtx>) -> Reply {
    let got = app.statuses().await.map_err(down(false))?;
    let (names, reports) = &*got;
    let stores: Vec<Store> =
        names.iter().filter_map(|n| InstanceName::parse(n).ok()).map(|n| app.redis.instance(&n)).collect();
    let live = app.live(&stores).await;
    Ok(html_resp(StatusCode::OK, html::page("Instances", &ctx, &live, html::instances(reports, names))))
}

/// One page of the inbox.
struct Inbox {
    stores: Vec<Store>,
    page: html::InboxPage,
    answered: Vec<data::AnsweredQuestion>,
    errors: Vec<String>,
}

/// One page of open questions across the instances shown (or the one named by `?instance=`),
/// soonest deadline first, and the recently answered ones. Only the page's questions are read
/// in full: the order comes from the light [`data::open_refs`].
async fn inbox_of(app: &App, query: &HashMap<String, String>, ctx: &PageCtx) -> sett_store::Result<Inbox> {
    let role = ctx.role;
    let mut names = app.instance_names().await?;
    let only = query.get("instance").filter(|i| !i.is_empty()).cloned();
    if let Some(only) = &only {
        names.retain(|n| n.as_str() == only);
    }
    // `?mine=1`: only what is addressed to the signed-in user.
    let mine = query.get("mine").is_some_and(|m| m == "1");
    let stores: Vec<Store> = names.iter().map(|n| app.redis.instance(n)).collect();
    let got = futures::future::join_all(stores.iter().map(|s| async move {
        let (refs, answered) =
            tokio::try_join!(data::open_refs(s), data::recently_answered(s, data::RECENTLY_ANSWERED))?;
        let refs = if mine { data::addressed_to(s, refs, &ctx.user, &ctx.groups).await? } else { refs };
        Ok::<_, sett_store::StoreError>((refs, answered))
    }))
    .await;
    let (mut all, mut answered, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut short_ids = Vec::with_capacity(stores.len());
    for (n, (s, r)) in stores.iter().zip(got).enumerate() {
        match r {
            Ok((refs, a)) => {
                let ids: Vec<ArtifactId> = refs.iter().map(|r| r.id).collect();
                short_ids.push(sett_core::text::unique_prefixes(&ids, 8));
                all.extend(refs.into_iter().map(|r| (n, r)));
                answered.extend(a);
            }
            Err(e) => {
                short_ids.push(HashMap::new());
                errors.push(format!("instance {}: {e}", s.instance()));
            }
        }
    }
    all.sort_by_key(|(n, r)| (data::inbox_key(r), *n));
    let total = all.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    // `?q=ID` opens the page that has that question (links from notifications and timelines).
    let wanted = query.get("q").and_then(|q| all.iter().position(|(_, r)| r.id.to_string() == *q));
    let number = match wanted {
        Some(i) => i / PAGE_SIZE + 1,
        None => query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).clamp(1, pages),
    };
    let slice = &all[((number - 1) * PAGE_SIZE).min(total)..(number * PAGE_SIZE).min(total)];
    let loaded =
        futures::future::join_all(
            stores.iter().enumerate().map(|(n, s)| {
                let refs: Vec<_> = slice.iter().filter(|(m, _)| *m == n).map(|(_, r)| *r).collect();
                let short_ids = &short_ids[n];
                async move {
                    if refs.is_empty() { Ok(Vec::new()) } else { data::questions(s, &refs, short_ids, false).await }
                }
            }),
        )
        .await;
    let mut by_id: HashMap<(usize, String), data::Question> = HashMap::new();
    for (n, r) in loaded.into_iter().enumerate() {
        match r {
            Ok(qs) => by_id.extend(qs.into_iter().map(|q| ((n, q.id.clone()), q))),
            Err(e) => errors.push(format!("instance {}: {e}", stores[n].instance())),
        }
    }
    let questions = slice.iter().filter_map(|(n, r)| by_id.remove(&(*n, r.id.to_string()))).collect();
    answered.sort_by_key(|a| std::cmp::Reverse(a.record.answered_at_ms));
    answered.truncate(data::RECENTLY_ANSWERED);
    let page = html::InboxPage {
        questions,
        total,
        number,
        pages,
        per_page: PAGE_SIZE,
        instance: only,
        may_answer: role.may_answer(),
        mine,
    };
    Ok(Inbox { stores, page, answered, errors })
}

/// `GET /questions`: the inbox.
pub(crate) async fn inbox(State(app): State<Arc<App>>, Extension(ctx): Extension<PageCtx>, Query(query): Q) -> Reply {
    let inbox = inbox_of(&app, &query, &ctx).await.map_err(down(false))?;
    let live = app.live(&inbox.stores).await;
    let total = inbox.page.total;
    let title = if total == 0 { "Questions".to_owned() } else { format!("({total}) Questions") };
    Ok(html_resp(
        StatusCode::OK,
        html::page(&title, &ctx, &live, html::inbox(&inbox.page, &inbox.answered, &inbox.errors, ctx.now_ms)),
    ))
}

/// `GET /instances/{name}`: one page of an instance's workflows, newest goal first.
pub(crate) async fn workflows(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<PageCtx>,
    Path(name): Path<String>,
    Query(query): Q,
) -> Reply {
    let store = app.known(false, &name).await?;
    let live = app.live(std::slice::from_ref(&store)).await;
    let rows = app.workflow_rows(&store).await.map_err(down(false))?;
    let pages = rows.len().div_ceil(PAGE_SIZE).max(1);
    let number = query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).clamp(1, pages);
    let slice = &rows[((number - 1) * PAGE_SIZE).min(rows.len())..(number * PAGE_SIZE).min(rows.len())];
    let p = html::Paging { total: rows.len(), number, pages, per_page: PAGE_SIZE, base: format!("/instances/{name}?") };
    Ok(html_resp(StatusCode::OK, html::page(&name, &ctx, &live, html::workflows(&name, slice, &p, ctx.now_ms))))
}

/// `GET /instances/{name}/workflows/{goal}`: a workflow's graph, timeline, actions and artifacts
/// (read from the archive when it was archived out of Redis).
pub(crate) async fn workflow(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<PageCtx>,
    Path((name, goal)): Path<(String, String)>,
) -> Reply {
    let (store, goal) =
        app.known_artifact(false, &name, &goal, "a workflow is named by its goal's full artifact id").await?;
    let live = app.live(std::slice::from_ref(&store)).await;
    let (flows, open) = tokio::try_join!(data::workflows(&store), store.open_questions()).map_err(down(false))?;
    let Some(w) = flows.into_iter().find(|w| w.goal.id == goal) else {
        // Archived out of Redis: read from the archive, without the actions (nothing to steer).
        if let Some((w, segment)) = data::archived_workflow(&store, &goal).await.map_err(down(false))? {
            let svg =
                graph::svg(&w.artifacts, &w.claims, &HashSet::new(), |id| format!("/instances/{name}/artifacts/{id}"));
            let steer = html::Steering { role: Role::Viewer, cancelled: None, paused: None };
            let body = html::archived_workflow(&name, &segment, &w, svg, &steer, ctx.now_ms);
            let title = format!("Workflow {} (archived)", sett_core::text::short(&goal.to_string()));
            return Ok(html_resp(StatusCode::OK, html::page(&title, &ctx, &live, body)));
        }
        return Err(error(
            false,
            StatusCode::NOT_FOUND,
            &format!("no workflow with goal {goal} in '{name}'; see /instances/{name}"),
        ));
    };
    let open = html::open_set(&open);
    let svg = graph::svg(&w.artifacts, &w.claims, &open, |id| format!("/instances/{name}/artifacts/{id}"));
    let recent: Vec<_> = w.claims.iter().rev().take(TIMELINE_BIDS).map(|c| c.id).collect();
    let got = futures::future::try_join_all(recent.iter().map(|c| store.bids(c))).await.map_err(down(false))?;
    let bids: BTreeMap<_, _> = recent.into_iter().zip(got).collect();
    let cancelled = store.cancellation(&goal).await.map_err(down(false))?;
    let paused = store.pause_of(&sett_store::PauseScope::Workflow(goal)).await.map_err(down(false))?;
    let steer = html::Steering { role: ctx.role, cancelled, paused };
    let title = format!("Workflow {}", sett_core::text::short(&goal.to_string()));
    Ok(html_resp(
        StatusCode::OK,
        html::page(&title, &ctx, &live, html::workflow(&name, &w, svg, &bids, &steer, ctx.now_ms)),
    ))
}

/// `GET /instances/{name}/artifacts/{id}`: one artifact, with the answer form of an open question.
pub(crate) async fn artifact(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<PageCtx>,
    Path((name, id)): Path<(String, String)>,
) -> Reply {
    let (store, id) = app.known_artifact(false, &name, &id, "an artifact is named by its full id").await?;
    let live = app.live(std::slice::from_ref(&store)).await;
    Ok(match data::artifact(&store, &id).await.map_err(down(false))? {
        Some(v) => html_resp(
            StatusCode::OK,
            html::page(
                &format!("{} {}", v.artifact.artifact_type, sett_core::text::short(&id.to_string())),
                &ctx,
                &live,
                html::artifact(&name, &v, ctx.role),
            ),
        ),
        None => error(false, StatusCode::NOT_FOUND, &format!("no artifact {id} in '{name}'")),
    })
}

/// `GET /metrics`: the process's Prometheus metrics, when the console was given a recorder.
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> Response {
    match &app.metrics {
        Some(h) => {
            h.run_upkeep();
            respond(StatusCode::OK, "text/plain; version=0.0.4", h.render())
        }
        None => error(false, StatusCode::NOT_FOUND, "metrics are not enabled in this console"),
    }
}
