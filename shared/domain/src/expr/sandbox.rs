//! Where jaq runs: a metered data type, the checking natives the rewrite (`guard`) calls, and
//! the limits they enforce (`range` and `fromjson` replace jaq's, which escape them).
//!
//! jaq looks up the term it evaluates next through its data type's `lut()`, at every step of
//! every recursion and loop. `Run::lut` is the meter: it spends one unit of fuel and checks
//! that the stack keeps its red zone. When either runs out it unwinds out of jaq with
//! `resume_unwind` (no panic hook, no message), to the one `catch_unwind` in `Sandbox::run`;
//! a program cannot catch it with `try`. Size checks in natives are ordinary jaq errors.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use jaq_core::box_iter::box_once;
use jaq_core::data::{DataT, HasLut};
use jaq_core::native::{Fun, bome, v};
use jaq_core::{Cv, Error, Exn, Lut, Native, ValR, ValXs};
use jaq_json::{Num, Val};
use jaq_std::ValT as _;

// The meter unwinds through jaq; with `panic = "abort"` that would end the process instead.
#[cfg(panic = "abort")]
compile_error!("the expression sandbox needs panic = \"unwind\" (see Cargo.toml)");

/// Evaluation steps one call may take (about 0.1 to 0.4 s of CPU).
pub const MAX_FUEL: u64 = 1_000_000;
/// Stack that must stay free below an evaluation step (native operations on values within
/// `MAX_VALUE_DEPTH` use less).
pub const RED_ZONE: usize = 1024 * 1024;
/// Stack a compilation or an evaluation starts with at least. Fuel bounds how deep a value
/// built at run time can nest (two steps per level), and dropping such a value recurses once
/// per level; this covers it with room to spare. Our runtimes give their threads more
/// (`crate::lambda::WORKER_STACK`); elsewhere a segment is allocated for the call.
pub const STACK_HEADROOM: usize = 64 * 1024 * 1024;
/// Largest value (counting shared parts as often as they appear) that may be serialized,
/// compared, hashed or walked with `..`.
pub const MAX_NODES: u64 = 1_000_000;
/// Deepest value that may be serialized, compared, hashed or walked.
pub const MAX_VALUE_DEPTH: usize = 128;
/// Largest string an expression may build, and most string bytes a serialized value may hold.
pub const MAX_STRING_BYTES: usize = 4 * 1024 * 1024;
/// Largest array or object `+` may build.
pub const MAX_COLLECTION_LEN: usize = 1_000_000;
/// Most element comparisons of an array difference (`l - r`).
pub const MAX_PAIRWISE: u64 = 100_000_000;

/// Why an evaluation was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Fuel,
    Stack,
}

impl Stop {
    pub fn describe(self) -> String {
        match self {
            Stop::Fuel => format!("took more than {MAX_FUEL} evaluation steps"),
            Stop::Stack => "recursed too deeply".to_string(),
        }
    }
}

/// The fuel of one call.
pub struct Meter {
    fuel: Cell<u64>,
}

impl Meter {
    fn new() -> Self {
        Meter { fuel: Cell::new(MAX_FUEL) }
    }

    /// Spend `units`; out of fuel or of stack, stop the evaluation.
    pub fn charge(&self, units: u64) {
        let left = self.fuel.get();
        if left < units {
            resume_unwind(Box::new(Stop::Fuel));
        }
        self.fuel.set(left - units);
        if stacker::remaining_stack().is_some_and(|r| r < RED_ZONE) {
            resume_unwind(Box::new(Stop::Stack));
        }
    }
}

/// jaq's data type for our programs: JSON values, natives that see the meter.
pub struct Guarded;

/// What every step of a run carries: the program and the meter.
#[derive(Clone)]
pub struct Run<'a> {
    pub lut: &'a Lut<Guarded>,
    pub meter: &'a Meter,
}

impl DataT for Guarded {
    type V<'a> = Val;
    type Data<'a> = Run<'a>;
}

impl<'a> HasLut<'a, Guarded> for Run<'a> {
    fn lut(&self) -> &'a Lut<Guarded> {
        self.meter.charge(1);
        self.lut
    }
}

/// Run `f` with the stack headroom evaluation needs: on this thread's stack when it has it,
/// else on a segment allocated for the call.
pub fn with_headroom<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(STACK_HEADROOM, STACK_HEADROOM + RED_ZONE, f)
}

/// Run an evaluation with a fresh meter; a stop becomes `Err`.
pub fn metered<R>(f: impl FnOnce(&Meter) -> R) -> Result<R, Stop> {
    with_headroom(|| {
        let meter = Meter::new();
        match catch_unwind(AssertUnwindSafe(|| f(&meter))) {
            Ok(result) => Ok(result),
            Err(payload) => match payload.downcast::<Stop>() {
                Ok(stop) => Err(*stop),
                // Not ours: a bug, to be reported as it is.
                Err(other) => resume_unwind(other),
            },
        }
    })
}

fn fail<T>(message: impl std::fmt::Display) -> Result<T, Error<Val>> {
    Err(Error::str(message))
}

/// How big a value is when every shared part counts as often as it appears; `Err` past the
/// limits (without walking further). Pays one unit of fuel per 16 nodes.
pub fn measure(value: &Val, meter: &Meter) -> Result<u64, Error<Val>> {
    let mut pending: Vec<(&Val, usize)> = vec![(value, 1)];
    let (mut nodes, mut bytes) = (0u64, 0usize);
    while let Some((v, depth)) = pending.pop() {
        nodes += 1;
        if nodes > MAX_NODES {
            return fail(format!("value larger than {MAX_NODES} elements"));
        }
        if depth > MAX_VALUE_DEPTH {
            return fail(format!("value nested deeper than {MAX_VALUE_DEPTH} levels"));
        }
        match v {
            Val::TStr(b) | Val::BStr(b) => {
                bytes += b.len();
                if bytes > MAX_STRING_BYTES {
                    return fail(format!("value holds more than {MAX_STRING_BYTES} bytes of text"));
                }
            }
            Val::Arr(items) => pending.extend(items.iter().map(|x| (x, depth + 1))),
            Val::Obj(map) => {
                for (k, x) in map.iter() {
                    pending.push((k, depth + 1));
                    pending.push((x, depth + 1));
                }
            }
            Val::Null | Val::Bool(_) | Val::Num(_) => {}
        }
    }
    meter.charge(nodes / 16);
    Ok(nodes)
}

fn string_len(v: &Val) -> Option<usize> {
    match v {
        Val::TStr(b) | Val::BStr(b) => Some(b.len()),
        _ => None,
    }
}

/// Integer arithmetic that overflows a machine integer is done in floating point, as jq does,
/// instead of in ever larger big integers (squaring one in a loop allocates without bound).
fn number_math(l: &Num, op: jaq_core::ops::Math, r: &Num) -> Option<Val> {
    use jaq_core::ops::Math::{Add, Mul, Sub};
    let float = |x: &Num| match x {
        Num::Int(i) => Some(*i as f64),
        Num::BigInt(_) => Val::Num(x.clone()).as_f64(),
        _ => None,
    };
    let checked = match (l, r) {
        (Num::Int(a), Num::Int(b)) => match op {
            Add => a.checked_add(*b),
            Sub => a.checked_sub(*b),
            Mul => a.checked_mul(*b),
            _ => return None,
        },
        (Num::BigInt(_), Num::Int(_) | Num::BigInt(_)) | (Num::Int(_), Num::BigInt(_)) => None,
        _ => return None,
    };
    if let Some(n) = checked {
        return Some(Val::Num(Num::Int(n)));
    }
    let (a, b) = (float(l)?, float(r)?);
    Some(Val::Num(Num::Float(match op {
        Add => a + b,
        Sub => a - b,
        Mul => a * b,
        _ => return None,
    })))
}

/// `l op r` for `+`, `-` and `*`, refusing what would be too large to build.
fn checked_math(meter: &Meter, l: Val, op: jaq_core::ops::Math, r: Val) -> ValR<Val> {
    use jaq_core::ops::Math::{Add, Mul, Sub};
    if let (Val::Num(a), Val::Num(b)) = (&l, &r) {
        if let Some(v) = number_math(a, op, b) {
            return Ok(v);
        }
    }
    match (op, &l, &r) {
        (Add, a, b) if string_len(a).is_some() && string_len(b).is_some() => {
            let len = string_len(a).unwrap_or(0) + string_len(b).unwrap_or(0);
            if len > MAX_STRING_BYTES {
                return fail(format!("string of more than {MAX_STRING_BYTES} bytes"));
            }
            meter.charge(len as u64 / 256);
        }
        (Add, Val::Arr(a), Val::Arr(b)) => {
            let len = a.len() + b.len();
            if len > MAX_COLLECTION_LEN {
                return fail(format!("array of more than {MAX_COLLECTION_LEN} elements"));
            }
            meter.charge(len as u64 / 64);
        }
        (Add, Val::Obj(a), Val::Obj(b)) => {
            let len = a.len() + b.len();
            if len > MAX_COLLECTION_LEN {
                return fail(format!("object of more than {MAX_COLLECTION_LEN} entries"));
            }
            meter.charge(len as u64 / 64);
        }
        (Mul, s, Val::Num(n)) | (Mul, Val::Num(n), s) if string_len(s).is_some() => {
            let times = Val::Num(n.clone()).as_f64().unwrap_or(0.0).max(0.0);
            let len = string_len(s).unwrap_or(0) as f64 * times;
            if len > MAX_STRING_BYTES as f64 {
                return fail(format!("string of more than {MAX_STRING_BYTES} bytes"));
            }
            meter.charge(len as u64 / 256);
        }
        (Mul, Val::Obj(_), Val::Obj(_)) => {
            // A deep merge recurses through both.
            measure(&l, meter)?;
            measure(&r, meter)?;
        }
        (Sub, Val::Arr(_), Val::Arr(_)) => {
            let pairs = measure(&l, meter)?.saturating_mul(measure(&r, meter)?);
            if pairs > MAX_PAIRWISE {
                return fail(format!("array difference of more than {MAX_PAIRWISE} comparisons"));
            }
            meter.charge(pairs / 64);
        }
        _ => {}
    }
    match op {
        Add => l + r,
        Sub => l - r,
        Mul => l * r,
        _ => fail("unsupported operation"),
    }
}

fn math<'a>(mut cv: Cv<'a, Guarded>, op: jaq_core::ops::Math) -> ValXs<'a, Val> {
    let r = cv.0.pop_var();
    let l = cv.0.pop_var();
    let meter = cv.0.data().meter;
    // A cartesian product of generators calls this once per pair.
    meter.charge(1);
    bome(checked_math(meter, l, op, r))
}

/// `range($from; $to; $by)` paying one unit of fuel per number: jaq's native yields without
/// evaluating a term, so `last(range(1e12))` would run for hours on no fuel at all.
fn range<'a>(mut cv: Cv<'a, Guarded>) -> ValXs<'a, Val> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let by = cv.0.pop_var();
    let to = cv.0.pop_var();
    let from = cv.0.pop_var();
    let meter = cv.0.data().meter;
    let direction = by.partial_cmp(&Val::from(0isize)).unwrap_or(Equal);
    let mut next: Option<ValR<Val>> = Some(Ok(from));
    Box::new(std::iter::from_fn(move || match next.take()? {
        Ok(x) => {
            let more = match direction {
                Greater => x < to,
                Less => x > to,
                Equal => x != to,
            };
            if !more {
                return None;
            }
            meter.charge(1);
            next = Some(x.clone() + by.clone());
            Some(Ok(x))
        }
        Err(e) => Some(Err(Exn::from(e))),
    }))
}

/// `fromjson` with serde_json's parser, which stops at 128 levels of nesting (jaq's recurses
/// without a limit); like jaq's, it yields every value of the text.
fn fromjson<'a>(cv: Cv<'a, Guarded>) -> ValXs<'a, Val> {
    let Some(text) = cv.1.as_utf8_bytes().map(<[u8]>::to_vec) else {
        return bome(fail(format!("cannot parse {} as JSON: not a string", super::short(&cv.1))));
    };
    let values: Vec<ValR<Val>> = serde_json::Deserializer::from_slice(&text)
        .into_iter::<serde_json::Value>()
        .map(|r| match r {
            Ok(value) => <Val as serde::Deserialize>::deserialize(&value).map_err(|e| Error::str(e.to_string())),
            Err(e) => fail(format!("cannot parse as JSON: {e}")),
        })
        .collect();
    Box::new(values.into_iter().map(|r| r.map_err(Exn::from)))
}

/// The natives the rewritten programs call, and `fromjson` in place of jaq's.
pub fn natives() -> impl Iterator<Item = Fun<Guarded>> {
    let fits: Fun<Guarded> = (
        super::guard::FITS,
        v(0),
        Native::<Guarded>::new(|cv| match measure(&cv.1, cv.0.data().meter) {
            Ok(_) => box_once(Ok(cv.1)),
            Err(e) => bome(Err(e)),
        })
        .with_paths(|cv| match measure(&cv.1.0, cv.0.data().meter) {
            Ok(_) => box_once(Ok(cv.1)),
            Err(e) => box_once(Err(Exn::from(e))),
        })
        .with_update(|cv, f| match measure(&cv.1, cv.0.data().meter) {
            Ok(_) => f(cv.1),
            Err(e) => bome(Err(e)),
        }),
    );
    let tick: Fun<Guarded> = (
        super::guard::TICK,
        v(0),
        Native::<Guarded>::new(|cv| {
            cv.0.data().meter.charge(1);
            box_once(Ok(cv.1))
        }),
    );
    [
        fits,
        tick,
        (super::guard::ADD, v(2), Native::<Guarded>::new(|cv| math(cv, jaq_core::ops::Math::Add))),
        (super::guard::SUB, v(2), Native::<Guarded>::new(|cv| math(cv, jaq_core::ops::Math::Sub))),
        (super::guard::MUL, v(2), Native::<Guarded>::new(|cv| math(cv, jaq_core::ops::Math::Mul))),
        ("fromjson", v(0), Native::<Guarded>::new(fromjson)),
        ("range", v(3), Native::<Guarded>::new(range)),
    ]
    .into_iter()
}
