//! The W3C `traceparent` header (Trace Context, level 1), version `00`:
//! `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase.
//!
//! Parsing is strict, as the recommendation asks of a receiver: anything but version `00` in
//! exactly that shape, an all-zero trace id or parent id, or upper-case hex is refused, and the
//! caller starts a new trace instead (never an error to whoever sent it).

use std::fmt;
use std::str::FromStr;

/// Length of a version-00 `traceparent` value.
const LEN: usize = 55;
/// The `sampled` bit of the trace flags.
const SAMPLED: u8 = 0x01;

/// One hop's W3C trace context: the trace it belongs to, the span that is the parent of
/// whatever receives it, and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

/// Why a `traceparent` value was refused. [`TraceParentError::code`] is a stable label for
/// metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceParentError {
    /// Not 55 characters with dashes at 2, 35 and 52.
    Shape,
    /// A version other than `00` (including the forbidden `ff`).
    Version,
    /// A field holds something other than lowercase hex digits.
    NotHex,
    /// The trace id is all zeros.
    ZeroTraceId,
    /// The parent id is all zeros.
    ZeroParentId,
}

impl TraceParentError {
    /// Stable label: `shape`, `version`, `not_hex`, `zero_trace_id`, `zero_parent_id`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Shape => "shape",
            Self::Version => "version",
            Self::NotHex => "not_hex",
            Self::ZeroTraceId => "zero_trace_id",
            Self::ZeroParentId => "zero_parent_id",
        }
    }
}

impl std::error::Error for TraceParentError {}

impl fmt::Display for TraceParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Shape => "not of the form 00-<32 hex>-<16 hex>-<2 hex>",
            Self::Version => "version is not 00",
            Self::NotHex => "a field is not lowercase hex",
            Self::ZeroTraceId => "the trace id is all zeros",
            Self::ZeroParentId => "the parent id is all zeros",
        })
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    loop {
        // The operating system's generator; it does not fail on the platforms the hub runs on.
        if getrandom::fill(&mut b).is_err() {
            // Extremely unlikely; fall back to time and a counter rather than panic.
            use std::sync::atomic::{AtomicU64, Ordering};
            static COUNTER: AtomicU64 = AtomicU64::new(1);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let mix = nanos ^ u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)) << 64;
            for (i, byte) in b.iter_mut().enumerate() {
                *byte = (mix >> ((i % 16) * 8)) as u8;
            }
        }
        if b.iter().any(|&x| x != 0) {
            return b;
        }
    }
}

fn hex_field<const N: usize>(s: &str) -> Result<[u8; N], TraceParentError> {
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 {
        return Err(TraceParentError::Shape);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TraceParentError::NotHex),
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(bytes[2 * i])? << 4 | digit(bytes[2 * i + 1])?;
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl TraceParent {
    /// Parses a header value strictly (see the module documentation).
    pub fn parse(value: &str) -> Result<Self, TraceParentError> {
        let b = value.as_bytes();
        if b.len() != LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' || !value.is_ascii() {
            return Err(TraceParentError::Shape);
        }
        let version = hex_field::<1>(&value[0..2])?;
        if version != [0] {
            return Err(TraceParentError::Version);
        }
        let trace_id = hex_field::<16>(&value[3..35])?;
        let parent_id = hex_field::<8>(&value[36..52])?;
        let [flags] = hex_field::<1>(&value[53..55])?;
        if trace_id == [0; 16] {
            return Err(TraceParentError::ZeroTraceId);
        }
        if parent_id == [0; 8] {
            return Err(TraceParentError::ZeroParentId);
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The start of a new trace: random trace id and parent id, sampled.
    pub fn new_root() -> Self {
        Self {
            trace_id: random(),
            parent_id: random(),
            flags: SAMPLED,
        }
    }

    /// The next hop of the same trace: same trace id and flags, a new random parent id.
    pub fn child(&self) -> Self {
        Self {
            parent_id: random(),
            ..*self
        }
    }

    /// From raw parts; `None` if an id is all zeros.
    pub fn from_parts(trace_id: [u8; 16], parent_id: [u8; 8], flags: u8) -> Option<Self> {
        (trace_id != [0; 16] && parent_id != [0; 8]).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller (may have) recorded this trace.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The trace id as 32 lowercase hex digits (the `trace_id` log field).
    pub fn trace_id_hex(&self) -> String {
        self.trace_id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The parent id as 16 lowercase hex digits.
    pub fn parent_id_hex(&self) -> String {
        self.parent_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for TraceParent {
    /// The header value, `00-<trace id>-<parent id>-<flags>`. Flags are written as received:
    /// bits this version does not define are kept, as the recommendation allows for `00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        write_hex(f, &self.trace_id)?;
        f.write_str("-")?;
        write_hex(f, &self.parent_id)?;
        write!(f, "-{:02x}", self.flags)
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Whether a `tracestate` value may be carried on: at most 512 characters of printable ASCII
/// (its members are opaque to the hub; a broken one is dropped, as the recommendation allows).
pub fn tracestate_ok(value: &str) -> bool {
    !value.is_empty() && value.len() <= 512 && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_value_parses_and_prints_back() {
        let tp = TraceParent::parse(VALID).unwrap();
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id_hex(), "00f067aa0ba902b7");
        assert!(tp.sampled());
        assert_eq!(tp.to_string(), VALID);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!TraceParent::parse(unsampled).unwrap().sampled());
        // Flags this version does not define are kept.
        let other = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09";
        assert_eq!(TraceParent::parse(other).unwrap().to_string(), other);
    }

    #[test]
    fn every_invalid_form_is_refused_with_its_reason() {
        use TraceParentError as E;
        let cases: &[(&str, E)] = &[
            ("", E::Shape),
            ("garbage", E::Shape),
            // One character short / long.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                E::Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                E::Shape,
            ),
            // A later version's extra field is not accepted as version 00.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab",
                E::Shape,
            ),
            // Wrong separators.
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                E::Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
                E::Shape,
            ),
            // Surrounding space is not trimmed.
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                E::Shape,
            ),
            // Versions.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Version,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Version,
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::NotHex,
            ),
            // Upper case and non-hex in each field.
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                E::NotHex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                E::NotHex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
                E::NotHex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
                E::NotHex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9 2b7-01",
                E::NotHex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
                E::NotHex,
            ),
            // All-zero ids.
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                E::ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                E::ZeroParentId,
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(TraceParent::parse(value), Err(*expected), "{value:?}");
        }
        // Multi-byte characters never reach the byte slicing.
        let wide = "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01";
        assert!(TraceParent::parse(wide).is_err());
    }

    #[test]
    fn a_root_is_valid_and_a_child_keeps_the_trace() {
        let root = TraceParent::new_root();
        assert_eq!(TraceParent::parse(&root.to_string()), Ok(root));
        assert!(root.sampled());
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.parent_id(), root.parent_id());
        assert_eq!(child.flags(), root.flags());
        assert_ne!(TraceParent::new_root().trace_id(), root.trace_id());
    }

    #[test]
    fn tracestate_limits() {
        assert!(tracestate_ok("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
        assert!(!tracestate_ok(""));
        assert!(!tracestate_ok(&"a".repeat(513)));
        assert!(!tracestate_ok("a=b\nc=d"));
    }
}
