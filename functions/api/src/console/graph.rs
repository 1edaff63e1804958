//! Pictures drawn on the server as SVG: a flow's steps as a graph (columns by depth in the
//! DAG, each step coloured by its status), an execution's timeline, and line charts.
//! Colours come from the stylesheet (`st-*` classes), so dark mode applies.

use std::collections::HashMap;

use maud::{Markup, html};

/// One step of the graph.
pub struct Node<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub depends_on: Vec<&'a str>,
    /// `succeeded`, `failed`… or `pending` when it has not run.
    pub status: &'a str,
}

const NODE_W: i64 = 160;
const NODE_H: i64 = 46;
const COL_GAP: i64 = 56;
const ROW_GAP: i64 = 20;
const PAD: i64 = 16;

/// Each node's column: 0 without dependencies, else one more than its deepest dependency.
/// Unknown dependencies are ignored; a cycle (which validation refuses) cannot loop: depths
/// are settled in at most as many passes as there are nodes.
pub fn depths(nodes: &[Node<'_>]) -> Vec<usize> {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let mut depth = vec![0usize; nodes.len()];
    for _ in 0..nodes.len() {
        let mut changed = false;
        for (i, node) in nodes.iter().enumerate() {
            let want = node
                .depends_on
                .iter()
                .filter_map(|d| index.get(d))
                .map(|&j| depth[j] + 1)
                .max()
                .unwrap_or(0)
                .min(nodes.len());
            if want != depth[i] {
                depth[i] = want;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { s.chars().take(max - 1).collect::<String>() + "…" }
}

/// The flow's steps as a graph; each node links to `#step-{id}`.
pub fn dag(nodes: &[Node<'_>]) -> Markup {
    let depth = depths(nodes);
    let mut rows_in: HashMap<usize, i64> = HashMap::new();
    let mut at: Vec<(i64, i64)> = Vec::with_capacity(nodes.len());
    for d in &depth {
        let row = rows_in.entry(*d).or_insert(0);
        at.push((PAD + *d as i64 * (NODE_W + COL_GAP), PAD + *row * (NODE_H + ROW_GAP)));
        *row += 1;
    }
    let cols = depth.iter().max().map(|d| d + 1).unwrap_or(1) as i64;
    let rows = rows_in.values().max().copied().unwrap_or(1);
    let width = 2 * PAD + cols * NODE_W + (cols - 1) * COL_GAP;
    let height = 2 * PAD + rows * NODE_H + (rows - 1).max(0) * ROW_GAP;
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    html! {
        svg.graph xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (width) " " (height)}
            width=(width) height=(height) role="group" aria-label="The flow's steps and what each depends on" {
            @for (i, node) in nodes.iter().enumerate() {
                @for dep in &node.depends_on {
                    @if let Some(&j) = index.get(dep) {
                        @let (x1, y1) = (at[j].0 + NODE_W, at[j].1 + NODE_H / 2);
                        @let (x2, y2) = (at[i].0, at[i].1 + NODE_H / 2);
                        path.edge d={"M" (x1) " " (y1) " C" (x1 + COL_GAP / 2) " " (y1) " " (x2 - COL_GAP / 2) " " (y2) " " (x2) " " (y2)} {}
                    }
                }
            }
            @for (i, node) in nodes.iter().enumerate() {
                a class={"node st-" (node.status)} href={"#step-" (node.id)} data-step=(node.id) data-status=(node.status) {
                    title { (node.id) ": " (node.status) }
                    rect x=(at[i].0) y=(at[i].1) width=(NODE_W) height=(NODE_H) rx="7" {}
                    text x=(at[i].0 + 10) y=(at[i].1 + 19) { (short(node.id, 20)) }
                    text.axis x=(at[i].0 + 10) y=(at[i].1 + 36) { (node.kind) " · " (node.status) }
                }
            }
        }
    }
}

/// One bar of the timeline: a step's attempt from start to finish.
pub struct Span<'a> {
    pub label: &'a str,
    pub status: &'a str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub attempt: u32,
}

const LABEL_W: i64 = 150;
const BAR_AREA: i64 = 560;
const BAR_H: i64 = 18;

/// The execution's steps on a time axis from `from_ms` to `to_ms`.
pub fn timeline(spans: &[Span<'_>], from_ms: i64, to_ms: i64) -> Markup {
    let total = (to_ms - from_ms).max(1);
    let x = |t: i64| LABEL_W + ((t - from_ms).clamp(0, total) as f64 / total as f64 * BAR_AREA as f64) as i64;
    let width = LABEL_W + BAR_AREA + PAD;
    let height = PAD * 2 + spans.len() as i64 * (BAR_H + 8) + 14;
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (width) " " (height)}
            width=(width) height=(height) role="img" aria-label="When each step ran and for how long" {
            @for (i, span) in spans.iter().enumerate() {
                @let y = PAD + i as i64 * (BAR_H + 8);
                text x="6" y=(y + 13) { (short(span.label, 18)) }
                @let (x1, x2) = (x(span.start_ms), x(span.end_ms));
                rect class={"bar st-" (span.status)} x=(x1) y=(y) width=((x2 - x1).max(2)) height=(BAR_H) rx="3" {
                    title { (span.label) ": " (span.status) ", attempt " (span.attempt) ", " (super::view::duration(span.end_ms - span.start_ms)) }
                }
            }
            text.axis x=(LABEL_W) y=(height - 6) { "0" }
            text.axis x=(LABEL_W + BAR_AREA - 60) y=(height - 6) { (super::view::duration(total)) }
        }
    }
}

/// A series of a line chart.
pub struct Series<'a> {
    pub label: &'a str,
    /// `line-ok`, `line-bad`, `line-dur`.
    pub class: &'a str,
    pub points: Vec<(i64, f64)>,
}

const CHART_W: i64 = 640;
const CHART_H: i64 = 180;

/// Series over a shared time axis `[from_ms, to_ms]`, scaled to their largest value.
pub fn chart(title: &str, series: &[Series<'_>], from_ms: i64, to_ms: i64) -> Markup {
    let span = (to_ms - from_ms).max(1) as f64;
    let top = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0_f64, f64::max).max(1.0);
    let (left, bottom) = (44_i64, CHART_H - 22);
    let plot_w = (CHART_W - left - PAD) as f64;
    let plot_h = (bottom - PAD) as f64;
    let xy =
        |(t, v): (i64, f64)| (left as f64 + (t - from_ms) as f64 / span * plot_w, bottom as f64 - v / top * plot_h);
    let point = |p: (i64, f64)| {
        let (x, y) = xy(p);
        format!("{x:.1},{y:.1}")
    };
    html! {
        figure {
            figcaption { (title) " "
                span.legend { @for s in series { span class={"k-" (s.class.trim_start_matches("line-"))} { "— " (s.label) } } }
            }
            svg.chart xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (CHART_W) " " (CHART_H)}
                width=(CHART_W) height=(CHART_H) role="img" aria-label=(title) {
                line.grid x1=(left) y1=(bottom) x2=(CHART_W - PAD) y2=(bottom) {}
                line.grid x1=(left) y1=(PAD) x2=(left) y2=(bottom) {}
                text.axis x="4" y=(PAD + 4) { (format_value(top)) }
                text.axis x="4" y=(bottom) { "0" }
                text.axis x=(left) y=(CHART_H - 6) { (super::view::time(from_ms)) }
                text.axis x=(CHART_W - 170) y=(CHART_H - 6) { (super::view::time(to_ms)) }
                @for s in series {
                    @if let [only] = s.points.as_slice() {
                        @let (cx, cy) = xy(*only);
                        circle class=(s.class) cx=(format!("{cx:.1}")) cy=(format!("{cy:.1}")) r="3" {}
                    } @else {
                        polyline class=(s.class) points=(s.points.iter().map(|p| point(*p)).collect::<Vec<_>>().join(" ")) {}
                    }
                }
            }
        }
    }
}

fn format_value(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node<'a>(id: &'a str, deps: &[&'a str]) -> Node<'a> {
        Node { id, kind: "transform", depends_on: deps.to_vec(), status: "pending" }
    }

    #[test]
    fn steps_are_placed_after_what_they_depend_on() {
        let nodes = [node("a", &[]), node("b", &["a"]), node("c", &["a"]), node("d", &["b", "c"]), node("e", &[])];
        assert_eq!(depths(&nodes), vec![0, 1, 1, 2, 0]);
        let svg = dag(&nodes).into_string();
        assert_eq!(svg.matches("<path class=\"edge\"").count(), 4);
        assert!(svg.contains("href=\"#step-d\""));
    }

    #[test]
    fn a_cycle_or_an_unknown_dependency_does_not_hang() {
        let nodes = [node("a", &["b"]), node("b", &["a"]), node("c", &["nowhere"])];
        let depth = depths(&nodes);
        assert!(depth.iter().all(|d| *d <= nodes.len()));
        assert_eq!(depth[2], 0);
        assert!(dag(&nodes).into_string().contains("#step-c"));
    }

    #[test]
    fn names_are_escaped_in_the_picture() {
        let nodes = [Node { id: "<x>", kind: "http", depends_on: vec![], status: "failed" }];
        let svg = dag(&nodes).into_string();
        assert!(!svg.contains("<x>") && svg.contains("&lt;x&gt;"));
    }
}
