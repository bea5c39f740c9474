//! A throwaway certificate authority and a server certificate for 127.0.0.1,
//! made with the `openssl` command line.

use std::{path::Path, process::Command};

/// Paths of the files made.
#[derive(Debug, Clone)]
pub struct Certs {
    pub ca: String,
    /// The CA's private key, to sign client certificates with [`client`].
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

/// A client certificate and its key.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub cert: String,
    pub key: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a CA named `name` in `dir` and a server certificate it signs, valid for
/// 127.0.0.1 and localhost.
pub fn make(dir: &Path, name: &str) -> Certs {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    let key = format!("{name}-server.key");
    let csr = format!("{name}-server.csr");
    let cert = format!("{name}-server.pem");
    let ext = format!("{name}-ext.cnf");
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    openssl(
        dir,
        &[
            &["req", "-x509", "-nodes", "-days", "2"][..],
            &ec,
            &[
                "-keyout",
                &ca_key,
                "-out",
                &ca,
                "-subj",
                &format!("/CN={name} test CA"),
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req", "-nodes"][..],
            &ec,
            &["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &cert,
            "-extfile",
            &ext,
        ],
    );
    let path = |f: &str| dir.join(f).display().to_string();
    Certs {
        ca: path(&ca),
        ca_key: path(&ca_key),
        cert: path(&cert),
        key: path(&key),
    }
}

/// A client certificate signed by the CA of `certs`, with the subject CN `cn`
/// (a `/` in it is escaped for openssl, so `bj1/web-01` is one CN). Files are
/// named after `stem`.
pub fn client(dir: &Path, certs: &Certs, stem: &str, cn: &str) -> ClientCert {
    let key = format!("{stem}.key");
    let csr = format!("{stem}.csr");
    let cert = format!("{stem}.pem");
    let ext = format!("{stem}-ext.cnf");
    std::fs::write(
        dir.join(&ext),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    let subject = format!("/CN={}", cn.replace('/', "\\/"));
    openssl(
        dir,
        &[
            "req",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &certs.ca,
            "-CAkey",
            &certs.ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &cert,
            "-extfile",
            &ext,
        ],
    );
    let path = |f: &str| dir.join(f).display().to_string();
    ClientCert {
        cert: path(&cert),
        key: path(&key),
    }
}
