//! Bounds on the shape of a payload, checked before anything recurses over it.
//!
//! Turning a tree into another tree (XML → JSON value → VRL value → JSON value), cloning one and
//! dropping one all recurse once per nesting level. A payload nesting 100,000 levels (700 KB of
//! `<a>`) would overflow the stack of the thread that handles it and abort the whole process,
//! so depth is bounded where the bytes are read: the XML reader counts open elements, a JSON
//! body is scanned (without recursion) before `serde_json` sees it, and a value handed to a
//! program from elsewhere is measured without recursion first. A value already built too deep is
//! taken apart iteratively ([`drop_json`], [`drop_vrl`]) so that dropping it cannot overflow.
//!
//! The number of nodes (elements, attributes, JSON values) is bounded too: a wide document is
//! cheap to send and costly to hold as a tree.

use serde_json::Value;

/// The refusal codes: stable, listed in `docs/errors.md`.
pub const INPUT_TOO_DEEP: &str = "INPUT_TOO_DEEP";
pub const INPUT_TOO_MANY_NODES: &str = "INPUT_TOO_MANY_NODES";

/// The depth beyond which a value handed to a program from elsewhere, or a program's result,
/// is refused (and taken apart without recursion): above any configurable payload depth, since
/// XML's repeated elements add an array level per element level, and far below what the
/// conversions' recursion can bear.
pub const VALUE_DEPTH_GUARD: usize = 2 * InputLimits::MAX_MAX_DEPTH + 2;

/// How deep and how large a payload may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Nesting levels at most (the root object or element is level 1).
    pub max_depth: usize,
    /// Elements plus attributes (XML), or values (JSON), at most.
    pub max_nodes: usize,
}

impl InputLimits {
    /// 64 levels: partners' messages nest fewer than ten; far below what recursion can bear.
    pub const DEFAULT_MAX_DEPTH: usize = 64;
    /// 128 levels at most: `serde_json` refuses deeper documents itself.
    pub const MAX_MAX_DEPTH: usize = 128;
    pub const DEFAULT_MAX_NODES: usize = 100_000;
}

impl Default for InputLimits {
    fn default() -> Self {
        Self {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_nodes: Self::DEFAULT_MAX_NODES,
        }
    }
}

/// Which bound a payload broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Depth(usize),
    Nodes(usize),
}

impl Exceeded {
    pub fn code(self) -> &'static str {
        match self {
            Exceeded::Depth(_) => INPUT_TOO_DEEP,
            Exceeded::Nodes(_) => INPUT_TOO_MANY_NODES,
        }
    }
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Depth(limit) => write!(f, "the payload nests deeper than {limit} levels"),
            Exceeded::Nodes(limit) => write!(f, "the payload has more than {limit} nodes"),
        }
    }
}

/// Scans JSON text without parsing it: nesting depth and number of values, strings skipped
/// (escapes included). Malformed text is left for the parser to describe.
pub fn check_json_text(text: &[u8], limits: &InputLimits) -> Result<(), Exceeded> {
    let (mut depth, mut nodes) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    // Every container, and every element or member after the first (one per comma): about the
    // number of values, never fewer.
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limits.max_depth {
                    return Err(Exceeded::Depth(limits.max_depth));
                }
                nodes += 1;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => nodes += 1,
            _ => {}
        }
        if nodes > limits.max_nodes {
            return Err(Exceeded::Nodes(limits.max_nodes));
        }
    }
    Ok(())
}

/// The nesting depth of a JSON value (a scalar is 0, `[]` is 1), measured without recursion;
/// stops counting once past `cap`.
pub fn json_depth(value: &Value, cap: usize) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let d = d + 1;
        deepest = deepest.max(d);
        if deepest > cap {
            return deepest;
        }
        stack.extend(children.map(|c| (c, d)));
    }
    deepest
}

/// The nesting depth of a VRL value, measured without recursion; stops once past `cap`.
pub fn vrl_depth(value: &vrl::value::Value, cap: usize) -> usize {
    use vrl::value::Value as V;
    let mut deepest = 0;
    let mut stack: Vec<(&V, usize)> = vec![(value, 0)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &V>> = match v {
            V::Array(items) => Box::new(items.iter()),
            V::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let d = d + 1;
        deepest = deepest.max(d);
        if deepest > cap {
            return deepest;
        }
        stack.extend(children.map(|c| (c, d)));
    }
    deepest
}

/// Drops a JSON value of any depth without recursion: children are moved out onto a heap stack
/// before their parent is dropped.
pub fn drop_json(value: Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Drops a VRL value of any depth without recursion.
pub fn drop_vrl(value: vrl::value::Value) {
    use vrl::value::Value as V;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            V::Array(items) => stack.extend(items),
            V::Object(map) => stack.extend(map.into_values()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `depth` nested arrays, built without recursion.
    pub(crate) fn deep_json(depth: usize) -> Value {
        let mut v = Value::Null;
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        v
    }

    #[test]
    fn json_text_is_measured_without_parsing() {
        let limits = InputLimits {
            max_depth: 3,
            max_nodes: 10,
        };
        assert_eq!(check_json_text(br#"{"a":[{"b":1}]}"#, &limits), Ok(()));
        assert_eq!(
            check_json_text(br#"{"a":[{"b":[1]}]}"#, &limits),
            Err(Exceeded::Depth(3))
        );
        // Brackets inside strings, escaped quotes included, are text.
        assert_eq!(check_json_text(br#"{"a":"[[[[\"[[[["}"#, &limits), Ok(()));
        assert_eq!(
            check_json_text(b"[1,2,3,4,5,6,7,8,9,10,11]", &limits),
            Err(Exceeded::Nodes(10))
        );
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(
            check_json_text(deep.as_bytes(), &InputLimits::default()),
            Err(Exceeded::Depth(64))
        );
    }

    #[test]
    fn depth_is_measured_and_deep_values_dropped_without_recursion() {
        let deep = deep_json(200_000);
        assert_eq!(json_depth(&deep, 64), 65, "counting stops past the cap");
        assert_eq!(json_depth(&deep_json(5), 64), 5);
        assert_eq!(json_depth(&serde_json::json!({"a": [1, {"b": 2}]}), 64), 3);
        drop_json(deep);

        let mut v = vrl::value::Value::Null;
        for _ in 0..200_000 {
            v = vrl::value::Value::Array(vec![v]);
        }
        assert_eq!(vrl_depth(&v, 10), 11);
        drop_vrl(v);
    }
}
