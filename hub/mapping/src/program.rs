//! A compiled VRL program, and turning VRL's diagnostics into file-and-line problems.

use std::path::{Path, PathBuf};

use vrl::compiler::{Function, Program as VrlProgram, TimeZone};
use vrl::diagnostic::{DiagnosticList, Formatter};
use vrl::prelude::ExpressionError;
use vrl::value::Value as VrlValue;

use crate::target::SharedMetadataTarget;

/// 1-based line of a byte offset in `source`.
pub(crate) fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

/// A VRL program read from a file.
pub struct Program {
    pub path: PathBuf,
    pub source: String,
    program: VrlProgram,
    timezone: TimeZone,
}

/// A compile problem: file, line and VRL's own explanation.
#[derive(Debug, Clone)]
pub struct CompileProblem {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// A program that stopped: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError {
    pub line: Option<usize>,
    pub message: String,
}

impl Program {
    /// Compiles `source`. Warnings count as problems: a mapping carries citizens' data, and a
    /// warning (an unused result, an unhandled error) is usually a bug.
    pub fn compile(
        path: &Path,
        source: String,
        functions: &[Box<dyn Function>],
    ) -> Result<Self, Vec<CompileProblem>> {
        let problems = |list: DiagnosticList, source: &str| -> Vec<CompileProblem> {
            list.iter()
                .map(|d| CompileProblem {
                    path: path.to_path_buf(),
                    line: d
                        .labels
                        .iter()
                        .find(|l| l.primary)
                        .or_else(|| d.labels.first())
                        .map(|l| line_of(source, l.span.start())),
                    message: Formatter::new(source, vec![d.clone()])
                        .to_string()
                        .trim()
                        .to_string(),
                })
                .collect()
        };
        match vrl::compiler::compile(&source, functions) {
            Ok(result) if result.warnings.is_empty() => Ok(Self {
                path: path.to_path_buf(),
                program: result.program,
                source,
                // Partners send Shanghai local times without an offset; read them as such.
                timezone: TimeZone::parse("Asia/Shanghai").expect("a known time zone"),
            }),
            Ok(result) => Err(problems(result.warnings, &source)),
            Err(list) => Err(problems(list, &source)),
        }
    }

    /// Runs the program on `input` (the event, `.`) with `metadata` (`%`, an object, shared by
    /// every run and read by reference) and this run's own top-level metadata fields `overlay`
    /// (an object); the event after the program is the result.
    pub fn run(
        &self,
        input: serde_json::Value,
        metadata: &VrlValue,
        overlay: VrlValue,
    ) -> Result<serde_json::Value, RunError> {
        let mut target = SharedMetadataTarget::new(VrlValue::from(input), metadata, overlay);
        let mut runtime = vrl::compiler::runtime::Runtime::default();
        let resolved = runtime.resolve(&mut target, &self.program, &self.timezone);
        // Converting the result back recurses: a result deeper than any payload may be is
        // refused and taken apart without recursion.
        let cap = crate::limits::VALUE_DEPTH_GUARD;
        if crate::limits::vrl_depth(&target.value, cap) > cap {
            crate::limits::drop_vrl(std::mem::replace(&mut target.value, VrlValue::Null));
            return Err(RunError {
                line: None,
                message: format!("the result nests deeper than {cap} levels"),
            });
        }
        match resolved {
            Ok(_) => serde_json::to_value(&target.value).map_err(|e| RunError {
                line: None,
                message: format!("the result is not representable as JSON: {e}"),
            }),
            Err(terminate) => Err(self.run_error(terminate.get_expression_error())),
        }
    }

    fn run_error(&self, e: ExpressionError) -> RunError {
        use vrl::diagnostic::DiagnosticMessage;
        let span = match &e {
            ExpressionError::Abort { span, .. }
            | ExpressionError::Fallible { span }
            | ExpressionError::Missing { span, .. } => Some(*span),
            ExpressionError::Error { labels, .. } => labels
                .iter()
                .find(|l| l.primary)
                .or_else(|| labels.first())
                .map(|l| l.span),
            _ => None,
        };
        let message = match &e {
            ExpressionError::Abort {
                message: Some(m), ..
            } => m.clone(),
            other => other.message(),
        };
        RunError {
            line: span.map(|s| line_of(&self.source, s.start())),
            message,
        }
    }
}
