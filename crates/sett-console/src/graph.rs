//! The provenance graph of a workflow as SVG, laid out here (no external `dot`): longest-path
//! layering (an artifact sits one column right of its furthest source), then one barycentre
//! pass ordering each column by where its sources sit. Every node carries `data-artifact-id`
//! and links to the artifact's page. A maud template: all text is escaped.

use std::collections::{HashMap, HashSet};

use sett_core::text::{excerpt, short};
use sett_core::{Artifact, ArtifactId, Claim, ClaimId};

use maud::{Markup, html};

const NODE_W: i64 = 184;
const NODE_H: i64 = 40;
const COL_GAP: i64 = 64;
const ROW_GAP: i64 = 14;
const MARGIN: i64 = 12;

/// Why an edge exists: a listed source, only the claim the artifact was produced under, or a
/// fork (`sett fork`: the branch's first artifact, from the artifact it was forked from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    Source,
    Claim,
    Fork,
}

/// A laid-out graph: each node's column and row, and the edges.
#[derive(Debug, Clone)]
pub struct Layout {
    pub pos: HashMap<ArtifactId, (usize, usize)>,
    pub edges: Vec<(ArtifactId, ArtifactId, EdgeKind)>,
    pub columns: usize,
    pub rows: usize,
}

/// Lays out `artifacts` (oldest first). Sources outside the set are ignored; an artifact with
/// no source inside the set hangs off its claim's artifact.
pub fn layout(artifacts: &[Artifact], claims: &[Claim]) -> Layout {
    let members: HashSet<ArtifactId> = artifacts.iter().map(|a| a.id).collect();
    let claim_art: HashMap<ClaimId, ArtifactId> = claims.iter().map(|c| (c.id, c.artifact_id)).collect();
    let mut edges = Vec::new();
    let mut parents: HashMap<ArtifactId, Vec<ArtifactId>> = HashMap::new();
    for a in artifacts {
        let mut ps: Vec<ArtifactId> = a.source_artifacts.iter().copied().filter(|s| members.contains(s)).collect();
        let kind = if ps.is_empty() {
            if let Some(p) = a.claim_id.and_then(|c| claim_art.get(&c)).filter(|p| **p != a.id && members.contains(p)) {
                ps.push(*p);
            }
            EdgeKind::Claim
        } else {
            EdgeKind::Source
        };
        for p in &ps {
            edges.push((*p, a.id, kind));
        }
        if let Some(f) = a.forked_from.filter(|f| members.contains(f)) {
            edges.push((f, a.id, EdgeKind::Fork));
        }
        parents.insert(a.id, ps);
    }
    // Longest-path layering in creation order: sources are older than what they produce.
    let mut layer: HashMap<ArtifactId, usize> = HashMap::new();
    for a in artifacts {
        let l = parents[&a.id].iter().filter_map(|p| layer.get(p)).map(|l| l + 1).max().unwrap_or(0);
        layer.insert(a.id, l);
    }
    let columns = layer.values().max().map_or(0, |m| m + 1);
    let mut cols: Vec<Vec<ArtifactId>> = vec![Vec::new(); columns];
    for a in artifacts {
        cols[layer[&a.id]].push(a.id);
    }
    let mut pos: HashMap<ArtifactId, (usize, usize)> = HashMap::new();
    for (c, col) in cols.iter_mut().enumerate() {
        if c > 0 {
            // Barycentre of the sources' rows; the stable sort keeps creation order for ties.
            let key = |id: &ArtifactId| -> f64 {
                let rows: Vec<usize> = parents[id].iter().filter_map(|p| pos.get(p)).map(|(_, r)| *r).collect();
                if rows.is_empty() { f64::MAX } else { rows.iter().sum::<usize>() as f64 / rows.len() as f64 }
            };
            let mut keyed: Vec<(f64, ArtifactId)> = col.iter().map(|id| (key(id), *id)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            *col = keyed.into_iter().map(|(_, id)| id).collect();
        }
        for (r, id) in col.iter().enumerate() {
            pos.insert(*id, (c, r));
        }
    }
    let rows = cols.iter().map(Vec::len).max().unwrap_or(0);
    Layout { pos, edges, columns, rows }
}

fn xy(col: usize, row: usize) -> (i64, i64) {
    (MARGIN + col as i64 * (NODE_W + COL_GAP), MARGIN + row as i64 * (NODE_H + ROW_GAP))
}

/// The SVG of a workflow's provenance graph. `open` marks questions still waiting for a human;
/// `href` gives each node's link.
pub fn svg(
    artifacts: &[Artifact],
    claims: &[Claim],
    open: &HashSet<ArtifactId>,
    href: impl Fn(&ArtifactId) -> String,
) -> Markup {
    let l = layout(artifacts, claims);
    let width = 2 * MARGIN + l.columns.max(1) as i64 * (NODE_W + COL_GAP) - COL_GAP;
    let height = 2 * MARGIN + l.rows.max(1) as i64 * (NODE_H + ROW_GAP) - ROW_GAP;
    let edges = l.edges.iter().filter_map(|(from, to, kind)| {
        let (&(fc, fr), &(tc, tr)) = (l.pos.get(from)?, l.pos.get(to)?);
        let (x1, y1) = xy(fc, fr);
        let (x2, y2) = xy(tc, tr);
        let (x1, y1, x2, y2) = (x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2);
        let mid = (x1 + x2) / 2;
        let class = match kind {
            EdgeKind::Claim => "edge claim",
            EdgeKind::Fork => "edge fork",
            EdgeKind::Source => "edge",
        };
        Some((class, format!("M{x1} {y1}C{mid} {y1} {mid} {y2} {x2} {y2}")))
    });
    let nodes = artifacts.iter().filter_map(|a| l.pos.get(&a.id).map(|&(c, r)| (a, xy(c, r))));
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="graph" id="graph" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img"
            aria-label={ "provenance graph of " (artifacts.len()) " artifacts" } {
            g class="edges" {
                @for (class, d) in edges { path class=(class) d=(d) {} }
            }
            @for (a, (x, y)) in nodes {
                @let id = a.id.to_string();
                a href=(href(&a.id)) class={ "node st-" (a.structural_type) @if open.contains(&a.id) { " open" } } data-artifact-id=(id) {
                    title {
                        (a.artifact_type) " " (a.structural_type) " v" (a.version) " by " (a.produced_by_role) "\n"
                        (excerpt(&a.payload, 200))
                    }
                    rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="6" {}
                    text x=(x + 8) y=(y + 16) class="t1" { (clip(&a.artifact_type, 22)) }
                    text x=(x + 8) y=(y + 32) class="t2" { (a.structural_type) " · " (short(&id)) " · v" (a.version) }
                }
            }
        }
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sett_core::StructuralType;
    use sett_store::new_artifact_id;

    #[test]
    fn layers_follow_sources_and_every_node_is_drawn() {
        let g = Artifact::new_root(
            new_artifact_id(),
            StructuralType::Standard,
            "Goal",
            "<script>alert(1)</script>",
            "user",
            1,
        );
        let mut d =
            Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Draft\"><img src=x>", "x", "Writer", 2);
        d.source_artifacts = vec![g.id];
        let mut r = Artifact::new_root(new_artifact_id(), StructuralType::Review, "Review", "ok", "Reviewer", 3);
        r.source_artifacts = vec![d.id];
        let mut t = Artifact::new_root(new_artifact_id(), StructuralType::Terminal, "Done", "x", "Writer", 4);
        t.source_artifacts = vec![g.id, r.id];
        let all = [g.clone(), d.clone(), r.clone(), t.clone()];
        let l = layout(&all, &[]);
        assert_eq!(l.pos[&g.id].0, 0);
        assert_eq!(l.pos[&d.id].0, 1);
        assert_eq!(l.pos[&r.id].0, 2);
        assert_eq!(l.pos[&t.id].0, 3, "longest path: after the review, not beside the draft");
        assert_eq!(l.edges.len(), 4);
        let svg = svg(&all, &[], &HashSet::new(), |id| format!("/a/{id}")).into_string();
        for a in &all {
            assert!(svg.contains(&format!(r#"data-artifact-id="{}""#, a.id)));
        }
        assert!(!svg.contains("<script>") && !svg.contains("<img"), "agent text is escaped: {svg}");
    }
}
