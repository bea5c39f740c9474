//! Errors of loading a profile and of encoding values into a register image.

use thiserror::Error;

/// Why a profile was refused. Every variant names the profile file (its
/// origin, as given to [`crate::Profile::from_toml`]) and, where one is at
/// fault, the point.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ProfileError {
    /// Not TOML, or a section or field the schema does not know.
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    /// The `[limits]` section asks for something Modbus cannot do.
    #[error("{file}: [limits]: {message}")]
    Limits { file: String, message: String },
    /// One point is wrong, alone or against another.
    #[error("{file}: point `{point}`: {problem}")]
    Point {
        file: String,
        point: String,
        problem: PointProblem,
    },
}

impl ProfileError {
    /// A bounded label for metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            ProfileError::Syntax { .. } => "syntax",
            ProfileError::Limits { .. } => "limits",
            ProfileError::Point { problem, .. } => problem.kind(),
        }
    }

    /// The point at fault, if one is.
    pub fn point(&self) -> Option<&str> {
        match self {
            ProfileError::Point { point, .. } => Some(point),
            _ => None,
        }
    }
}

/// What is wrong with one point.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PointProblem {
    #[error("{0}")]
    Invalid(String),
    #[error("another point is also named so")]
    DuplicateName,
    #[error("unknown table `{0}` (expected coil, discrete, holding or input)")]
    UnknownTable(String),
    #[error("unknown type `{0}` (expected bool, u16, i16, u32, i32, u64, i64, f32, f64 or string)")]
    UnknownType(String),
    #[error("unknown word/byte order `{0}` (expected ABCD, CDAB, BADC or DCBA)")]
    UnknownOrder(String),
    #[error("type `{data_type}` cannot be read from the {table} table (bits hold only bool)")]
    TypeNotInTable {
        data_type: &'static str,
        table: &'static str,
    },
    #[error("a string needs `length` (in registers, two characters each)")]
    StringWithoutLength,
    #[error("`length` applies only to strings")]
    LengthWithoutString,
    #[error("address {address} with width {width} runs past 65535")]
    AddressOutOfRange { address: u32, width: u16 },
    #[error("bit {bit} is past the {width}-bit width of the value")]
    BitPastWidth { bit: u8, width: u8 },
    #[error("{0}")]
    Conflict(&'static str),
    #[error("overlaps point `{0}` (only views of the very same registers may share them)")]
    Overlap(String),
    #[error("reads the same registers the same way as point `{0}`")]
    Duplicate(String),
    #[error("q `{0}` is not a snake_case quantity name")]
    BadQuantity(String),
    #[error("a numeric point needs `q`")]
    MissingQuantity,
    #[error("enum code `{0}` is not an integer")]
    BadEnumCode(String),
    #[error("function code {0} is not among the device's `limits.functions`")]
    FunctionNotAllowed(u8),
    #[error("{width} is wider than one request may read ({max})")]
    TooWide { width: u16, max: u16 },
}

impl PointProblem {
    /// A bounded label for metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            PointProblem::Invalid(_) => "invalid",
            PointProblem::DuplicateName => "duplicate_name",
            PointProblem::UnknownTable(_) => "unknown_table",
            PointProblem::UnknownType(_) => "unknown_type",
            PointProblem::UnknownOrder(_) => "unknown_order",
            PointProblem::TypeNotInTable { .. } => "type_not_in_table",
            PointProblem::StringWithoutLength => "string_without_length",
            PointProblem::LengthWithoutString => "length_without_string",
            PointProblem::AddressOutOfRange { .. } => "address_out_of_range",
            PointProblem::BitPastWidth { .. } => "bit_past_width",
            PointProblem::Conflict(_) => "conflict",
            PointProblem::Overlap(_) => "overlap",
            PointProblem::Duplicate(_) => "duplicate",
            PointProblem::BadQuantity(_) => "bad_quantity",
            PointProblem::MissingQuantity => "missing_quantity",
            PointProblem::BadEnumCode(_) => "bad_enum_code",
            PointProblem::FunctionNotAllowed(_) => "function_not_allowed",
            PointProblem::TooWide { .. } => "too_wide",
        }
    }
}

/// Why a value could not be written into a register image (simulator side).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EncodeError {
    #[error("no point named `{0}`")]
    UnknownPoint(String),
    #[error("point `{point}`: {value} does not fit its type once scaled")]
    OutOfRange { point: String, value: f64 },
    #[error("point `{point}`: has no `not_available` value to write")]
    NoSentinel { point: String },
    #[error("point `{point}`: expects {expected}")]
    WrongKind {
        point: String,
        expected: &'static str,
    },
}

impl EncodeError {
    /// A bounded label for metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            EncodeError::UnknownPoint(_) => "unknown_point",
            EncodeError::OutOfRange { .. } => "out_of_range",
            EncodeError::NoSentinel { .. } => "no_sentinel",
            EncodeError::WrongKind { .. } => "wrong_kind",
        }
    }
}
