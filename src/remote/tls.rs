//! TLS for outbound connections: one client configuration per connection,
//! built around a verifier that always checks the certificate chain and the
//! host name and records the answer, and, depending on the transport's
//! policy, either insists on it (`verify`) or only reports it (`may`,
//! `encrypt`: encryption against a passive listener, the usual state of
//! MTA-to-MTA TLS, where most certificates would not verify). The answer is
//! Exim's `CV=yes|no`.
//!
//! Roots: the PEM file named by `tls_verify_certificates`, or the system's
//! bundle (Debian's `/etc/ssl/certs/ca-certificates.crt`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// Where Debian (and most distributions) keep the system's CA bundle.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How much a transport insists on TLS (its `tls` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// STARTTLS when offered, certificate not required to verify; clear
    /// text when not offered or when the handshake fails (reconnecting).
    May,
    /// TLS required, certificate not required to verify: defer otherwise.
    Encrypt,
    /// TLS required with a chain to a trusted root and the host's name.
    Verify,
}

/// A root store read once per file.
pub fn roots(path: Option<&Path>) -> Result<Arc<RootCertStore>, String> {
    static SYSTEM: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    match path {
        None => Ok(SYSTEM
            .get_or_init(|| {
                Arc::new(
                    read_roots(Path::new(SYSTEM_ROOTS)).unwrap_or_else(|_| RootCertStore::empty()),
                )
            })
            .clone()),
        Some(p) => read_roots(p).map(Arc::new),
    }
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("{}: {e}", path.display()))?;
        // A bundle may hold a certificate webpki cannot use as a root;
        // the others still count.
        let _ = store.add(c);
    }
    if store.is_empty() {
        return Err(format!("{}: no usable CA certificate", path.display()));
    }
    Ok(store)
}

/// The verification result of one connection: 0 before a handshake.
#[derive(Debug, Default)]
pub struct Verified(AtomicU8);

impl Verified {
    const YES: u8 = 1;
    const NO: u8 = 2;

    /// Whether the chain and name verified (false before a handshake).
    pub fn yes(&self) -> bool {
        self.0.load(Ordering::Relaxed) == Self::YES
    }

    fn set(&self, ok: bool) {
        self.0
            .store(if ok { Self::YES } else { Self::NO }, Ordering::Relaxed);
    }
}

/// Verifies as webpki does, records the answer, and accepts an
/// unverifiable certificate unless the policy is `Verify`. Handshake
/// signatures are always checked: an unverified session is still
/// encrypted to the holder of the presented key.
#[derive(Debug)]
struct Recording {
    /// None when there is no root to verify against (no system bundle):
    /// every certificate is then unverified.
    inner: Option<Arc<WebPkiServerVerifier>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
    required: bool,
    result: Arc<Verified>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let r = match &self.inner {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        };
        self.result.set(r.is_ok());
        match r {
            Ok(v) => Ok(v),
            Err(e) if self.required => Err(e),
            Err(_) => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What a transport's TLS needs, built once at startup.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub policy: Policy,
    /// A configured CA file, read at load (so that `-bV` checks it); None:
    /// the system's bundle, read at the first connection (commands that
    /// never connect, such as `sluice deliver`, do not pay for it).
    roots: Option<Arc<RootCertStore>>,
    /// The file the roots came from, for error messages.
    pub roots_file: PathBuf,
}

impl ClientTls {
    pub fn new(policy: Policy, verify_certificates: Option<&Path>) -> Result<ClientTls, String> {
        // Unverified policies still report CV=: a missing system bundle
        // only means CV=no for them.
        let roots = match verify_certificates {
            Some(p) => Some(roots(Some(p))?),
            None => None,
        };
        Ok(ClientTls {
            policy,
            roots,
            roots_file: verify_certificates
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(SYSTEM_ROOTS)),
        })
    }

    /// A configuration for one connection, and where its verification
    /// result will be.
    pub fn connection(&self) -> Result<(Arc<ClientConfig>, Arc<Verified>), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let result = Arc::new(Verified::default());
        let roots = match &self.roots {
            Some(r) => r.clone(),
            None => roots(None)?,
        };
        let inner = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("{}: {e}", self.roots_file.display()))?,
            )
        };
        if inner.is_none() && self.policy == Policy::Verify {
            return Err(format!(
                "{}: no CA certificate to verify against",
                self.roots_file.display()
            ));
        }
        let verifier = Arc::new(Recording {
            inner,
            algorithms: provider.signature_verification_algorithms,
            required: self.policy == Policy::Verify,
            result: result.clone(),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok((Arc::new(config), result))
    }
}
