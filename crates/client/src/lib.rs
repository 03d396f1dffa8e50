//! The Weft API client: kubeconfig handling, a dynamic and a typed REST client, watch
//! streams and the informer (list + watch cache) node components are built on.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_client::ClientError> {
//! use weft_client::{Client, Kubeconfig, ListParams};
//! let kc = Kubeconfig::load_default(None)?;
//! let client = Client::from_kubeconfig(&kc)?;
//! let services = client
//!     .list(&weft_api::resources::SERVICE, Some("default"), &ListParams::default())
//!     .await?;
//! println!("{} services", services.items.len());
//! # Ok(()) }
//! ```

pub mod api;
pub mod client;
pub mod error;
pub mod informer;
pub mod kubeconfig;
pub mod watch;

pub use api::Api;
pub use client::{Client, ListParams, LogParams, ObjectList};
pub use error::{ClientError, Result};
pub use informer::{Event, Informer, Store};
pub use kubeconfig::{ClientConfig, Kubeconfig, KubeconfigError};
pub use watch::{WatchEvent, WatchStream};
