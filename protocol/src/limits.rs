//! Limits every decoder enforces, so that one bad publisher cannot make the
//! collector allocate without bound or emit unbounded label values.

/// Largest payload accepted, in bytes (256 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Site and host names: 1 to this many characters of `[a-z0-9_.-]`.
pub const MAX_SITE_HOST_LEN: usize = 64;
/// A source name (`src`), e.g. `ipmi`.
pub const MAX_SRC_LEN: usize = 64;
/// A device name within a source (`dev`), e.g. a BMC, a disk or a Modbus unit.
pub const MAX_DEV_LEN: usize = 128;
/// A sensor's own name (`name`), free text.
pub const MAX_SENSOR_NAME_LEN: usize = 128;
/// A quantity name (`q`).
pub const MAX_QUANTITY_LEN: usize = 128;
/// Extra labels on one reading or event.
pub const MAX_LABELS: usize = 8;
/// A label key.
pub const MAX_LABEL_KEY_LEN: usize = 64;
/// A label value.
pub const MAX_LABEL_VALUE_LEN: usize = 256;
/// An event's type.
pub const MAX_EVENT_TYPE_LEN: usize = 64;
/// An event's human message.
pub const MAX_EVENT_MESSAGE_LEN: usize = 1024;
/// A `boot` (state, readings and events).
pub const MAX_BOOT_LEN: usize = 64;
/// An event's `id`.
pub const MAX_EVENT_ID_LEN: usize = 128;
/// Label keys a reading may not carry: the collector sets them itself.
pub const RESERVED_LABEL_KEYS: [&str; 5] = ["site", "host", "src", "dev", "sensor"];
/// The shortest interval an agent may announce (heartbeat or a source's), ms.
pub const MIN_INTERVAL_MS: u64 = 100;
/// The longest: one day. A series of a source announced at 10^15 ms would never
/// go stale, and a heartbeat that long would never let an agent be lost.
pub const MAX_INTERVAL_MS: u64 = 86_400_000;
/// Sources one state message may list. An agent has a handful; thousands would
/// only cost the collector at every scrape and evaluation.
pub const MAX_SOURCES: usize = 64;
/// Entries in each map of a collector's view (sites, brokers, peers).
pub const MAX_VIEW_ENTRIES: usize = 1024;
