//! Planning: given a flow and the steps already checkpointed, which steps run next, which are
//! skipped, and whether the run is finished or waiting.
//!
//! Rules:
//! - A step is ready when every step it depends on (explicitly, or as the condition whose
//!   branch it is on) is final.
//! - A step is skipped when it is on the untaken branch of a condition, or when it has
//!   dependencies and all of them were skipped. A step that depends on both a skipped and a
//!   completed step runs (a join after an if/else), seeing `null` for the skipped output.
//! - A step depending on a failed step never runs; the execution fails once nothing else can
//!   make progress.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::domain::execution::{StepRecord, StepStatus};
use crate::domain::flow::{StepDef, StepKind, effective_dependencies};
use crate::domain::ids::StepId;

/// What to do next.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub run: Vec<StepId>,
    pub skip: Vec<StepId>,
    /// Earliest time a waiting step (retry, delay) is due, epoch ms.
    pub wake_at: Option<i64>,
    /// Steps that can never run because something upstream failed.
    pub blocked: Vec<StepId>,
}

impl Plan {
    pub fn is_idle(&self) -> bool {
        self.run.is_empty() && self.skip.is_empty()
    }
}

/// Each step's position in the definition (a `foreach` body right after its step), for
/// presenting steps in the order the author wrote them.
pub fn definition_order(steps: &[StepDef]) -> HashMap<StepId, usize> {
    let mut order = HashMap::new();
    fn walk(steps: &[StepDef], order: &mut HashMap<StepId, usize>) {
        for step in steps {
            let next = order.len();
            order.insert(step.id.clone(), next);
            if let Some(body) = step.foreach_body() {
                walk(&body, order);
            }
        }
    }
    walk(steps, &mut order);
    order
}

/// The branch a condition step took, from its output.
pub fn condition_result(record: &StepRecord) -> Option<bool> {
    record.output.as_ref().and_then(|o| o.get("result")).and_then(Value::as_bool)
}

/// Plan one level of steps against their checkpoints.
pub fn plan(steps: &[StepDef], records: &HashMap<StepId, StepRecord>, now_ms: i64) -> Plan {
    let deps = effective_dependencies(steps);
    // Steps on a branch, and which branch: (condition id, needs `then`).
    let mut branch_of: BTreeMap<&StepId, Vec<(&StepId, bool)>> = BTreeMap::new();
    for step in steps {
        if let StepKind::Condition(c) = &step.kind {
            for id in &c.then {
                branch_of.entry(id).or_default().push((&step.id, true));
            }
            for id in &c.otherwise {
                branch_of.entry(id).or_default().push((&step.id, false));
            }
        }
    }
    let status = |id: &StepId| records.get(id).map(|r| r.status);
    let mut out = Plan::default();
    for step in steps {
        let current = records.get(&step.id);
        if current.is_some_and(|r| r.status.is_final()) {
            continue;
        }
        if let Some(r) = current {
            if matches!(r.status, StepStatus::Retrying | StepStatus::Waiting) {
                match r.resume_at {
                    Some(at) if at > now_ms => {
                        out.wake_at = Some(out.wake_at.map_or(at, |w: i64| w.min(at)));
                        continue;
                    }
                    _ => {
                        out.run.push(step.id.clone());
                        continue;
                    }
                }
            }
        }
        let my_deps: &BTreeSet<StepId> = deps.get(&step.id).expect("every step has a deps entry");
        if !my_deps.iter().all(|d| status(d).is_some_and(StepStatus::is_final)) {
            continue;
        }
        if my_deps.iter().any(|d| matches!(status(d), Some(StepStatus::Failed | StepStatus::Cancelled))) {
            out.blocked.push(step.id.clone());
            continue;
        }
        let untaken =
            branch_of.get(&step.id).into_iter().flatten().any(|(cond, wants_then)| match records.get(*cond) {
                Some(r) if r.status == StepStatus::Skipped => true,
                Some(r) => condition_result(r) != Some(*wants_then),
                None => false,
            });
        let all_parents_skipped = !my_deps.is_empty() && my_deps.iter().all(|d| status(d) == Some(StepStatus::Skipped));
        if untaken || all_parents_skipped {
            out.skip.push(step.id.clone());
        } else {
            out.run.push(step.id.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::flow::FlowDefinition;

    fn steps(v: Value) -> Vec<StepDef> {
        let flow = json!({"name": "t", "trigger": {"type": "manual"}, "steps": v});
        FlowDefinition::parse(&flow, crate::domain::connector::Catalog::builtin()).unwrap().steps
    }

    fn done(id: &str, status: StepStatus, output: Value) -> (StepId, StepRecord) {
        let id = StepId::parse(id).unwrap();
        (
            id.clone(),
            StepRecord {
                id,
                kind: "transform".into(),
                status,
                attempt: 1,
                started_at: 0,
                finished_at: 0,
                duration_ms: 0,
                input: None,
                output: Some(output),
                output_spilled: false,
                error: None,
                resume_at: None,
            },
        )
    }

    fn ids(v: &[StepId]) -> Vec<&str> {
        v.iter().map(StepId::as_str).collect()
    }

    #[test]
    fn diamond_waits_for_both_parents() {
        let s = steps(json!([
            {"id": "a", "kind": "transform", "expr": "1"},
            {"id": "b", "kind": "transform", "expr": "2", "depends_on": ["a"]},
            {"id": "c", "kind": "transform", "expr": "3", "depends_on": ["a"]},
            {"id": "d", "kind": "transform", "expr": "4", "depends_on": ["b", "c"]}
        ]));
        let mut records = HashMap::new();
        assert_eq!(ids(&plan(&s, &records, 0).run), vec!["a"]);
        records.extend([done("a", StepStatus::Succeeded, json!(1))]);
        assert_eq!(ids(&plan(&s, &records, 0).run), vec!["b", "c"]);
        records.extend([done("b", StepStatus::Succeeded, json!(2))]);
        assert_eq!(ids(&plan(&s, &records, 0).run), vec!["c"], "d waits for c");
        records.extend([done("c", StepStatus::Succeeded, json!(3))]);
        assert_eq!(ids(&plan(&s, &records, 0).run), vec!["d"]);
    }

    #[test]
    fn untaken_branches_skip_and_skipping_propagates_but_joins_run() {
        let s = steps(json!([
            {"id": "cond", "kind": "condition", "expr": "true", "then": ["yes"], "else": ["no"]},
            {"id": "yes", "kind": "transform", "expr": "1"},
            {"id": "no", "kind": "transform", "expr": "2"},
            {"id": "after_no", "kind": "transform", "expr": "3", "depends_on": ["no"]},
            {"id": "join", "kind": "transform", "expr": "4", "depends_on": ["yes", "no"]}
        ]));
        let mut records: HashMap<_, _> = [done("cond", StepStatus::Succeeded, json!({"result": true}))].into();
        let p = plan(&s, &records, 0);
        assert_eq!(ids(&p.run), vec!["yes"]);
        assert_eq!(ids(&p.skip), vec!["no"]);
        records.extend([done("yes", StepStatus::Succeeded, json!(1)), done("no", StepStatus::Skipped, Value::Null)]);
        let p = plan(&s, &records, 0);
        assert_eq!(ids(&p.skip), vec!["after_no"]);
        assert_eq!(ids(&p.run), vec!["join"]);
    }

    #[test]
    fn failures_block_dependents_and_retries_wait() {
        let s = steps(json!([
            {"id": "a", "kind": "transform", "expr": "1"},
            {"id": "b", "kind": "transform", "expr": "2", "depends_on": ["a"]}
        ]));
        let mut records: HashMap<_, _> = [done("a", StepStatus::Failed, Value::Null)].into();
        assert_eq!(ids(&plan(&s, &records, 0).blocked), vec!["b"]);
        let (id, mut retrying) = done("a", StepStatus::Retrying, Value::Null);
        retrying.resume_at = Some(5_000);
        records.insert(id, retrying);
        let p = plan(&s, &records, 1_000);
        assert!(p.run.is_empty());
        assert_eq!(p.wake_at, Some(5_000));
        assert_eq!(ids(&plan(&s, &records, 5_000).run), vec!["a"]);
    }
}
