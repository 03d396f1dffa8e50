//! The client trusts exactly the kubeconfig's CA: a server certificate for 127.0.0.1
//! signed by it is accepted, anything else is refused with an error that says why.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use weft_client::{Client, ClientError, Kubeconfig};

fn new_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Serves one JSON answer over TLS with a certificate for 127.0.0.1 signed by `ca`.
async fn serve(ca: &CertifiedIssuer<'static, KeyPair>) -> String {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let app = Router::new().route(
        "/api/v1/namespaces/{ns}",
        get(|| async {
            axum::Json(serde_json::json!({"kind": "Namespace", "metadata": {"name": "default"}}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                // Handshake failures are the point of some tests; ignore them here.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                }
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

#[tokio::test]
async fn trusts_exactly_the_configured_ca() {
    let ca = new_ca();
    let url = serve(&ca).await;
    let info = &weft_api::resources::NAMESPACE;

    // Through a kubeconfig, as weftctl and the node components will.
    let kc = Kubeconfig::new_single(&url, Some(ca.pem().as_bytes()), "tok", "weft");
    let client = Client::from_kubeconfig(&kc).unwrap();
    let ns = client.get(info, None, "default").await.unwrap();
    assert_eq!(ns["metadata"]["name"], "default");

    // No CA: no roots at all, so the server is not trusted.
    let client = Client::new(&url, "tok", None).unwrap();
    let err = client.get(info, None, "default").await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");

    // Another CA: refused as well.
    let other = new_ca();
    let client = Client::new(&url, "tok", Some(other.pem().as_bytes())).unwrap();
    let err = client.get(info, None, "default").await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}
