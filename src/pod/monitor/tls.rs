//! HTTPS probes: TLS over the probe's non-blocking socket with rustls (the crate berth's
//! registry client already builds), the server's certificate not verified, as kubelet's
//! (`InsecureSkipVerify`): its handshake signatures still are.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::check::{Progress, http_status};

/// Accepts any certificate; checks what the peer signed with it.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// An HTTPS GET in flight.
pub(super) struct Tls {
    conn: rustls::ClientConnection,
    plain: Vec<u8>,
    status: Option<u16>,
}

impl Tls {
    /// A client for a server at `ip`, with the request queued (sent once the handshake ends).
    pub(super) fn new(ip: IpAddr, request: Vec<u8>) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = AnyCertificate(provider.signature_verification_algorithms);
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), ServerName::from(ip))
            .map_err(|e| format!("TLS: {e}"))?;
        conn.writer()
            .write_all(&request)
            .map_err(|e| format!("TLS: {e}"))?;
        Ok(Tls {
            conn,
            plain: Vec::new(),
            status: None,
        })
    }

    pub(super) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Handshake, send, read: as far as the socket allows.
    pub(super) fn advance(&mut self, sock: &mut TcpStream) -> Progress {
        loop {
            while self.conn.wants_write() {
                match self.conn.write_tls(sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Pending,
                    Err(e) => return Progress::Done(false, format!("TLS write: {e}")),
                }
            }
            let eof = match self.conn.read_tls(sock) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) => return Progress::Done(false, format!("TLS read: {e}")),
            };
            if let Err(e) = self.conn.process_new_packets() {
                // what the server is owed (an alert) goes out; the probe has failed
                let _ = self.conn.write_tls(sock);
                return Progress::Done(false, format!("TLS: {e}"));
            }
            let mut chunk = [0u8; 4096];
            loop {
                match self.conn.reader().read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => self.plain.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Progress::Done(false, format!("TLS: {e}")),
                }
            }
            if !self.plain.is_empty() {
                match http_status(&self.plain, &mut self.status) {
                    Progress::Pending => {}
                    done => return done,
                }
            }
            if eof {
                return Progress::Done(false, "the connection closed early".into());
            }
        }
    }
}
