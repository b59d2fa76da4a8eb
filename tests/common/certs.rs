//! Test certificates made with the `openssl` CLI: a CA, a server certificate
//! for the names given (only those), and client certificates, all signed by
//! that CA. For the TLS listeners of the test servers.

use std::path::Path;
use std::process::Command;

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn run(script: &str) {
    let out = Command::new("sh").arg("-c").arg(script).output().expect("run openssl");
    assert!(out.status.success(), "making the test certificates failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// In `dir`: `ca.pem`/`ca.key` (a new test CA) and `server.pem`/`server.key`
/// for `names` (DNS names, or IP addresses written as `IP:127.0.0.1`).
/// Keys are 0600 (servers refuse others).
pub fn server(dir: &Path, names: &[&str]) {
    let d = sh_quote(&dir.display().to_string());
    let san: Vec<String> = names.iter().map(|n| if n.starts_with("IP:") { n.to_string() } else { format!("DNS:{n}") }).collect();
    let cn = names.first().map(|n| n.trim_start_matches("IP:")).unwrap_or("localhost");
    run(&format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 \
           -subj /CN=keysweep-test-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN={cn} 2>/dev/null; \
         printf 'subjectAltName={san}\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\nkeyUsage=critical,digitalSignature\\n' > server.ext; \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null; \
         chmod 600 server.key ca.key",
        san = san.join(",")
    ));
}

/// In `dir` (which holds a CA from [`server`]): `<name>.pem`/`<name>.key`, a
/// client certificate with common name `cn`, signed by that CA.
pub fn client(dir: &Path, name: &str, cn: &str) {
    let d = sh_quote(&dir.display().to_string());
    run(&format!(
        "set -e; cd {d}; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout {name}.key -out {name}.csr -subj /CN={cn} 2>/dev/null; \
         printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\nkeyUsage=critical,digitalSignature\\n' > {name}.ext; \
         openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {name}.pem -days 2 -extfile {name}.ext 2>/dev/null; \
         chmod 600 {name}.key"
    ));
}
