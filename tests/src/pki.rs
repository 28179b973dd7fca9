//! Throwaway certificates for TLS tests: a CA, a server/peer certificate for 127.0.0.1 signed
//! by it, a client certificate with a CommonName, and a client certificate from a CA nobody
//! trusts.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use tempfile::TempDir;

/// A PEM certificate and its key, on disk.
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Pki {
    dir: TempDir,
    /// The CA certificate (PEM) servers and clients trust.
    pub ca: PathBuf,
    /// For 127.0.0.1 and localhost; usable as a server and as a client (peers are both).
    pub server: Pair,
    /// A client certificate with CommonName `client_cn`.
    pub client: Pair,
    pub client_cn: String,
    /// Signed by a CA the servers do not trust.
    pub stranger: Pair,
}

impl Pki {
    pub fn generate() -> anyhow::Result<Pki> {
        let dir = tempfile::Builder::new().prefix("cairn-tests-pki-").tempdir()?;
        let (ca_params, ca_key) = ca("cairn test CA")?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca_cert.pem())?;

        let write = |name: &str, params: CertificateParams, issuer: &rcgen::Certificate, issuer_key: &KeyPair| -> anyhow::Result<Pair> {
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, issuer, issuer_key)?;
            let pair = Pair { cert: dir.path().join(format!("{name}.pem")), key: dir.path().join(format!("{name}-key.pem")) };
            std::fs::write(&pair.cert, cert.pem())?;
            std::fs::write(&pair.key, key.serialize_pem())?;
            Ok(pair)
        };

        let server = write("server", leaf("cairn test server", &["127.0.0.1", "localhost"])?, &ca_cert, &ca_key)?;
        let client_cn = "alice".to_string();
        let client = write("client", leaf(&client_cn, &[])?, &ca_cert, &ca_key)?;
        let (other_params, other_key) = ca("somebody else's CA")?;
        let other = other_params.self_signed(&other_key)?;
        let stranger = write("stranger", leaf("mallory", &[])?, &other, &other_key)?;
        Ok(Pki { dir, ca: ca_path, server, client, client_cn, stranger })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Client-port TLS flags (etcd's names) requiring client certificates.
    pub fn client_mtls_flags(&self) -> Vec<String> {
        vec![
            format!("--cert-file={}", self.server.cert.display()),
            format!("--key-file={}", self.server.key.display()),
            format!("--trusted-ca-file={}", self.ca.display()),
            "--client-cert-auth".to_string(),
        ]
    }

    /// Peer TLS flags: members verify each other against the CA, both ways.
    pub fn peer_flags(&self) -> Vec<String> {
        vec![
            format!("--peer-cert-file={}", self.server.cert.display()),
            format!("--peer-key-file={}", self.server.key.display()),
            format!("--peer-trusted-ca-file={}", self.ca.display()),
            "--peer-client-cert-auth".to_string(),
        ]
    }
}

fn ca(name: &str) -> anyhow::Result<(CertificateParams, KeyPair)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok((params, KeyPair::generate()?))
}

fn leaf(common_name: &str, names: &[&str]) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    // Go checks extended key usage: peers act as servers and as clients.
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}
