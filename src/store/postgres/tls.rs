//! TLS to the database, verified as libpq's `sslmode=verify-full` verifies
//! it: the server's certificate must chain to the CA the operator gives
//! (`--database-ca`) and name the host the URL connects to. Without a CA the
//! connection is not encrypted; a URL that asks for `sslmode=require`
//! without one is refused rather than encrypted to a server nobody checked.

use std::{path::Path, sync::Arc};

use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::{
    self, ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

use super::StoreError;

/// The TLS connector for `config`, which it makes require TLS when `ca` is
/// given; `None` for a connection without TLS.
pub(super) fn connector(
    config: &mut tokio_postgres::Config,
    ca: Option<&Path>,
) -> Result<Option<MakeRustlsConnect>, StoreError> {
    let refuse = |why: String| Err(StoreError::Io(why));
    let Some(ca) = ca else {
        return match config.get_ssl_mode() {
            SslMode::Require => refuse(
                "the database URL asks for sslmode=require: give the CA certificate that \
                 signed the database server's certificate (--database-ca), so that the \
                 server is verified"
                    .into(),
            ),
            _ => Ok(None),
        };
    };
    if config.get_ssl_mode() == SslMode::Disable {
        return refuse(
            "the database URL says sslmode=disable, but --database-ca asks for TLS".into(),
        );
    }
    let bad = |e: &dyn std::fmt::Display| {
        StoreError::Io(format!(
            "the database CA {} is not usable: {e}",
            ca.display()
        ))
    };
    let pem = std::fs::read(ca).map_err(|e| bad(&e))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"it holds no PEM certificate"));
    }
    let tls =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.ssl_mode(SslMode::Require);
    Ok(Some(MakeRustlsConnect::new(tls)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> tokio_postgres::Config {
        url.parse().unwrap()
    }

    #[test]
    fn without_a_ca_there_is_no_tls_and_require_is_refused() {
        assert!(
            connector(&mut config("postgresql://a/db"), None)
                .unwrap()
                .is_none()
        );
        assert!(
            connector(&mut config("postgresql://a/db?sslmode=disable"), None)
                .unwrap()
                .is_none()
        );
        let Err(StoreError::Io(why)) =
            connector(&mut config("postgresql://a/db?sslmode=require"), None)
        else {
            panic!("sslmode=require without a CA is refused");
        };
        assert!(why.contains("--database-ca"), "{why}");
    }

    #[test]
    fn a_ca_makes_tls_required_and_cannot_be_combined_with_disable() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.fund.internal".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(&ca, cert.pem()).unwrap();

        let mut prefer = config("postgresql://a/db");
        assert!(connector(&mut prefer, Some(&ca)).unwrap().is_some());
        assert_eq!(prefer.get_ssl_mode(), SslMode::Require);
        assert!(connector(&mut config("postgresql://a/db?sslmode=disable"), Some(&ca)).is_err());

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        assert!(connector(&mut config("postgresql://a/db"), Some(&empty)).is_err());
        assert!(
            connector(
                &mut config("postgresql://a/db"),
                Some(&dir.path().join("none"))
            )
            .is_err()
        );
    }
}
