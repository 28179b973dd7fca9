//! TLS for the client and peer ports (rustls with the ring provider), configured as etcd is:
//! certificate files, or a self-signed certificate generated once into the data dir
//! (`--auto-tls`, `--peer-auto-tls`), and optionally client certificates checked against a CA.
//!
//! One port negotiates `h2` and `http/1.1` by ALPN, so gRPC, grpc-web, the JSON gateway and
//! `curl --http1.1` all work over the same TLS listener.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::flags::{parse_url, Flags};

/// How long a client may take to finish its TLS handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One side's TLS material, as the flags give it.
struct Material<'a> {
    /// `client` or `peer`: names the flags in errors and the auto-TLS directory.
    side: &'static str,
    cert: Option<&'a Path>,
    key: Option<&'a Path>,
    trusted_ca: Option<&'a Path>,
    client_cert_auth: bool,
    auto: bool,
    /// Hosts of the listen URLs, for a generated certificate's names.
    hosts: Vec<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

fn client_material(flags: &Flags) -> Material<'_> {
    let t = &flags.tls;
    Material {
        side: "client",
        cert: t.cert_file.as_deref(),
        key: t.key_file.as_deref(),
        trusted_ca: t.trusted_ca_file.as_deref(),
        client_cert_auth: t.client_cert_auth,
        auto: t.auto_tls,
        hosts: hosts(&flags.listen_client_urls),
    }
}

fn peer_material(flags: &Flags) -> Material<'_> {
    let t = &flags.tls;
    Material {
        side: "peer",
        cert: t.peer_cert_file.as_deref(),
        key: t.peer_key_file.as_deref(),
        trusted_ca: t.peer_trusted_ca_file.as_deref(),
        client_cert_auth: t.peer_client_cert_auth,
        auto: t.peer_auto_tls,
        hosts: hosts(&flags.listen_peer_urls),
    }
}

fn hosts(urls: &[String]) -> Vec<String> {
    urls.iter().filter_map(|u| parse_url(u).ok()).map(|u| u.host).filter(|h| !h.is_empty()).collect()
}

fn flag(side: &str, name: &str) -> String {
    match side {
        "peer" => format!("--peer-{name}"),
        _ => format!("--{name}"),
    }
}

impl Material<'_> {
    /// The certificate chain and key this side serves (and, for peers, presents when dialling),
    /// or `None` when TLS is not configured for it.
    fn identity(&self, data_dir: &Path, validity_years: u32) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
        let (cert, key) = match (self.cert, self.key) {
            (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
            (None, None) if self.auto => self_signed(&data_dir.join("fixtures").join(self.side), &self.hosts, validity_years)?,
            (None, None) => return Ok(None),
            _ => return Err(format!("{} and {} must be given together", flag(self.side, "cert-file"), flag(self.side, "key-file"))),
        };
        let chain = CertificateDer::pem_file_iter(&cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{} {}: {e}", flag(self.side, "cert-file"), cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{} {}: no certificate in the file", flag(self.side, "cert-file"), cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("{} {}: {e}", flag(self.side, "key-file"), key.display()))?;
        Ok(Some((chain, key)))
    }

    fn roots(&self) -> Result<Option<RootCertStore>, String> {
        let Some(path) = self.trusted_ca else { return Ok(None) };
        let what = || format!("{} {}", flag(self.side, "trusted-ca-file"), path.display());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", what()))? {
            let cert = cert.map_err(|e| format!("{}: {e}", what()))?;
            roots.add(cert).map_err(|e| format!("{}: {e}", what()))?;
        }
        if roots.is_empty() {
            return Err(format!("{}: no certificate in the file", what()));
        }
        Ok(Some(roots))
    }

    fn server_config(&self, data_dir: &Path, validity_years: u32) -> Result<Option<Arc<ServerConfig>>, String> {
        let Some((chain, key)) = self.identity(data_dir, validity_years)? else {
            if self.client_cert_auth {
                return Err(format!("{} needs {} and {}", flag(self.side, "client-cert-auth"), flag(self.side, "cert-file"), flag(self.side, "key-file")));
            }
            return Ok(None);
        };
        let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(|e| e.to_string())?;
        let builder = if self.client_cert_auth {
            let roots = self.roots()?.ok_or_else(|| format!("{} needs {}", flag(self.side, "client-cert-auth"), flag(self.side, "trusted-ca-file")))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build().map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| format!("{} certificate and key: {e}", self.side))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

/// The client port's TLS, for its `https://` listeners; `None` without certificates.
pub fn client_server_config(flags: &Flags) -> Result<Option<Arc<ServerConfig>>, String> {
    client_material(flags).server_config(&flags.data_dir(), flags.tls.self_signed_cert_validity)
}

/// The peer port's TLS, for its `https://` listeners.
pub fn peer_server_config(flags: &Flags) -> Result<Option<Arc<ServerConfig>>, String> {
    peer_material(flags).server_config(&flags.data_dir(), flags.tls.self_signed_cert_validity)
}

/// How this member dials other members' `https://` peer URLs: it presents its peer
/// certificate and verifies theirs against --peer-trusted-ca-file. With --peer-auto-tls and no
/// CA, as etcd, it does not verify them (the certificates are self-signed).
pub fn peer_client_config(flags: &Flags) -> Result<Option<Arc<ClientConfig>>, String> {
    let material = peer_material(flags);
    let Some((chain, key)) = material.identity(&flags.data_dir(), flags.tls.self_signed_cert_validity)? else {
        return Ok(None);
    };
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(|e| e.to_string())?;
    let builder = match material.roots()? {
        Some(roots) => builder.with_root_certificates(roots),
        None if material.auto => builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider()))),
        None => return Err("--peer-trusted-ca-file is needed to verify other members' certificates (or use --peer-auto-tls)".into()),
    };
    let mut config = builder.with_client_auth_cert(chain, key).map_err(|e| format!("peer certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// Writes a self-signed certificate and key into `dir` unless they are there already, and
/// returns their paths (etcd's `--auto-tls` keeps them across restarts the same way).
fn self_signed(dir: &Path, hosts: &[String], validity_years: u32) -> Result<(PathBuf, PathBuf), String> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let mut names: Vec<String> = hosts.iter().filter(|h| *h != "0.0.0.0" && *h != "::").cloned().collect();
    names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    names.sort();
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| format!("self-signed certificate: {e}"))?;
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "cairn");
    let year = current_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + validity_years.max(1) as i32, 12, 31);
    let key = rcgen::KeyPair::generate().map_err(|e| format!("self-signed key: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("self-signed certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(&cert_path, cert.pem()).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    tracing::info!("generated a self-signed certificate in {}", dir.display());
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The calendar year now (UTC), close enough for a certificate's validity window.
fn current_year() -> i32 {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    1970 + (days as f64 / 365.2425) as i32
}

/// --peer-auto-tls without a CA: the handshake still encrypts, but any certificate is taken,
/// as etcd does with self-signed peer certificates. Signatures are still checked.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
