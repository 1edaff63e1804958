//! The rewrite that puts every costly operation of a program behind a check.
//!
//! jaq evaluates most operations in one step of native code, whatever their cost: `"x" * 1e11`
//! allocates 100 GB at once, `tojson`, `==` and `..` walk a value as if every shared part were
//! a copy (`reduce range(60) as $x (1; [., .])` is a few bytes that expand to 2^60 leaves), and
//! `. + .` doubles a string per iteration. Those cannot be bounded from outside the operation,
//! so before compiling, the program (and the standard library, which is written in jq) is
//! rewritten so that they go through the natives of `sandbox`:
//!
//! - `l + r`, `l - r`, `l * r` (and `+=`, `-=`, `*=`) become `__swy_add(l; r)`, … which check
//!   the size of what they build (and compute integer overflow in floating point, as jq does,
//!   instead of in ever larger big integers);
//! - operands of comparisons, interpolated values, computed object keys and indices, the input
//!   of `..` and of the natives that serialize, compare or hash values (`tojson`, `sort`,
//!   `group_by`, `contains`, `has`…) and their key arguments pass `__swy_fits`, which bounds
//!   a value's expanded size and depth;
//! - every element an array construction `[f]` collects passes `__swy_tick`, one unit of fuel,
//!   so no array grows faster than the program runs.
//!
//! Names starting with `__swy` are reserved: a program may neither define nor call them (a
//! definition would shadow a check).

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::ops::Math;
use jaq_core::path::{Part, Path};

/// Prefix of the names the rewrite introduces.
pub const RESERVED_PREFIX: &str = "__swy";
pub const FITS: &str = "__swy_fits";
pub const TICK: &str = "__swy_tick";
pub const ADD: &str = "__swy_add";
pub const SUB: &str = "__swy_sub";
pub const MUL: &str = "__swy_mul";
/// The right-hand side of an update-assignment (`l += r` is `r as $v | l |= __swy_add(.; $v)`).
const RHS: &str = "$__swy_rhs";

/// Natives whose input is serialized, compared or hashed (or shown in an error message).
const CHECKED_INPUT: &[&str] = &[
    "tojson",
    "tobytes",
    "implode",
    "sort",
    "sort_by",
    "group_by",
    "min_by_or_empty",
    "max_by_or_empty",
    "contains",
    "indices",
    "bsearch",
    "has",
    "gmtime",
    "localtime",
    "mktime",
    "strftime",
    "strflocaltime",
    "todateiso8601",
];
/// Natives whose arguments are compared or hashed.
const CHECKED_ARGS: &[&str] =
    &["sort_by", "group_by", "min_by_or_empty", "max_by_or_empty", "contains", "indices", "bsearch", "has"];

/// Who wrote the program: only ours may use the reserved names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    User,
    Library,
}

/// A reserved name used by a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved(pub String);

fn call<'s>(name: &'s str, args: Vec<Term<&'s str>>) -> Term<&'s str> {
    Term::Call(name, args)
}

fn pipe<'s>(l: Term<&'s str>, r: Term<&'s str>) -> Term<&'s str> {
    Term::BinOp(Box::new(l), BinaryOp::Pipe(None), Box::new(r))
}

/// A term whose value cannot be large: a literal.
fn is_literal(t: &Term<&str>) -> bool {
    match t {
        Term::Num(_) => true,
        Term::Str(_, parts) => parts.iter().all(|p| !matches!(p, StrPart::Term(_))),
        _ => false,
    }
}

/// `t | __swy_fits`, unless `t` is a literal.
fn fit(t: Term<&str>) -> Term<&str> {
    if is_literal(&t) { t } else { pipe(t, call(FITS, Vec::new())) }
}

fn math_native(op: &Math) -> Option<&'static str> {
    match op {
        Math::Add => Some(ADD),
        Math::Sub => Some(SUB),
        Math::Mul => Some(MUL),
        Math::Div | Math::Rem => None,
    }
}

struct Rewriter {
    origin: Origin,
}

/// Rewrite a program's term.
pub fn term<'s>(t: Term<&'s str>, origin: Origin) -> Result<Term<&'s str>, Reserved> {
    Rewriter { origin }.term(t)
}

/// Rewrite definitions (the standard library's).
pub fn defs<'s>(defs: impl IntoIterator<Item = Def<&'s str>>, origin: Origin) -> Result<Vec<Def<&'s str>>, Reserved> {
    let r = Rewriter { origin };
    defs.into_iter().map(|d| r.def(d)).collect()
}

impl Rewriter {
    fn name(&self, name: &str) -> Result<(), Reserved> {
        let bare = name.trim_start_matches('$');
        if self.origin == Origin::User && bare.starts_with(RESERVED_PREFIX) {
            return Err(Reserved(name.to_string()));
        }
        Ok(())
    }

    fn def<'s>(&self, d: Def<&'s str>) -> Result<Def<&'s str>, Reserved> {
        self.name(d.name)?;
        for arg in &d.args {
            self.name(arg)?;
        }
        Ok(Def { name: d.name, args: d.args, body: self.term(d.body)? })
    }

    fn boxed<'s>(&self, t: Box<Term<&'s str>>) -> Result<Box<Term<&'s str>>, Reserved> {
        Ok(Box::new(self.term(*t)?))
    }

    fn pattern<'s>(&self, p: Pattern<&'s str>) -> Result<Pattern<&'s str>, Reserved> {
        Ok(match p {
            Pattern::Var(v) => {
                self.name(v)?;
                Pattern::Var(v)
            }
            Pattern::Arr(items) => Pattern::Arr(items.into_iter().map(|p| self.pattern(p)).collect::<Result<_, _>>()?),
            Pattern::Obj(entries) => {
                Pattern::Obj(entries.into_iter().map(|(k, p)| Ok((self.key(k)?, self.pattern(p)?))).collect::<Result<
                    _,
                    Reserved,
                >>(
                )?)
            }
        })
    }

    /// An object key or index: hashed, so checked unless it is a literal.
    fn key<'s>(&self, k: Term<&'s str>) -> Result<Term<&'s str>, Reserved> {
        Ok(fit(self.term(k)?))
    }

    fn path<'s>(&self, path: Path<Term<&'s str>>) -> Result<Path<Term<&'s str>>, Reserved> {
        let parts = path
            .0
            .into_iter()
            .map(|(part, opt)| {
                let part = match part {
                    Part::Index(i) => Part::Index(self.key(i)?),
                    Part::Range(from, to) => {
                        Part::Range(from.map(|t| self.term(t)).transpose()?, to.map(|t| self.term(t)).transpose()?)
                    }
                };
                Ok((part, opt))
            })
            .collect::<Result<_, Reserved>>()?;
        Ok(Path(parts))
    }

    fn term<'s>(&self, t: Term<&'s str>) -> Result<Term<&'s str>, Reserved> {
        Ok(match t {
            Term::Id | Term::Num(_) | Term::Break(_) => t,
            Term::Recurse => pipe(call(FITS, Vec::new()), Term::Recurse),
            Term::Var(v) => {
                self.name(v)?;
                Term::Var(v)
            }
            Term::Str(format, parts) => Term::Str(
                format,
                parts
                    .into_iter()
                    .map(|part| match part {
                        StrPart::Term(t) => Ok(StrPart::Term(fit(self.term(t)?))),
                        StrPart::Str(s) => Ok(StrPart::Str(s)),
                        StrPart::Char(c) => Ok(StrPart::Char(c)),
                    })
                    .collect::<Result<_, Reserved>>()?,
            ),
            Term::Arr(None) => Term::Arr(None),
            Term::Arr(Some(items)) => Term::Arr(Some(Box::new(pipe(self.term(*items)?, call(TICK, Vec::new()))))),
            Term::Obj(entries) => Term::Obj(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        // `{$x}` names its key; `{a}`, `{"a"}` are literals; anything else is computed.
                        let k = match (&k, &v) {
                            (Term::Var(_), None) => self.term(k)?,
                            _ => self.key(k)?,
                        };
                        Ok((k, v.map(|v| self.term(v)).transpose()?))
                    })
                    .collect::<Result<_, Reserved>>()?,
            ),
            Term::Neg(t) => Term::Neg(self.boxed(t)?),
            Term::BinOp(l, op, r) => self.binop(*l, op, *r)?,
            Term::Label(name, body) => {
                self.name(name)?;
                Term::Label(name, self.boxed(body)?)
            }
            Term::Fold(kind, xs, pat, args) => Term::Fold(
                kind,
                self.boxed(xs)?,
                self.pattern(pat)?,
                args.into_iter().map(|a| self.term(a)).collect::<Result<_, _>>()?,
            ),
            Term::TryCatch(body, catch) => Term::TryCatch(self.boxed(body)?, catch.map(|c| self.boxed(c)).transpose()?),
            Term::IfThenElse(branches, otherwise) => Term::IfThenElse(
                branches
                    .into_iter()
                    .map(|(c, t)| Ok((self.term(c)?, self.term(t)?)))
                    .collect::<Result<_, Reserved>>()?,
                otherwise.map(|o| self.boxed(o)).transpose()?,
            ),
            Term::Def(defs, body) => {
                Term::Def(defs.into_iter().map(|d| self.def(d)).collect::<Result<_, _>>()?, self.boxed(body)?)
            }
            Term::Call(name, args) => {
                self.name(name)?;
                let checked_args = CHECKED_ARGS.contains(&name);
                let args = args
                    .into_iter()
                    .map(|a| self.term(a).map(|a| if checked_args { fit(a) } else { a }))
                    .collect::<Result<_, _>>()?;
                let call = Term::Call(name, args);
                if CHECKED_INPUT.contains(&name) { pipe(Term::Call(FITS, Vec::new()), call) } else { call }
            }
            Term::Path(base, path) => Term::Path(self.boxed(base)?, self.path(path)?),
        })
    }

    fn binop<'s>(&self, l: Term<&'s str>, op: BinaryOp<&'s str>, r: Term<&'s str>) -> Result<Term<&'s str>, Reserved> {
        let (l, r) = (self.term(l)?, self.term(r)?);
        Ok(match op {
            BinaryOp::Math(m) => match math_native(&m) {
                Some(native) => call(native, vec![l, r]),
                None => Term::BinOp(Box::new(l), BinaryOp::Math(m), Box::new(r)),
            },
            BinaryOp::UpdateMath(m) => match math_native(&m) {
                // `l op= r` is `r as $v | l |= . op $v`, with `r` on the original input.
                Some(native) => Term::BinOp(
                    Box::new(r),
                    BinaryOp::Pipe(Some(Pattern::Var(RHS))),
                    Box::new(Term::BinOp(
                        Box::new(l),
                        BinaryOp::Update,
                        Box::new(call(native, vec![Term::Id, Term::Var(RHS)])),
                    )),
                ),
                None => Term::BinOp(Box::new(l), BinaryOp::UpdateMath(m), Box::new(r)),
            },
            BinaryOp::Cmp(c) => Term::BinOp(Box::new(fit(l)), BinaryOp::Cmp(c), Box::new(fit(r))),
            BinaryOp::Pipe(Some(pattern)) => {
                Term::BinOp(Box::new(l), BinaryOp::Pipe(Some(self.pattern(pattern)?)), Box::new(r))
            }
            other => Term::BinOp(Box::new(l), other, Box::new(r)),
        })
    }
}
