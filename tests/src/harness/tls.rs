//! TLS for the tests: a throwaway CA and a server certificate it issued (rcgen), a cluster
//! that serves TLS with them, and tokio-postgres clients that talk TLS to pgwarm the way libpq's
//! `sslmode=require` (no check, certificates recorded) and `verify-full` (checked against a CA)
//! would; and [`negotiated_tls`], what such a client negotiates with a server.

use crate::harness::pg::{io_runtime, PgCluster, Target};
use crate::harness::tools::{chown_postgres, TempDir};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_postgres_rustls::MakeRustlsConnect;

/// A CA (its certificate in `ca_file`) and a server certificate for `names`, signed by it.
pub struct TestCerts {
    _dir: TempDir,
    pub ca_file: PathBuf,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// The same certificate and key, as files (for PGWARM_CLIENT_TLS_CERT/_KEY).
    pub server_cert_file: PathBuf,
    pub server_key_file: PathBuf,
}

impl TestCerts {
    /// `names`: DNS names or IP addresses the server certificate is valid for.
    pub fn new(names: &[&str]) -> TestCerts {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "pgwarm-tests CA");
        let ca_cert = ca.self_signed(&ca_key).expect("self-signed CA");

        let server_key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut server = CertificateParams::new(names).expect("server params");
        server
            .distinguished_name
            .push(DnType::CommonName, "pgwarm-tests server");
        let server_cert = server
            .signed_by(&server_key, &ca_cert, &ca_key)
            .expect("server certificate");

        let dir = TempDir::new("pgwarm-certs");
        let ca_file = dir.path().join("ca.pem");
        fs::write(&ca_file, ca_cert.pem()).expect("write ca.pem");
        let server_cert_file = dir.path().join("server.crt");
        let server_key_file = dir.path().join("server.key");
        fs::write(&server_cert_file, server_cert.pem()).expect("write server.crt");
        fs::write(&server_key_file, server_key.serialize_pem()).expect("write server.key");
        TestCerts {
            _dir: dir,
            ca_file,
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            server_cert_file,
            server_key_file,
        }
    }
}

impl PgCluster {
    /// Turns TLS on with `certs`' server certificate (a reload; ssl settings need no restart).
    pub fn enable_ssl(&self, certs: &TestCerts) {
        let cert = self.datadir.join("server.crt");
        let key = self.datadir.join("server.key");
        fs::write(&cert, &certs.server_cert_pem).expect("write server.crt");
        fs::write(&key, &certs.server_key_pem).expect("write server.key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod server.key");
        chown_postgres(&cert);
        chown_postgres(&key);
        self.psql_super(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}';\nALTER SYSTEM SET ssl_key_file = '{}';\nALTER SYSTEM SET ssl = on;",
            cert.display(),
            key.display()
        ));
        self.reload();
        assert_eq!(self.psql_super("SHOW ssl"), "on", "{}", self.log());
    }
}

/// A tokio-postgres TLS connector that checks nothing about the certificate, like libpq's
/// `sslmode=require`, and records every end-entity certificate it was shown: proof that a TLS
/// handshake took place. `alpn` offers the `postgresql` protocol (needed for direct TLS).
pub fn tls_without_checks(alpn: bool) -> (MakeRustlsConnect, SeenCertificates) {
    let (config, seen) = client_config_without_checks(alpn);
    (MakeRustlsConnect::new(config), seen)
}

/// The rustls configuration behind [`tls_without_checks`], for tests that drive TLS by hand.
pub fn client_config_without_checks(alpn: bool) -> (ClientConfig, SeenCertificates) {
    let seen = SeenCertificates::default();
    let provider = Arc::new(crypto::ring::default_provider());
    let verifier = Arc::new(Recorder {
        seen: seen.clone(),
        provider: Arc::clone(&provider),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    if alpn {
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    (config, seen)
}

/// A tokio-postgres TLS connector that trusts only the CA in `ca_file` and checks the host
/// name: libpq's `sslmode=verify-full`.
pub fn tls_verifying(ca_file: &Path) -> MakeRustlsConnect {
    let pem = fs::read(ca_file).expect("read CA file");
    let mut roots = RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let provider = Arc::new(crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// End-entity certificates (DER) a [`tls_without_checks`] connector was shown, and the
/// signature schemes the servers signed their handshakes with.
#[derive(Clone, Default)]
pub struct SeenCertificates {
    certificates: Arc<Mutex<Vec<Vec<u8>>>>,
    schemes: Arc<Mutex<Vec<SignatureScheme>>>,
}

impl SeenCertificates {
    pub fn count(&self) -> usize {
        self.certificates.lock().expect("lock").len()
    }

    pub fn last(&self) -> Option<Vec<u8>> {
        self.certificates.lock().expect("lock").last().cloned()
    }

    /// The scheme of the last handshake signature checked, e.g. `ECDSA_NISTP256_SHA256`: the
    /// server key's type.
    pub fn last_scheme(&self) -> Option<SignatureScheme> {
        self.schemes.lock().expect("lock").last().copied()
    }
}

#[derive(Debug)]
struct Recorder {
    seen: SeenCertificates,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for SeenCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeenCertificates({})", self.count())
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.seen
            .certificates
            .lock()
            .expect("lock")
            .push(end_entity.as_ref().to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        self.seen.schemes.lock().expect("lock").push(dss.scheme);
        crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        self.seen.schemes.lock().expect("lock").push(dss.scheme);
        crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl Target {
    /// Connects with tokio-postgres over `tls`; `options` is added to the connection string
    /// (`sslmode=require`, `sslnegotiation=direct`, ...). Runs on the harness's I/O runtime,
    /// like [`Target::try_connect`].
    pub async fn try_connect_tls(
        &self,
        options: &str,
        tls: MakeRustlsConnect,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let conn_string = format!("{} {options}", self.conn_string());
        io_runtime()
            .spawn(async move {
                let (client, connection) = tokio_postgres::connect(&conn_string, tls).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(client)
            })
            .await
            .expect("tokio-postgres connect task panicked")
    }
}

/// What a client asking for TLS the way libpq does (SSLRequest, 'S', then the handshake, no
/// certificate check) negotiates with the PostgreSQL-protocol server at `addr`, e.g.
/// "TLSv1.3 TLS13_AES_256_GCM_SHA384, signed with ECDSA_NISTP256_SHA256". It then closes.
pub fn negotiated_tls(addr: std::net::SocketAddr) -> Result<String, String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(10);
    let mut sock = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    sock.set_read_timeout(Some(timeout))
        .and_then(|()| sock.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("socket timeouts: {e}"))?;
    // SSLRequest: length 8, then the code 80877103.
    sock.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .map_err(|e| format!("send SSLRequest: {e}"))?;
    let mut answer = [0u8; 1];
    sock.read_exact(&mut answer)
        .map_err(|e| format!("read the answer to SSLRequest: {e}"))?;
    if answer != *b"S" {
        return Err(format!(
            "SSLRequest answered {:?}, not 'S'",
            answer[0] as char
        ));
    }
    let (config, seen) = client_config_without_checks(false);
    let name = ServerName::try_from("localhost").expect("a server name");
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| format!("a TLS client: {e}"))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut sock)
            .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
    }
    let version = match tls.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    };
    let suite = tls
        .negotiated_cipher_suite()
        .map_or("?".to_owned(), |s| format!("{:?}", s.suite()));
    let scheme = seen
        .last_scheme()
        .map_or("?".to_owned(), |s| format!("{s:?}"));
    tls.send_close_notify();
    let _ = tls.complete_io(&mut sock);
    Ok(format!("{version} {suite}, signed with {scheme}"))
}
