//! The step graph: explicit and implicit edges, an order, who is upstream of whom.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::model::{StepDef, StepKind};
use crate::ids::StepId;

pub fn effective_dependencies(steps: &[StepDef]) -> BTreeMap<StepId, BTreeSet<StepId>> {
    let mut deps: BTreeMap<StepId, BTreeSet<StepId>> =
        steps.iter().map(|s| (s.id.clone(), s.depends_on.iter().cloned().collect())).collect();
    for step in steps {
        if let StepKind::Condition(c) = &step.kind {
            for branch_step in c.then.iter().chain(&c.otherwise) {
                if let Some(d) = deps.get_mut(branch_step) {
                    d.insert(step.id.clone());
                }
            }
        }
    }
    deps
}

/// Validate one level of steps (the flow, or a `foreach` body). `outer` are the ids the level

pub fn topological_order(deps: &BTreeMap<StepId, BTreeSet<StepId>>) -> Result<Vec<StepId>, StepId> {
    let mut remaining: BTreeMap<&StepId, usize> = deps.iter().map(|(id, d)| (id, d.len())).collect();
    let mut dependents: HashMap<&StepId, Vec<&StepId>> = HashMap::new();
    for (id, ds) in deps {
        for d in ds {
            dependents.entry(d).or_default().push(id);
        }
    }
    let mut ready: Vec<&StepId> = remaining.iter().filter(|(_, n)| **n == 0).map(|(id, _)| *id).collect();
    let mut order = Vec::with_capacity(deps.len());
    while let Some(id) = ready.pop() {
        order.push(id.clone());
        for next in dependents.get(id).into_iter().flatten() {
            if let Some(n) = remaining.get_mut(next) {
                *n -= 1;
                if *n == 0 {
                    ready.push(next);
                }
            }
        }
    }
    if order.len() == deps.len() {
        Ok(order)
    } else {
        let stuck = remaining.iter().find(|(id, n)| **n > 0 && !order.contains(id)).map(|(id, _)| (*id).clone());
        Err(stuck.unwrap_or_else(|| deps.keys().next().cloned().expect("non-empty graph has a key")))
    }
}

/// For each step, every step it transitively depends on.
pub(super) fn upstream_sets(
    deps: &BTreeMap<StepId, BTreeSet<StepId>>,
    order: &[StepId],
) -> HashMap<StepId, BTreeSet<StepId>> {
    let mut up: HashMap<StepId, BTreeSet<StepId>> = HashMap::new();
    for id in order {
        let mut all = BTreeSet::new();
        for d in deps.get(id).into_iter().flatten() {
            all.insert(d.clone());
            all.extend(up.get(d).cloned().unwrap_or_default());
        }
        up.insert(id.clone(), all);
    }
    up
}
