//! TLS for the daemon: the certificate and key named in the configuration,
//! or, when none is named, a self-signed certificate made on first start and
//! kept in the data directory (so clients that pin it see the same one
//! after a restart).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;
use smtp::session::TlsInfo;

/// File names of the generated certificate and key under `data_dir/tls/`.
const GENERATED_CERT: &str = "tls/selfsigned-cert.pem";
const GENERATED_KEY: &str = "tls/selfsigned-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("making a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the server's TLS configuration.
pub fn server_config(cfg: &Config) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = match (&cfg.smtp.tls_certificate, &cfg.smtp.tls_privatekey) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => ensure_self_signed(&cfg.data_dir, &cfg.primary_hostname)?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| TlsError::File {
            path: cert_path.clone(),
            why: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::File {
            path: cert_path.clone(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::File {
            path: cert_path,
            why: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| TlsError::File {
        path: key_path.clone(),
        why: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// Returns the generated certificate and key, making them if missing.
fn ensure_self_signed(data_dir: &Path, host: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = data_dir.join(GENERATED_CERT);
    let key = data_dir.join(GENERATED_KEY);
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let made = rcgen::generate_simple_self_signed(vec![host.to_string(), "localhost".to_string()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let write = |path: &Path, text: &str| -> io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        durable::replace_file(
            &durable::RealIo,
            path,
            &path.with_extension("tmp"),
            0o600,
            text.as_bytes(),
            durable::Persist::Durable,
            |_| Ok(()),
        )
    };
    write(&key, &made.signing_key.serialize_pem()).map_err(|e| TlsError::File {
        path: key.clone(),
        why: e.to_string(),
    })?;
    write(&cert, &made.cert.pem()).map_err(|e| TlsError::File {
        path: cert.clone(),
        why: e.to_string(),
    })?;
    Ok((cert, key))
}

/// The negotiated protocol version and cipher suite, as the session and
/// the Received: header want them: `TLS1.3` and the suite's standard
/// (IANA) name, e.g. `TLS_AES_256_GCM_SHA384`, which is also what OpenSSL
/// and so Exim print.
pub fn session_info(conn: &rustls::CommonState) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1.2",
        _ => "TLS",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| standard_suite_name(s.suite()))
        .unwrap_or_default();
    TlsInfo {
        version: version.to_string(),
        cipher,
    }
}

/// rustls names the TLS 1.3 suites `TLS13_...`; the registry (and OpenSSL)
/// call them `TLS_...`. The TLS 1.2 names are the registry's already.
fn standard_suite_name(suite: rustls::CipherSuite) -> String {
    let name = suite
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{suite:?}"));
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// Exim's `X=` log field: `TLS1.3:TLS_AES_256_GCM_SHA384:256`.
pub fn x_field(info: &TlsInfo) -> String {
    if info.cipher.is_empty() {
        return info.version.clone();
    }
    // The bulk cipher's key length (not the hash's: ..._SHA256 is no hint).
    let bits = if info.cipher.contains("AES_256") || info.cipher.contains("CHACHA20") {
        256
    } else {
        128
    };
    format!("{}:{}:{bits}", info.version, info.cipher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("data_dir = {:?}", dir.path().display().to_string());
        let cfg = crate::config::from_str("t", &text).unwrap();
        server_config(&cfg).unwrap();
        let first = std::fs::read(dir.path().join(GENERATED_CERT)).unwrap();
        server_config(&cfg).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join(GENERATED_CERT)).unwrap(),
            first
        );
        let bad = format!(
            "data_dir = {:?}\n[smtp]\ntls_certificate = \"/nonexistent/c.pem\"\ntls_privatekey = \"/nonexistent/k.pem\"",
            dir.path().display().to_string()
        );
        let cfg = crate::config::from_str("t", &bad).unwrap();
        let e = server_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/c.pem"), "{e}");
    }

    #[test]
    fn suite_names_and_x_field() {
        let cases = [
            (
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
                "TLS1.3",
                "TLS_AES_256_GCM_SHA384",
                "TLS1.3:TLS_AES_256_GCM_SHA384:256",
            ),
            (
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                "TLS1.3",
                "TLS_CHACHA20_POLY1305_SHA256",
                "TLS1.3:TLS_CHACHA20_POLY1305_SHA256:256",
            ),
            (
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                "TLS1.2",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS1.2:TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:128",
            ),
        ];
        for (suite, version, name, x) in cases {
            assert_eq!(standard_suite_name(suite), name);
            let info = TlsInfo {
                version: version.into(),
                cipher: name.into(),
            };
            assert_eq!(x_field(&info), x);
        }
    }
}
