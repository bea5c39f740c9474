//! Modbus device profiles: one TOML register map per device model, checked on
//! load, and the pure machinery around them. The agent plans its reads and
//! decodes what it read with this crate; the simulator encodes a live image of
//! the device with it. No I/O: texts in, data out.
//!
//! ```
//! use sitewatch_modbus_profile::{Plan, RegisterImage, Table, shipped};
//!
//! let profile = shipped::load("generic-xy-md02").unwrap().unwrap();
//! let plan = Plan::new(&profile);
//! assert_eq!(plan.len(), 1); // temperature and humidity in one FC 4 read
//!
//! let mut image = RegisterImage::new();
//! image.set_words(Table::Input, 1, &[0xFF9C, 555]); // -10.0 degC, 55.5 %RH
//! let decoded = profile.decode(&image);
//! assert_eq!(decoded.values[0].value, Some(-10.0));
//! assert_eq!(decoded.values[1].value, Some(0.555));
//! ```
//!
//! The schema is written up in `firmware-config/README.md`.
//!
//! # Layout
//!
//! - [`types`]: closed vocabularies: [`Table`], [`DataType`], [`Order`], [`Class`].
//! - [`spec`]: the file as written (serde types, unknown fields refused).
//! - [`profile`]: [`Profile::from_toml`] and validation into [`Point`]s.
//! - [`codec`]: registers <-> raw values in every word/byte order.
//! - [`image`]: [`RegisterImage`], a sparse map of what was read or is served.
//! - [`decode`]: image -> [`Decoded`] values, one per point, mapping onto
//!   `sitewatch_protocol::Reading`.
//! - [`rules`]: a value's state from its point's rules.
//! - [`encode`]: values -> image, for the simulator; healthy defaults.
//! - [`plan`]: [`Plan`]: fewest read requests within the device's limits;
//!   splitting a refused block.
//! - [`wire`]: bytes on the wire and serial bus time of a poll.
//! - [`shipped`]: the profiles of `firmware-config/profiles/`, compiled in.
//! - [`error`]: [`ProfileError`], [`EncodeError`], each with a `kind()`.

pub mod codec;
pub mod decode;
pub mod encode;
pub mod error;
pub mod image;
pub mod plan;
pub mod profile;
pub mod rules;
pub mod shipped;
pub mod spec;
pub mod types;
pub mod wire;

pub use decode::{Decoded, PointValue};
pub use encode::{NOT_AVAILABLE, healthy_value};
pub use error::{EncodeError, PointProblem, ProfileError};
pub use image::RegisterImage;
pub use plan::{Plan, ReadBlock, SplitError};
pub use profile::{Extract, Limits, Point, Profile, StateRules};
pub use spec::{DeviceSpec, SimValue};
pub use types::{Class, DataType, Order, Table};
