//! The API server's certificate authority and serving certificate, made on first start and
//! kept in `DATA_DIR/pki`. The CA signs the serving certificate; kubeconfigs carry the CA.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "weft-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

impl Pki {
    /// Loads the CA from `data_dir/pki` (making it on first start) and issues a serving
    /// certificate for `sans` unless the stored one already covers exactly those names.
    pub fn load_or_create(data_dir: &Path, sans: &[String]) -> Result<Pki> {
        let dir = data_dir.join("pki");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (ca_key_path, ca_cert_path) = (dir.join("ca.key"), dir.join("ca.crt"));
        let ca_key = if ca_key_path.exists() {
            KeyPair::from_pem(&read(&ca_key_path)?).context("parsing pki/ca.key")?
        } else {
            let key = KeyPair::generate().context("generating the CA key")?;
            let cert = ca_params()
                .self_signed(&key)
                .context("signing the CA certificate")?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            write_private(&ca_cert_path, &cert.pem())?;
            key
        };
        let ca_pem = read(&ca_cert_path)?;
        // The issuer is rebuilt from the same fixed parameters and the stored key, which is all
        // a signature needs (subject name, key identifier, key).
        let issuer = Issuer::new(ca_params(), ca_key);

        let (cert_path, key_path, sans_path) = (
            dir.join("apiserver.crt"),
            dir.join("apiserver.key"),
            dir.join("apiserver.sans"),
        );
        let wanted = sans.join("\n");
        let current = std::fs::read_to_string(&sans_path).unwrap_or_default();
        if !(cert_path.exists() && key_path.exists() && current == wanted) {
            let key = KeyPair::generate().context("generating the serving key")?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "weft-apiserver");
            params.distinguished_name = dn;
            params.subject_alt_names = sans
                .iter()
                .map(|s| match s.parse::<IpAddr>() {
                    Ok(ip) => Ok(SanType::IpAddress(ip)),
                    Err(_) => s
                        .clone()
                        .try_into()
                        .map(SanType::DnsName)
                        .with_context(|| format!("invalid TLS subject alternative name {s:?}")),
                })
                .collect::<Result<_>>()?;
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.not_before = rcgen::date_time_ymd(2024, 1, 1);
            params.not_after = rcgen::date_time_ymd(2124, 1, 1);
            let cert = params
                .signed_by(&key, &issuer)
                .context("signing the serving certificate")?;
            write_private(&key_path, &key.serialize_pem())?;
            write_private(&cert_path, &cert.pem())?;
            write_private(&sans_path, &wanted)?;
        }
        Ok(Pki {
            cert_pem: read(&cert_path)?,
            key_pem: read(&key_path)?,
            ca_pem,
            dir,
        })
    }

    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let certs = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("parsing the serving certificate")?;
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .context("parsing the serving key")?
            .context("no private key in pki/apiserver.key")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("TLS server certificate")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_persists_and_serving_cert_follows_sans() {
        let dir = tempfile::tempdir().unwrap();
        let sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let first = Pki::load_or_create(dir.path(), &sans).unwrap();
        let again = Pki::load_or_create(dir.path(), &sans).unwrap();
        assert_eq!(first.ca_pem, again.ca_pem);
        assert_eq!(first.cert_pem, again.cert_pem);
        let more = vec!["127.0.0.1".to_string(), "10.0.0.5".to_string()];
        let reissued = Pki::load_or_create(dir.path(), &more).unwrap();
        assert_eq!(first.ca_pem, reissued.ca_pem);
        assert_ne!(first.cert_pem, reissued.cert_pem);
        reissued.server_config().unwrap();
    }
}
