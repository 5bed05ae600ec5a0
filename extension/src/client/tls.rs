//! TLS towards clients, so that an application whose DATABASE_URL says `sslmode=require` keeps
//! working when only its host changes to 127.0.0.1.
//!
//! pgwarm presents the certificate in `PGWARM_CLIENT_TLS_CERT`/`_KEY`, or, without them, a
//! self-signed one made at start-up: `sslmode=require` checks no certificate, and a client that
//! does (`verify-full`) needs one issued by a CA it trusts anyway. Two ways in, as PostgreSQL 17
//! has them: an SSLRequest answered 'S', or a TLS ClientHello as the very first bytes
//! (`sslnegotiation=direct`), which must then name the `postgresql` ALPN protocol.

use crate::config::ClientTlsSettings;
use crate::stream::Stream;
use rustls::crypto;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use std::io;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// The ALPN protocol name PostgreSQL registered; direct TLS without it is refused, so that a TLS
/// connection meant for another protocol cannot be taken for a PostgreSQL one.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// The first byte of a TLS handshake record: how a direct-TLS client starts.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

#[derive(Debug, Error)]
pub(crate) enum ClientTlsError {
    #[error("{variable}={path:?} cannot be read: {source}")]
    Unreadable {
        variable: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("{variable}={path:?} holds no usable PEM {what}{detail}")]
    Unusable {
        variable: &'static str,
        path: String,
        what: &'static str,
        detail: String,
    },
    #[error(
        "PGWARM_CLIENT_TLS_CERT and PGWARM_CLIENT_TLS_KEY do not go together: {0} \
         (is the key the certificate's own?)"
    )]
    Mismatch(rustls::Error),
    #[error("could not make a self-signed certificate for clients: {0}")]
    SelfSigned(#[from] rcgen::Error),
}

/// What TLS the listener offers its clients, decided once at start-up.
pub(crate) struct ClientTls {
    acceptor: TlsAcceptor,
    /// True when pgwarm made its own certificate (no PGWARM_CLIENT_TLS_CERT).
    pub self_signed: bool,
}

impl ClientTls {
    pub(crate) fn new(settings: &ClientTlsSettings) -> Result<ClientTls, ClientTlsError> {
        let (chain, key, self_signed) = match &settings.cert_and_key {
            Some((cert, key)) => (load_chain(cert)?, load_key(key)?, false),
            None => {
                let (chain, key) = self_signed()?;
                (chain, key, true)
            }
        };
        let provider = Arc::new(crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ClientTlsError::Mismatch)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(ClientTlsError::Mismatch)?;
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        // No resumption, as in PostgreSQL (which turns tickets and its session cache off): libpq
        // never resumes, so tickets would be two records and a key derivation per login for
        // nothing.
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(ClientTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            self_signed,
        })
    }

    /// The TLS handshake after an SSLRequest was answered 'S'. A client may offer ALPN or not;
    /// one that offers only other protocols fails the handshake.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<Stream> {
        Ok(Stream::from(self.acceptor.accept(tcp).await?))
    }

    /// The TLS handshake of a client that started with one (direct TLS); it must have agreed on
    /// ALPN `postgresql`, as PostgreSQL 17 requires.
    pub(crate) async fn accept_direct(&self, tcp: TcpStream) -> io::Result<Stream> {
        let tls = self.acceptor.accept(tcp).await?;
        if tls.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "direct TLS connection without ALPN protocol \"postgresql\"",
            ));
        }
        Ok(Stream::from(tls))
    }
}

/// Whether a client's first byte opens a TLS handshake: a startup packet starts with its length,
/// whose first byte is 0 for any length PostgreSQL accepts.
pub(crate) fn starts_direct_tls(first_byte: u8) -> bool {
    first_byte == TLS_HANDSHAKE_RECORD
}

/// A fresh ECDSA P-256 key and a certificate for the names a local client uses.
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientTlsError> {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let certified = rcgen::generate_simple_self_signed(names)?;
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    Ok((vec![certified.cert.der().clone()], key.into()))
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    const VARIABLE: &str = "PGWARM_CLIENT_TLS_CERT";
    let pem = read(VARIABLE, path)?;
    let chain: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match chain {
        Ok(chain) if !chain.is_empty() => Ok(chain),
        other => Err(ClientTlsError::Unusable {
            variable: VARIABLE,
            path: path.display().to_string(),
            what: "certificate",
            detail: other.err().map(|e| format!(": {e}")).unwrap_or_default(),
        }),
    }
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientTlsError> {
    const VARIABLE: &str = "PGWARM_CLIENT_TLS_KEY";
    let pem = read(VARIABLE, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ClientTlsError::Unusable {
        variable: VARIABLE,
        path: path.display().to_string(),
        what: "private key (PKCS#8, PKCS#1 or SEC1)",
        detail: format!(": {e}"),
    })
}

fn read(variable: &'static str, path: &Path) -> Result<Vec<u8>, ClientTlsError> {
    std::fs::read(path).map_err(|source| ClientTlsError::Unreadable {
        variable,
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientTlsMode;

    fn with_files(cert: &Path, key: &Path) -> ClientTlsSettings {
        ClientTlsSettings {
            mode: ClientTlsMode::On,
            cert_and_key: Some((cert.to_owned(), key.to_owned())),
        }
    }

    #[test]
    fn makes_its_own_certificate_when_none_is_given() {
        let tls = ClientTls::new(&ClientTlsSettings {
            mode: ClientTlsMode::On,
            cert_and_key: None,
        })
        .unwrap();
        assert!(tls.self_signed);
    }

    #[test]
    fn loads_a_certificate_and_its_key_and_names_the_variable_when_it_cannot() {
        let dir = std::env::temp_dir().join(format!("pgwarm-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let wrong_key = dir.join("wrong.pem");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&cert, one.cert.pem()).unwrap();
        std::fs::write(&key, one.key_pair.serialize_pem()).unwrap();
        std::fs::write(&wrong_key, other.serialize_pem()).unwrap();
        std::fs::write(&garbage, "not pem\n").unwrap();

        let tls = ClientTls::new(&with_files(&cert, &key)).unwrap();
        assert!(!tls.self_signed);

        let err = |settings| ClientTls::new(&settings).err().unwrap().to_string();
        let missing = err(with_files(&dir.join("none.pem"), &key));
        assert!(missing.contains("PGWARM_CLIENT_TLS_CERT"), "{missing}");
        let bad_cert = err(with_files(&garbage, &key));
        assert!(bad_cert.contains("PGWARM_CLIENT_TLS_CERT"), "{bad_cert}");
        let bad_key = err(with_files(&cert, &garbage));
        assert!(bad_key.contains("PGWARM_CLIENT_TLS_KEY"), "{bad_key}");
        let mismatch = err(with_files(&cert, &wrong_key));
        assert!(mismatch.contains("do not go together"), "{mismatch}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_a_tls_record_opens_direct_tls() {
        assert!(starts_direct_tls(0x16));
        // A startup packet's length: at most 10,000 bytes, so its first byte is 0.
        assert!(!starts_direct_tls(0));
    }
}
