//! The object model: kinds, scores, durations, agent names, schemas, validation and
//! the YAML codec; and the records etcd holds besides the spec (`records`). Pure: no
//! IO, no tokio, no clock.

pub mod agent;
pub mod cluster;
pub mod constraint;
pub mod duration;
pub mod fence_options;
pub mod manifest;
pub mod names;
pub mod object;
pub mod ocf;
pub mod params;
pub mod path;
pub mod records;
pub mod resource;
pub mod schema;
pub mod score;
pub mod strftime;
pub mod timestamp;
pub mod validate;
pub mod yaml;

pub use duration::Duration;
pub use names::{Name, ParamValue};
pub use object::{API_VERSION, Kind, Object, ObjectKey, ObjectMeta, Spec};
pub use params::Param;
pub use path::FieldPath;
pub use score::Score;
pub use timestamp::Timestamp;
pub use validate::ObjectSet;
