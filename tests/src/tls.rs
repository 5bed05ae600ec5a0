//! TLS for the tests: a throwaway CA and a server certificate it issued (rcgen), and a cluster
//! that serves TLS with them.

use crate::pg::PgCluster;
use crate::tools::{chown_postgres, TempDir};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A CA (its certificate in `ca_file`) and a server certificate for `names`, signed by it.
pub struct TestCerts {
    _dir: TempDir,
    pub ca_file: PathBuf,
    pub server_cert_pem: String,
    pub server_key_pem: String,
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
        TestCerts {
            _dir: dir,
            ca_file,
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
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
