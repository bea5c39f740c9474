//! The closed vocabularies of a profile: tables, value types, word/byte orders
//! and device classes.

use serde::Deserialize;

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Read/write bits, function code 1 (`0xxxx` in 1-based notation).
    Coil,
    /// Read-only bits, function code 2 (`1xxxx`).
    Discrete,
    /// Read/write 16-bit registers, function code 3 (`4xxxx`).
    Holding,
    /// Read-only 16-bit registers, function code 4 (`3xxxx`).
    Input,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Coil, Table::Discrete, Table::Holding, Table::Input];

    pub fn parse(s: &str) -> Option<Table> {
        match s {
            "coil" => Some(Table::Coil),
            "discrete" => Some(Table::Discrete),
            "holding" => Some(Table::Holding),
            "input" => Some(Table::Input),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::Discrete => "discrete",
            Table::Holding => "holding",
            Table::Input => "input",
        }
    }

    /// The function code that reads this table.
    pub fn read_function(self) -> u8 {
        match self {
            Table::Coil => 1,
            Table::Discrete => 2,
            Table::Holding => 3,
            Table::Input => 4,
        }
    }

    /// Whether the table holds single bits rather than 16-bit registers.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }
}

/// How a point's registers are read as a number or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// ASCII, two characters per register; `length` registers long.
    String,
}

impl DataType {
    pub fn parse(s: &str) -> Option<DataType> {
        Some(match s {
            "bool" => DataType::Bool,
            "u16" => DataType::U16,
            "i16" => DataType::I16,
            "u32" => DataType::U32,
            "i32" => DataType::I32,
            "u64" => DataType::U64,
            "i64" => DataType::I64,
            "f32" => DataType::F32,
            "f64" => DataType::F64,
            "string" => DataType::String,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::String => "string",
        }
    }

    /// Registers taken by one value (strings: see [`crate::Point::width`]).
    pub fn registers(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 | DataType::String => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }

    /// Bits in an integer value, for bit extraction; `None` for the others.
    pub fn integer_bits(self) -> Option<u8> {
        match self {
            DataType::U16 | DataType::I16 => Some(16),
            DataType::U32 | DataType::I32 => Some(32),
            DataType::U64 | DataType::I64 => Some(64),
            _ => None,
        }
    }

    pub fn is_signed(self) -> bool {
        matches!(self, DataType::I16 | DataType::I32 | DataType::I64)
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::F32 | DataType::F64)
    }
}

/// Word and byte order of a multi-byte value, in Telegraf's notation: the
/// letters name the value's bytes from most to least significant, in the order
/// they arrive on the wire. `ABCD` is big-endian throughout (the Modbus norm),
/// `CDAB` swaps words (low word first), `BADC` swaps the bytes within each
/// word, `DCBA` is little-endian throughout. For 16-bit values only the byte
/// swap matters; for 64-bit values the same two swaps apply to four words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Order {
    #[default]
    Abcd,
    Cdab,
    Badc,
    Dcba,
}

impl Order {
    pub fn parse(s: &str) -> Option<Order> {
        match s {
            "ABCD" | "AB" => Some(Order::Abcd),
            "CDAB" => Some(Order::Cdab),
            "BADC" | "BA" => Some(Order::Badc),
            "DCBA" => Some(Order::Dcba),
            _ => None,
        }
    }

    /// Whether the least significant word comes first.
    pub fn words_swapped(self) -> bool {
        matches!(self, Order::Cdab | Order::Dcba)
    }

    /// Whether each register carries its low byte first.
    pub fn bytes_swapped(self) -> bool {
        matches!(self, Order::Badc | Order::Dcba)
    }
}

/// What kind of equipment a profile describes; profiles live in a folder of
/// that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Ups,
    Generator,
    Cooling,
    Environment,
    Io,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ups => "ups",
            Class::Generator => "generator",
            Class::Cooling => "cooling",
            Class::Environment => "environment",
            Class::Io => "io",
        }
    }

    /// The quantities every profile of this class must yield, so that the
    /// collector's power and cooling signals work with any vendor.
    pub fn required_quantities(self) -> &'static [&'static str] {
        use sitewatch_protocol::quantity as q;
        match self {
            Class::Ups => &[
                q::UPS_ON_BATTERY,
                q::UPS_BATTERY_LOW,
                q::UPS_BATTERY_CHARGE_RATIO,
                q::UPS_BATTERY_RUNTIME_SECONDS,
                q::UPS_LOAD_RATIO,
                q::MAINS_AVAILABLE,
            ],
            Class::Generator => &[
                q::GENERATOR_RUNNING,
                q::GENERATOR_FAULT,
                q::MAINS_AVAILABLE,
                q::GENERATOR_FUEL_RATIO,
            ],
            Class::Cooling => &[
                q::COOLING_UNIT_RUNNING,
                q::COOLING_UNIT_ALARM,
                q::SUPPLY_AIR_TEMPERATURE_CELSIUS,
                q::RETURN_AIR_TEMPERATURE_CELSIUS,
            ],
            Class::Environment | Class::Io => &[],
        }
    }
}
