//! Kubernetes-shaped objects for Weft: types with Kubernetes' exact field names, strict
//! decoding that names the offending field path, defaulting, validation and label selectors.

pub mod codec;
pub mod core;
pub mod defaults;
pub mod meta;
pub mod networking;
pub mod printers;
pub mod resources;
pub mod selector;
mod util;
pub mod validation;
pub mod weft;

pub use codec::{decode_documents, parse_documents, AnyObject, DecodeError};
pub use meta::{Condition, IntOrString, ListMeta, ObjectMeta, Status};
pub use resources::{ResourceInfo, RESOURCES};
pub use selector::LabelSelector;
pub use validation::{FieldError, ValidationErrors};

/// A kind the API server stores. Implemented by every top-level object type.
pub trait Object:
    serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static
{
    const INFO: &'static ResourceInfo;
    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
}
