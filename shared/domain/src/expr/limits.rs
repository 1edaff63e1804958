//! Hostile expressions: each ends with an error, never with a crash, a hung thread or an
//! unbounded allocation. And the rewrite changes nothing else: ordinary programs give what
//! plain jaq gives.

use serde_json::{Value, json};

use super::*;

fn compile_error(source: &str) -> String {
    match Expr::compile(source) {
        Err(ExprError::Compile(m)) => m,
        other => panic!("{:.60} should not compile: {other:?}", source),
    }
}

fn run(source: &str, input: Value) -> Result<Vec<Value>, ExprError> {
    Expr::compile(source).unwrap_or_else(|e| panic!("{source:.60}: {e}")).eval_all(&input)
}

fn limit(source: &str) -> String {
    match run(source, Value::Null) {
        Err(ExprError::Limit(m)) => m,
        other => panic!("{source:.60} should be stopped: {other:?}"),
    }
}

fn failure(source: &str) -> String {
    match run(source, Value::Null) {
        Err(ExprError::Runtime(m)) => m,
        other => panic!("{source:.60} should fail: {other:?}"),
    }
}

#[test]
fn the_nesting_that_aborted_the_process_is_refused_before_jaq_sees_it() {
    // The shapes of the reported crash: 1024 levels (a 2,151-byte body), 2048-long chains.
    let cases = [
        format!("{}1{}", "[".repeat(1024), "]".repeat(1024)),
        format!("{}1{}", "(".repeat(1024), ")".repeat(1024)),
        format!("{}1{}", "{a:".repeat(1024), "}".repeat(1024)),
        format!("{}1", "-".repeat(1024)),
        vec!["."; 2048].join("|"),
        vec!["1"; 2048].join("+"),
    ];
    for source in &cases {
        let message = compile_error(source);
        assert!(
            message.contains("nested") || message.contains("in a row") || message.contains("operators"),
            "{message}"
        );
    }
    // Inside a template the same expression is refused when the flow is checked.
    let template = json!({"body": format!("${{{{ {}1{} }}}}", "[".repeat(1024), "]".repeat(1024))});
    let e = crate::template::check(&template).unwrap_err();
    assert!(e.to_string().contains("nested"), "{e}");
}

#[test]
fn expressions_at_the_limits_compile_and_run() {
    let nested = format!("{}1{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
    assert_eq!(run(&format!("{nested} | flatten"), Value::Null).unwrap(), vec![json!([1])]);
    let chain = vec!["1"; MAX_OPERATORS_PER_LEVEL + 1].join("+");
    assert_eq!(run(&chain, Value::Null).unwrap(), vec![json!(MAX_OPERATORS_PER_LEVEL + 1)]);
    let pipes = vec!["."; MAX_OPERATORS_PER_LEVEL + 1].join("|");
    assert_eq!(run(&pipes, json!(7)).unwrap(), vec![json!(7)]);
    let negations = format!("{}1", "-".repeat(MAX_PREFIX_RUN));
    assert_eq!(run(&negations, Value::Null).unwrap(), vec![json!(1)]);
    // Deep nesting of every kind at once, within the limits: nothing overflows.
    let mixed = format!(
        "{}{}",
        "[(if true then {a: \"\\(".repeat(MAX_NESTING / 5),
        format!("1{}", ")\"} end)]".repeat(MAX_NESTING / 5))
    );
    assert!(run(&mixed, Value::Null).is_ok());
}

#[test]
fn runaway_recursion_and_loops_are_stopped() {
    assert!(limit("def f: 1 + f; f").contains("recursed too deeply"));
    limit("def f(n): if n == 0 then 0 else [f(n - 1)] end; f(1000000)");
    assert!(limit("def f: [f]; f").contains("recursed"));
    for source in
        ["0 | until(false; .)", "[limit(1000000000; repeat(1))]", "last(range(1e12))", "[range(1e9)] | length"]
    {
        assert!(limit(source).contains("evaluation steps"), "{source}");
    }
    // `try` cannot catch a stop.
    assert!(limit("try (0 | until(false; .)) catch 1").contains("evaluation steps"));
    // Ordinary loops are far below the fuel.
    assert_eq!(run("[range(10000)] | map(. * 2) | add", Value::Null).unwrap(), vec![json!(99_990_000)]);
}

#[test]
fn what_an_expression_builds_is_bounded() {
    for source in [
        "\"x\" * 1e12",
        "\"x\" * 100000000000",
        "reduce range(40) as $x (\"x\"; . + .)",
        "reduce range(40) as $x ([1]; . + .) | length",
        "reduce range(40) as $x ({}; . + {(tostring): 1}) | length",
        "[range(2000000)] as $a | $a - $a",
    ] {
        let message = match run(source, Value::Null) {
            Err(ExprError::Runtime(m) | ExprError::Limit(m)) => m,
            other => panic!("{source} should fail: {other:?}"),
        };
        assert!(message.contains("more than") || message.contains("steps"), "{source}: {message}");
    }
    // Doubling an array through a collection pays per element.
    assert!(limit("reduce range(40) as $x ([1]; [.[], .[]]) | length").contains("steps"));
    // Integers that overflow become floats (as in jq), not ever larger big integers.
    assert_eq!(run("9223372036854775807 + 1", Value::Null).unwrap(), vec![json!(9.223372036854776e18)]);
    assert_eq!(run("reduce range(40) as $x (3; . * .) | . > 1e300", Value::Null).unwrap(), vec![json!(true)]);
}

/// `[., .]` sixty times over: a few hundred bytes that expand to 2^60 leaves.
const SHARED: &str = "(reduce range(60) as $x (1; [., .]))";

#[test]
fn shared_structures_are_never_expanded() {
    for source in [
        format!("{SHARED} | tojson"),
        format!("\"\\({SHARED})\""),
        format!("{SHARED} | tostring"),
        format!("{SHARED} as $a | (reduce range(60) as $x (1; [., .])) == $a"),
        format!("[{SHARED}, {SHARED}] | sort | length"),
        format!("{SHARED} | [..] | length"),
        format!("{SHARED} | [paths] | length"),
        format!("{{({SHARED} | tostring): 1}}"),
        format!("{{}} | .[{SHARED}]"),
        format!("[{SHARED}] | group_by(.) | length"),
        format!("{SHARED} | contains({SHARED})"),
        format!("{SHARED} | walk(.)"),
        format!("{SHARED}"),
    ] {
        let message = match run(&source, Value::Null) {
            Err(ExprError::Runtime(m) | ExprError::Limit(m)) => m,
            other => panic!("{source:.70} should fail: {other:?}"),
        };
        assert!(message.len() <= 600, "{source:.70}: a {} byte message", message.len());
    }
    // An error that shows the value shows a bounded prefix of it.
    let message = failure(&format!("{SHARED} | .foo"));
    assert!(message.len() <= 600 && message.contains("[[[["), "{message}");
}

#[test]
fn deep_values_built_at_run_time_neither_overflow_nor_escape() {
    // 100,000 levels: dropping it recurses per level, within the guaranteed headroom.
    assert_eq!(run("reduce range(100000) as $x (null; [.]) | length", Value::Null).unwrap(), vec![json!(1)]);
    assert!(failure("reduce range(100000) as $x (null; [.]) | tojson").contains("nested deeper"));
    assert!(failure("reduce range(100) as $x (null; [.])").contains("nested deeper"));
    // Parsing deep text stops at serde_json's limit instead of recursing.
    assert!(failure("\"[\" * 100000 | fromjson").contains("cannot parse"));
    assert_eq!(run("\"[[1]] 2\" | fromjson", Value::Null).unwrap(), vec![json!([[1]]), json!(2)]);
}

#[test]
fn reserved_names_cannot_be_used_to_defeat_the_checks() {
    for source in ["def __swy_fits: .; 1", "__swy_tick", ". as $__swy_rhs | 1", "def f($__swy_x): 1; f(1)"] {
        assert!(compile_error(source).contains("reserved"), "{source}");
    }
}

#[test]
fn evaluation_works_on_a_thread_with_a_small_stack() {
    // Test threads may have 2 MiB; the headroom is then a segment of its own.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let deep = run("reduce range(50000) as $x (null; [.]) | length", Value::Null);
            let recursion = run("def f: 1 + f; f", Value::Null);
            (deep, recursion)
        })
        .unwrap();
    let (deep, recursion) = handle.join().unwrap();
    assert_eq!(deep.unwrap(), vec![json!(1)]);
    assert!(matches!(recursion, Err(ExprError::Limit(_))));
}

/// The same program, compiled by plain jaq (no rewrite, no meter).
fn vanilla(source: &str, input: &Value) -> Result<Vec<Value>, String> {
    use jaq_core::data::JustLut;
    type Plain = JustLut<Val>;
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs::<Plain>().chain(jaq_std::funs::<Plain>()).chain(jaq_json::funs::<Plain>());
    let arena = Arena::default();
    let modules = Loader::new(defs).load(&arena, File { code: source, path: () }).map_err(|_| "load")?;
    let filter = Compiler::default().with_funs(funs).compile(modules).map_err(|_| "compile")?;
    let input = Val::deserialize(input).map_err(|e| e.to_string())?;
    let ctx = Ctx::<Plain>::new(&filter.lut, Vars::new([]));
    let mut out = Vec::new();
    for v in filter.id.run((ctx, input)).map(jaq_core::unwrap_valr) {
        let v = v.map_err(|e| e.to_string())?;
        out.push(serde_json::from_str(&v.to_string()).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

#[test]
fn the_rewrite_changes_no_result() {
    let input = json!({
        "a": 1, "b": [3, 1, 2], "s": "Hello, World", "k": "a",
        "o": {"x": {"y": 1}, "z": [1, {"w": 2}]},
        "people": [{"name": "ada", "age": 36}, {"name": "alan", "age": 41}, {"name": "grace", "age": 36}]
    });
    let programs = [
        "[(1,2) + (10,20)]",
        "[(1,2) * (3,4)]",
        "[(5,6) - (1,2)]",
        ".a + 1",
        ".b + [4]",
        ".s + \"!\"",
        "{a: 1} + {b: 2}",
        "{a: {b: 1}} * {a: {c: 2}}",
        "\"ab\" * 3",
        ".b - [1]",
        "null + 1",
        ".a += 1",
        ".b[] *= 2",
        ".o.x.y -= 1",
        ".b |= map(. + 1)",
        ".a //= 5",
        ".c //= 5",
        "[paths]",
        "[paths(type == \"number\")]",
        "[..] | length",
        "[.. | numbers]",
        "walk(if type == \"number\" then . + 1 else . end)",
        "[tostream] | length",
        "tojson | fromjson == .",
        ".people | group_by(.age) | map(map(.name))",
        ".people | sort_by(.age, .name) | map(.name)",
        ".people | unique_by(.age) | length",
        ".people | min_by(.age).name",
        ".people | max_by(.age).name",
        ".b | sort",
        ".b | unique",
        ".b | min",
        ".b | max",
        ".b | add",
        ".b | map(tostring) | join(\",\")",
        ".s | ascii_downcase",
        ".s | test(\"world\"; \"i\")",
        ".s | sub(\"World\"; \"jq\")",
        ".s | [splits(\", \")]",
        ".s | gsub(\"l\"; \"L\")",
        ".s | explode | implode",
        ".s | @base64 | @base64d",
        ".s | @uri",
        "@json",
        ".b | @csv",
        ".people | map(.name) | @sh",
        "\"\\(.a) and \\(.b)\"",
        "{(.k): .a}",
        ".[.k]",
        ".o | has(\"x\")",
        ".o | contains({x: {}})",
        "\"a\" | inside(\"abc\")",
        ".b | indices(1)",
        ".s | index(\"o\")",
        "[.b[] | select(. > 1)]",
        "reduce .b[] as $x (0; . + $x)",
        "[foreach .b[] as $x (0; . + $x)]",
        "[limit(2; .b[])]",
        "first(.b[])",
        "[range(0; 10; 3)]",
        "[range(5; 0; -2)]",
        "[range(0; 1; 0.3)]",
        "[limit(3; range(0; 10; 0))]",
        "[range(3)]",
        "[range(1; 3)]",
        "getpath([\"o\", \"x\"])",
        "setpath([\"o\", \"x\", \"y\"]; 5) | .o",
        "del(.o) | keys",
        "to_entries | length",
        "with_entries(select(.key == \"a\"))",
        ".o | to_entries | from_entries",
        "keys",
        "[.[] | length]",
        ".o.z | flatten",
        "[.b[] | . == 1] | any",
        ".b | all(. > 0)",
        ".o | map_values(type)",
        ".o | [paths(..)] | length",
        "[.b[] as $x | .b[] as $y | [$x, $y]] | length",
        ".b | combinations(2) | length",
        "[.people[] | {name, old: (.age > 40)}]",
        ".people | INDEX(.name) | keys",
        "[.b[] | tostring | tonumber]",
        "\"2015-03-05T23:51:47Z\" | fromdate | todate",
        ".a as [$x] ?// $x | $x",
        "[.b[] | if . > 1 then \"big\" elif . == 1 then \"one\" else \"small\" end]",
        "try error(\"x\") catch .",
        "[.b[] | try (if . > 2 then error(\"big\") else . end) catch \"caught\"]",
        "label $out | .b[] | if . == 1 then ., break $out else . end",
        ".b | .[1:]",
        ".s | .[0:5]",
        ".b | reverse",
        "[.b[] | (. , -.)]",
        "9007199254740993 + 0",
        "[1, 2.5, 1e3] | map(. * 2)",
        "{} | .a.b.c = 1",
        "[.people[] | .age] | (add / length)",
        ".people | map(select(.name | startswith(\"a\"))) | length",
        "[.b, .b] | transpose",
        "[splits(\"a\")] | length",
        "ltrimstr(\"x\")",
        "$__loc__",
        "input_line_number? // 0",
        "[.[] | type]",
        "getpath([\"missing\", \"x\"])",
        "[paths] == [paths(true)]",
        "tostream | select(length == 2) | .[1]",
        "fromjson? // \"not a string\"",
        "[.b[] | . % 2]",
        ".b | bsearch(2)",
        "splits(\"x\")?",
    ];
    for program in programs {
        let ours = Expr::compile(program).and_then(|e| e.eval_all(&input)).map_err(|e| e.to_string());
        let theirs = vanilla(program, &input);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{program}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{program}: ours {ours:?}, plain jaq {theirs:?}"),
        }
    }
}
