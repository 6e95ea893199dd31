//! The trust our peers put in `turns:` (TURN over TLS) servers: the operating system's
//! roots (rustls-platform-verifier, as the WHIP/WHEP client uses) plus the certificates of
//! [`PeerConfig::ice_ca_certs`](super::PeerConfig) files; *ring* as the only crypto
//! provider, as everywhere else in usermedia.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::PeerError;

/// The rustls client configuration for TURN over TLS. A CA file that cannot be read or
/// holds no certificate is an error naming it.
pub(crate) fn client_config(ca_files: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>, PeerError> {
    let extra = certificates(ca_files)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| PeerError::IceConfig(format!("TLS for TURN: {e}")))?;
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
        .map_err(|e| PeerError::IceConfig(format!("TLS for TURN: no trusted certificates: {e}")))?;
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // RFC 7443's ALPN for TURN (coturn ignores it; other servers may route by it).
    config.alpn_protocols = vec![b"stun.turn".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate of the PEM files `ca_files`; a file that cannot be read or holds
/// none is an error naming it.
fn certificates(ca_files: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>, PeerError> {
    let bad = |path: &PathBuf, why: String| {
        PeerError::IceConfig(format!("ICE CA certificate file {}: {why}", path.display()))
    };
    let mut extra = Vec::new();
    for path in ca_files {
        let pem = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(path, format!("malformed PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(bad(
                path,
                "no PEM certificate (expected -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        extra.extend(certs);
    }
    Ok(extra)
}

/// Checks the CA files of [`PeerConfig::ice_ca_certs`](super::PeerConfig) at start-up (the
/// peers read them again when they first reach a `turns:` server).
pub fn check_ice_ca_certs(ca_files: &[PathBuf]) -> Result<(), PeerError> {
    certificates(ca_files).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = check_ice_ca_certs(std::slice::from_ref(&empty)).unwrap_err();
        assert!(e.to_string().contains("empty.pem"), "{e}");
        assert!(e.to_string().contains("BEGIN CERTIFICATE"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = check_ice_ca_certs(&[missing]).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let cert = rcgen::generate_simple_self_signed(vec!["turn.test".into()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, cert.cert.pem()).unwrap();
        check_ice_ca_certs(&[good]).unwrap();
    }
}
