//! TLS to the database, with libpq's `sslmode` meanings (`PGWARM_SSLMODE`):
//!
//! * `disable`: plain TCP;
//! * `prefer`: TLS if the database offers it, plain otherwise, certificate not checked;
//! * `require`: TLS or nothing, certificate not checked, unless `PGWARM_SSLROOTCERT` is set,
//!   when it is checked as for `verify-ca` (what libpq does when a root certificate exists);
//! * `verify-ca`: the certificate must chain to a trusted CA;
//! * `verify-full`: that, and it must be issued for `PGWARM_DB_HOST` (SNI is sent for names).
//!
//! The trusted CAs are the Amazon RDS global bundle compiled into the binary, or the file in
//! `PGWARM_SSLROOTCERT`. The rustls configuration is built once at start-up; every server
//! connection then negotiates with PostgreSQL's SSLRequest before its startup packet.

use super::ServerError;
use crate::config::SslMode;
use crate::stream::Stream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Amazon RDS's global CA bundle (see `extension/certs`), the default trust store.
const RDS_BUNDLE: &[u8] = include_bytes!("../../certs/rds-global-bundle.pem");

#[derive(Debug, Error)]
pub(crate) enum TlsSetupError {
    #[error("PGWARM_SSLROOTCERT={path:?} cannot be read: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("PGWARM_SSLROOTCERT={path:?} holds no usable PEM certificate{detail}")]
    NoCertificates { path: String, detail: String },
    #[error("TLS set-up failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// How server connections are secured, decided once at start-up.
pub(crate) struct TlsSetup {
    mode: SslMode,
    /// None for `disable`.
    connector: Option<TlsConnector>,
}

impl TlsSetup {
    pub(crate) fn new(mode: SslMode, root_cert: Option<&Path>) -> Result<TlsSetup, TlsSetupError> {
        if mode == SslMode::Disable {
            return Ok(TlsSetup {
                mode,
                connector: None,
            });
        }
        let provider = Arc::new(crypto::ring::default_provider());
        let check_chain = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || (mode == SslMode::Require && root_cert.is_some());
        let chain = if check_chain {
            let roots = Arc::new(load_roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            Some(webpki)
        } else {
            None
        };
        let verifier: Arc<dyn ServerCertVerifier> = match chain {
            Some(webpki) if mode == SslMode::VerifyFull => webpki,
            chain => Arc::new(AnyHostName {
                chain,
                provider: Arc::clone(&provider),
            }),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(TlsSetup {
            mode,
            connector: Some(TlsConnector::from(Arc::new(config))),
        })
    }

    /// Asks the database for TLS on a fresh socket and does the handshake if it agrees.
    pub(crate) async fn negotiate(
        &self,
        mut tcp: TcpStream,
        host: &str,
    ) -> Result<Stream, ServerError> {
        let Some(connector) = &self.connector else {
            return Ok(Stream::Plain(tcp));
        };
        let mut request = bytes::BytesMut::with_capacity(8);
        postgres_protocol::message::frontend::ssl_request(&mut request);
        tcp.write_all(&request).await?;
        // Exactly one byte, from the unbuffered socket: anything an attacker slips in after the
        // 'S' goes to the TLS parser and fails the handshake, never into the protocol stream
        // (the flaw behind CVE-2021-23222).
        match tcp.read_u8().await? {
            b'S' => {}
            b'N' if self.mode == SslMode::Prefer => return Ok(Stream::Plain(tcp)),
            b'N' => {
                return Err(ServerError::Tls(format!(
                "the database does not accept TLS connections, and PGWARM_SSLMODE={} requires TLS",
                self.mode.as_str()
            )))
            }
            other => {
                return Err(ServerError::Protocol(format!(
                    "unexpected answer {other:#04x} to SSLRequest"
                )))
            }
        }
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ServerError::Tls(format!("{host:?} is not a valid TLS server name")))?;
        match connector.connect(name, tcp).await {
            Ok(tls) => Ok(Stream::from(tls)),
            Err(e) => Err(ServerError::Tls(describe_failure(&e, host, self.mode))),
        }
    }
}

/// The trust store: `PGWARM_SSLROOTCERT`'s certificates, or the embedded RDS bundle.
fn load_roots(root_cert: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let (pem, path) = match root_cert {
        Some(path) => {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|source| TlsSetupError::Unreadable {
                path: shown.clone(),
                source,
            })?;
            (pem, Some(shown))
        }
        None => (RDS_BUNDLE.to_vec(), None),
    };
    let mut roots = RootCertStore::empty();
    let mut errors = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        match cert {
            Ok(cert) => {
                if let Err(e) = roots.add(cert) {
                    errors.push(e.to_string());
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if roots.is_empty() {
        return Err(TlsSetupError::NoCertificates {
            path: path.unwrap_or_else(|| "(embedded RDS bundle)".into()),
            detail: errors.first().map(|e| format!(": {e}")).unwrap_or_default(),
        });
    }
    Ok(roots)
}

/// Says in a user's terms why the handshake failed.
fn describe_failure(e: &std::io::Error, host: &str, mode: SslMode) -> String {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let trust_store =
        "the CAs of PGWARM_SSLROOTCERT, or of the embedded Amazon RDS bundle when it is unset";
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => format!(
            "the database's certificate is not valid for the host name \"{host}\" \
             (PGWARM_DB_HOST; PGWARM_SSLMODE={})",
            mode.as_str()
        ),
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => format!(
            "the database's certificate is not issued by a trusted CA ({trust_store}; PGWARM_SSLMODE={})",
            mode.as_str()
        ),
        Some(rustls::Error::InvalidCertificate(other)) => format!(
            "the database's certificate was refused: {other:?} (PGWARM_SSLMODE={})",
            mode.as_str()
        ),
        Some(other) => format!("TLS handshake with the database failed: {other}"),
        None => format!("TLS handshake with the database failed: {e}"),
    }
}

/// Every mode but `verify-full`: the name in the certificate does not matter. With `chain`
/// (`verify-ca`, or `require` with a root certificate) it must lead to a trusted CA; without
/// (`prefer`, `require`) nothing about it is checked, encryption against eavesdropping only, as in
/// libpq. Either way the handshake's signatures are checked against the presented certificate.
#[derive(Debug)]
struct AnyHostName {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_rds_bundle_loads() {
        let roots = load_roots(None).unwrap();
        assert!(roots.len() >= 90, "{} roots", roots.len());
    }

    #[test]
    fn a_bad_root_cert_file_names_the_variable() {
        let missing = TlsSetup::new(SslMode::VerifyFull, Some(Path::new("/nonexistent.pem")));
        let err = missing.err().unwrap().to_string();
        assert!(err.contains("PGWARM_SSLROOTCERT"), "{err}");
        let dir = std::env::temp_dir().join(format!("pgwarm-tls-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let empty = TlsSetup::new(SslMode::VerifyCa, Some(&dir));
        let _ = std::fs::remove_file(&dir);
        let err = empty.err().unwrap().to_string();
        assert!(err.contains("no usable PEM certificate"), "{err}");
    }

    #[test]
    fn disable_and_unchecked_modes_need_no_trust_store() {
        let missing = Some(Path::new("/nonexistent.pem"));
        assert!(TlsSetup::new(SslMode::Disable, missing).is_ok());
        assert!(TlsSetup::new(SslMode::Prefer, None).is_ok());
        assert!(TlsSetup::new(SslMode::Require, None).is_ok());
        assert!(
            TlsSetup::new(SslMode::Require, missing).is_err(),
            "require with a root certificate checks the chain, so the file must be readable"
        );
    }
}
