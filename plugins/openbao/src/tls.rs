//! AutoMTLS as go-plugin runs it. The plugin makes a fresh self-signed certificate at start and
//! announces its DER in the handshake line; the host presents the certificate it passed in
//! `PLUGIN_CLIENT_CERT`. Each side pins the other's exact certificate: both are self-signed with
//! CA:TRUE, which a WebPKI verifier refuses as an end entity, so "verified" here means the same
//! DER as pinned and a handshake signature valid under its key. The host's key is ECDSA P-521,
//! which ring cannot verify: every config in this crate is built with the aws-lc-rs provider,
//! passed explicitly.

use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// The one crypto provider of the plugin.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The plugin's own certificate and key, made at start and never written anywhere.
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    /// A self-signed P-256 certificate for `localhost`, CA:TRUE with serverAuth and clientAuth,
    /// as go-plugin makes its own (the host dials `ServerName=localhost` with this cert as root).
    pub fn generate() -> Result<Identity, rcgen::Error> {
        Self::generate_with(&rcgen::PKCS_ECDSA_P256_SHA256)
    }

    fn generate_with(algorithm: &'static rcgen::SignatureAlgorithm) -> Result<Identity, rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Strongroom OpenBao plugin");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages =
            vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment, rcgen::KeyUsagePurpose::KeyCertSign];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate_for(algorithm)?;
        let cert = params.self_signed(&key)?;
        Ok(Identity { cert: cert.der().clone(), key: PrivatePkcs8KeyDer::from(key.serialize_der()) })
    }

    /// The handshake line's last field: the DER, standard base64 without padding.
    pub fn handshake_field(&self) -> String {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.cert.as_ref())
    }

    /// The TLS server the host dials: h2 only, and only the pinned host certificate gets in.
    pub fn server_config(&self, host: &CertificateDer<'static>) -> Result<rustls::ServerConfig, Error> {
        let provider = provider();
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(Arc::new(Pinned::new(host.clone(), &provider)))
            .with_single_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// The TLS client that dials the host's brokered services: our certificate as the client's,
    /// and the pinned host certificate as the only server accepted.
    pub fn client_config(&self, host: &CertificateDer<'static>) -> Result<rustls::ClientConfig, Error> {
        let provider = provider();
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned::new(host.clone(), &provider)))
            .with_client_auth_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The host's certificate from `PLUGIN_CLIENT_CERT` (PEM).
pub fn host_certificate(pem: &str) -> Result<CertificateDer<'static>, String> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("PLUGIN_CLIENT_CERT is not a PEM certificate: {e}"))
}

/// Accepts exactly one certificate, as a server or a client, and checks handshake signatures
/// with the provider's algorithms.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Pinned {
    fn new(cert: CertificateDer<'static>, provider: &CryptoProvider) -> Pinned {
        Pinned { cert, algorithms: provider.signature_verification_algorithms }
    }

    fn check(&self, presented: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Result<(), Error> {
        // Certificates are public: a plain comparison leaks nothing.
        if intermediates.is_empty() && presented.as_ref() == self.cert.as_ref() {
            Ok(())
        } else {
            Err(Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }
}

/// The handshake-signature half of both verifier traits, the same for either side: the
/// provider's algorithms (aws-lc-rs, P-521 included) over the pinned certificate's key.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.check(end_entity, intermediates).map(|()| ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity, intermediates).map(|()| ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_certificate_is_unpadded_base64_der_for_localhost() {
        let id = Identity::generate().unwrap();
        let field = id.handshake_field();
        assert!(field.len() > 50 && !field.ends_with('='));
        let der = base64::engine::general_purpose::STANDARD_NO_PAD.decode(&field).unwrap();
        assert_eq!(der, id.cert.as_ref());
    }

    #[test]
    fn only_the_pinned_certificate_passes() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let pinned = Pinned::new(a.cert.clone(), &provider());
        assert!(pinned.check(&a.cert, &[]).is_ok());
        assert!(pinned.check(&b.cert, &[]).is_err());
        assert!(pinned.check(&a.cert, std::slice::from_ref(&b.cert)).is_err());
    }

    /// A TLS handshake over an in-memory pipe: the plugin's server against a client with
    /// `client`'s certificate that pins `pinned_server`.
    async fn handshake(plugin: &Identity, host: &Identity, client: &Identity, pinned_server: &Identity) -> Result<(), String> {
        let server = tokio_rustls::TlsAcceptor::from(Arc::new(plugin.server_config(&host.cert).unwrap()));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client.client_config(&pinned_server.cert).unwrap()));
        let (a, b) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from("localhost").unwrap();
        let (served, dialled) = tokio::join!(server.accept(a), connector.connect(name, b));
        match (served, dialled) {
            (Ok(s), Ok(_)) => {
                assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
                Ok(())
            }
            (s, c) => Err(format!("server: {:?}, client: {:?}", s.err(), c.err())),
        }
    }

    #[tokio::test]
    async fn only_the_host_gets_in_and_only_to_the_plugin() {
        // The host's key is P-521, as OpenBao's AutoMTLS certificate is.
        let host = Identity::generate_with(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let plugin = Identity::generate().unwrap();
        let stranger = Identity::generate_with(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        handshake(&plugin, &host, &host, &plugin).await.unwrap();
        assert!(handshake(&plugin, &host, &stranger, &plugin).await.is_err(), "a client with another certificate got in");
        // The host dialling something that is not this plugin (another server cert) refuses it.
        assert!(handshake(&stranger, &host, &host, &plugin).await.is_err(), "the client accepted an unpinned server");
    }

    #[test]
    fn p521_is_among_the_schemes_offered_to_the_host() {
        let pinned = Pinned::new(Identity::generate().unwrap().cert, &provider());
        assert!(ServerCertVerifier::supported_verify_schemes(&pinned).contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
    }
}
