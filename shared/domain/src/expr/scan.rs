//! A scan of an expression's text before jaq sees it.
//!
//! jaq's lexer, parser and compiler recurse once per level of nesting, and its evaluator once
//! per operator of a chain, so a short text (`[[[[…` 1024 deep, `1+1+…` 2048 long) can take more
//! stack than any thread has. This scan walks the text once, without recursion, and refuses
//! what is deeper or longer than the limits below, which (with the stack headroom the
//! evaluator guarantees) every later stage handles.
//!
//! The scan knows just enough of jq's lexical syntax to count: strings (with `\(…)`
//! interpolation), comments, brackets, `if … end`, `def … ;`, prefix operators and binary
//! operators. It never accepts anything jaq would refuse; jaq reports syntax errors.

/// Deepest nesting of brackets, string interpolations, `if … end` and `def … ;`.
pub const MAX_NESTING: usize = 64;
/// Longest run of prefix operators (`-`, `try`, `reduce`, `foreach`, `label`) in a row.
pub const MAX_PREFIX_RUN: usize = 32;
/// Most binary operators (`|`, `,`, `+`, `and`, `as`…) at one level of nesting.
pub const MAX_OPERATORS_PER_LEVEL: usize = 512;

/// What the scan refused, for the flow author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    TooDeep,
    PrefixRun,
    TooManyOperators,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::TooDeep => write!(
                f,
                "nested more than {MAX_NESTING} levels deep (brackets, string interpolations, if/end and def)"
            ),
            ScanError::PrefixRun => write!(f, "more than {MAX_PREFIX_RUN} prefix operators in a row"),
            ScanError::TooManyOperators => {
                write!(f, "more than {MAX_OPERATORS_PER_LEVEL} operators at one level; split the expression up")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Top,
    /// `(`, `[` or `{`, by its closing character.
    Bracket(u8),
    /// `\(` inside a string: its `)` resumes the string.
    Interpolation,
    If,
    Def,
}

/// What came last, to tell a unary minus from a binary one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Operand,
    Other,
}

struct Scanner<'s> {
    text: &'s [u8],
    at: usize,
    frames: Vec<(Frame, usize)>,
    last: Last,
    prefix_run: usize,
}

/// Check an expression's text against the limits.
pub fn scan(source: &str) -> Result<(), ScanError> {
    let mut s =
        Scanner { text: source.as_bytes(), at: 0, frames: vec![(Frame::Top, 0)], last: Last::Other, prefix_run: 0 };
    s.run()
}

impl Scanner<'_> {
    fn peek(&self, offset: usize) -> Option<u8> {
        self.text.get(self.at + offset).copied()
    }

    fn open(&mut self, frame: Frame) -> Result<(), ScanError> {
        self.frames.push((frame, 0));
        if self.frames.len() - 1 > MAX_NESTING {
            return Err(ScanError::TooDeep);
        }
        self.last = Last::Other;
        self.prefix_run = 0;
        Ok(())
    }

    fn operand(&mut self) {
        self.last = Last::Operand;
        self.prefix_run = 0;
    }

    fn operator(&mut self) -> Result<(), ScanError> {
        if let Some((_, count)) = self.frames.last_mut() {
            *count += 1;
            if *count > MAX_OPERATORS_PER_LEVEL {
                return Err(ScanError::TooManyOperators);
            }
        }
        self.last = Last::Other;
        self.prefix_run = 0;
        Ok(())
    }

    fn prefix(&mut self) -> Result<(), ScanError> {
        self.prefix_run += 1;
        if self.prefix_run > MAX_PREFIX_RUN {
            return Err(ScanError::PrefixRun);
        }
        self.last = Last::Other;
        Ok(())
    }

    fn top(&self) -> Frame {
        self.frames.last().map(|(f, _)| *f).unwrap_or(Frame::Top)
    }

    /// Close the innermost frame of `kind`'s bracket, dropping `def`s left open inside it
    /// (jaq reports those as syntax errors). Returns whether an interpolation was closed.
    fn close_bracket(&mut self, close: u8) -> bool {
        while self.frames.len() > 1 {
            match self.top() {
                Frame::Bracket(c) if c == close => {
                    self.frames.pop();
                    return false;
                }
                Frame::Interpolation if close == b')' => {
                    self.frames.pop();
                    return true;
                }
                Frame::Def | Frame::If => {
                    self.frames.pop();
                }
                _ => return false,
            }
        }
        false
    }

    /// The rest of a string literal, from after its opening quote (or after an interpolation's
    /// `)`): ends at the closing quote, or at `\(` (an interpolation is opened).
    fn string(&mut self) -> Result<(), ScanError> {
        while let Some(c) = self.peek(0) {
            match c {
                b'"' => {
                    self.at += 1;
                    self.operand();
                    return Ok(());
                }
                b'\\' if self.peek(1) == Some(b'(') => {
                    self.at += 2;
                    return self.open(Frame::Interpolation);
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
        Ok(())
    }

    fn word(&mut self) -> &str {
        let start = self.at;
        while self.peek(0).is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
            self.at += 1;
        }
        // Only ASCII bytes were taken, so this is a valid boundary.
        std::str::from_utf8(&self.text[start..self.at]).unwrap_or("")
    }

    fn number(&mut self) {
        let digits = |s: &mut Self| {
            while s.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                s.at += 1;
            }
        };
        digits(self);
        if self.peek(0) == Some(b'.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
            digits(self);
        }
        if matches!(self.peek(0), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek(1), Some(b'+' | b'-')));
            if self.peek(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                self.at += 1 + sign;
                digits(self);
            }
        }
        self.operand();
    }

    fn run(&mut self) -> Result<(), ScanError> {
        while let Some(c) = self.peek(0) {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.at += 1,
                b'#' => {
                    while self.peek(0).is_some_and(|c| c != b'\n') {
                        self.at += 1;
                    }
                }
                b'"' => {
                    self.at += 1;
                    self.string()?;
                }
                b'(' | b'[' | b'{' => {
                    self.at += 1;
                    let close = match c {
                        b'(' => b')',
                        b'[' => b']',
                        _ => b'}',
                    };
                    self.open(Frame::Bracket(close))?;
                }
                b')' | b']' | b'}' => {
                    self.at += 1;
                    if self.close_bracket(c) {
                        self.string()?;
                    } else {
                        self.operand();
                    }
                }
                b';' => {
                    self.at += 1;
                    if self.top() == Frame::Def {
                        self.frames.pop();
                    }
                    self.last = Last::Other;
                    self.prefix_run = 0;
                }
                b':' => {
                    self.at += 1;
                    self.last = Last::Other;
                    self.prefix_run = 0;
                }
                b'0'..=b'9' => self.number(),
                b'.' if self.peek(1).is_some_and(|c| c.is_ascii_digit()) => self.number(),
                b'.' => {
                    // `.`, `..`, `.name`, `."name"`, `.[`: a path operand (the name is no keyword).
                    self.at += 1;
                    if self.peek(0) == Some(b'.') {
                        self.at += 1;
                    } else if self.peek(0).is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') {
                        self.word();
                    }
                    self.operand();
                }
                b'$' | b'@' => {
                    self.at += 1;
                    self.word();
                    self.operand();
                }
                b'-' if self.last != Last::Operand => {
                    // `-=` after an operand is an operator; here there is none, so a prefix.
                    self.at += 1;
                    self.prefix()?;
                }
                b'?' if self.peek(1) == Some(b'/') && self.peek(2) == Some(b'/') => {
                    self.at += 3;
                    self.operator()?;
                }
                b'?' => {
                    self.at += 1;
                    self.operand();
                }
                b'|' | b',' | b'+' | b'-' | b'*' | b'/' | b'%' | b'=' | b'<' | b'>' | b'!' => {
                    // The longest operator: `//=`, `//`, `|=`, `+=`, `==`, `!=`, `<=`, ...
                    self.at += 1;
                    if c == b'/' && self.peek(0) == Some(b'/') {
                        self.at += 1;
                    }
                    if self.peek(0) == Some(b'=') {
                        self.at += 1;
                    }
                    self.operator()?;
                }
                c if c.is_ascii_alphabetic() || c == b'_' => match self.word() {
                    "if" => self.open(Frame::If)?,
                    "end" => {
                        if self.top() == Frame::If {
                            self.frames.pop();
                        }
                        self.operand();
                    }
                    "def" => self.open(Frame::Def)?,
                    "then" | "elif" | "else" | "catch" => {
                        self.last = Last::Other;
                        self.prefix_run = 0;
                    }
                    "try" | "reduce" | "foreach" | "label" => self.prefix()?,
                    "and" | "or" | "as" => self.operator()?,
                    _ => self.operand(),
                },
                _ => self.at += 1,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nest(open: &str, close: &str, n: usize) -> String {
        format!("{}1{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn nesting_is_counted_across_every_kind_of_bracket() {
        for (open, close) in [("[", "]"), ("(", ")"), ("{a:", "}"), ("\"\\(", ")\""), ("if true then ", " end")] {
            assert_eq!(scan(&nest(open, close, MAX_NESTING)), Ok(()), "{open} at the limit");
            assert_eq!(scan(&nest(open, close, MAX_NESTING + 1)), Err(ScanError::TooDeep), "{open} past it");
        }
        let defs = format!("{}1{}", "def f: ".repeat(MAX_NESTING + 1), "; 1".repeat(MAX_NESTING + 1));
        assert_eq!(scan(&defs), Err(ScanError::TooDeep));
        // Siblings do not nest.
        assert_eq!(scan(&"[1] + ".repeat(200).trim_end_matches("+ ").to_string()), Ok(()));
    }

    #[test]
    fn prefix_runs_and_operator_chains_are_bounded() {
        assert_eq!(scan(&format!("{}1", "-".repeat(MAX_PREFIX_RUN))), Ok(()));
        assert_eq!(scan(&format!("{}1", "-".repeat(MAX_PREFIX_RUN + 1))), Err(ScanError::PrefixRun));
        assert_eq!(scan(&format!("{}1", "try ".repeat(MAX_PREFIX_RUN + 1))), Err(ScanError::PrefixRun));
        // A binary minus is no prefix: `1-1-1…` is a chain.
        assert_eq!(scan(&vec!["1"; MAX_OPERATORS_PER_LEVEL + 1].join("-")), Ok(()));
        assert_eq!(scan(&vec!["1"; MAX_OPERATORS_PER_LEVEL + 2].join("-")), Err(ScanError::TooManyOperators));
        for op in ["|", "+", ",", " and ", " // ", "=="] {
            let at_limit = vec!["."; MAX_OPERATORS_PER_LEVEL + 1].join(op);
            assert_eq!(scan(&at_limit), Ok(()), "{op}");
            let past = vec!["."; MAX_OPERATORS_PER_LEVEL + 2].join(op);
            assert_eq!(scan(&past), Err(ScanError::TooManyOperators), "{op}");
        }
        // Each bracket level counts its own operators.
        let wide = format!("[{}] + [{}]", vec!["1"; 400].join(","), vec!["1"; 400].join(","));
        assert_eq!(scan(&wide), Ok(()));
    }

    #[test]
    fn strings_and_comments_hide_what_looks_like_syntax() {
        assert_eq!(scan(&format!("\"{}\"", "[(".repeat(500))), Ok(()));
        assert_eq!(scan(&format!("1 # {}\n", "[".repeat(500))), Ok(()));
        assert_eq!(scan(r#""a \" \\( [ ( \(.x) ] \(.y + "\(.z)")""#), Ok(()));
        // Field names are not keywords.
        assert_eq!(scan(".if | .end | .def"), Ok(()));
    }

    #[test]
    fn unbalanced_text_is_left_to_jaq() {
        for text in ["((((", "))))", "\"unterminated \\(", "if true then 1", "def f: 1", "]]][[[", "\\"] {
            let _ = scan(text);
        }
    }
}
