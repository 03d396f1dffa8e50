pub mod apiserver;
pub mod dns;
pub mod echo_server;
pub mod node;
pub mod token;
