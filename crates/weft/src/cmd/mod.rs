pub mod apiserver;
pub mod token;
