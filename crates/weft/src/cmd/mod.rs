pub mod apiserver;
pub mod echo_server;
pub mod node;
pub mod token;
