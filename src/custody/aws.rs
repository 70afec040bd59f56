//! AWS Secrets Manager as a wrapping-key source, with the SDK's HTTP traffic carried by reqwest
//! (so the tree has one HTTP/TLS stack: rustls with ring).

use aws_sdk_secretsmanager::error::SdkError;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

use super::{hex_key, parse_hex_key, SourceError};
use crate::keys::envelope::Key;

/// The AWS SDK's transport, implemented with reqwest.
#[derive(Debug, Clone)]
pub struct ReqwestHttp(reqwest::Client);

impl ReqwestHttp {
    pub fn new() -> ReqwestHttp {
        super::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        ReqwestHttp(client)
    }
}

impl Default for ReqwestHttp {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpConnector for ReqwestHttp {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let method = reqwest::Method::from_bytes(request.method().as_bytes()).map_err(|e| ConnectorError::other(e.into(), None))?;
            let mut req = client.request(method, request.uri());
            for (name, value) in request.headers() {
                req = req.header(name, value);
            }
            let body = request.body().bytes().map(<[u8]>::to_vec).unwrap_or_default();
            let resp = req.body(body).send().await.map_err(|e| {
                if e.is_timeout() {
                    ConnectorError::timeout(e.into())
                } else {
                    ConnectorError::io(e.into())
                }
            })?;
            let status = resp.status().as_u16();
            let headers: Vec<(String, String)> =
                resp.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string()))).collect();
            let bytes = resp.bytes().await.map_err(|e| ConnectorError::io(e.into()))?;
            let mut out = HttpResponse::new(
                status.try_into().map_err(|e: aws_smithy_runtime_api::http::HttpError| ConnectorError::other(e.into(), None))?,
                SdkBody::from(bytes.to_vec()),
            );
            for (k, v) in headers {
                out.headers_mut().insert(k, v);
            }
            Ok(out)
        })
    }
}

impl HttpClient for ReqwestHttp {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// A Secrets Manager client: region and credentials from the usual AWS chain (env, IRSA web
/// identity, instance role), HTTP through [`ReqwestHttp`], and `STRONGROOM_AWS_ENDPOINT_URL`
/// overriding the endpoint. `Err` says what is misconfigured.
pub async fn client() -> Result<aws_sdk_secretsmanager::Client, String> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(ReqwestHttp::new());
    if let Some(url) = std::env::var("STRONGROOM_AWS_ENDPOINT_URL").ok().filter(|u| !u.is_empty()) {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err("no AWS region (set AWS_REGION)".into());
    }
    Ok(aws_sdk_secretsmanager::Client::new(&config))
}

pub struct AwsSecret {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

/// What went wrong talking to Secrets Manager, for logs and seal-status: the service's error
/// code, or that it could not be reached. Never request or response bodies, and not the
/// service's message either: it can name the secret (and so a tenant's KEK id).
pub(super) fn describe_error<E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(
    e: &SdkError<E, R>,
) -> String {
    match e {
        SdkError::ServiceError(s) => format!("AWS Secrets Manager refused the request: {}", s.err().code().unwrap_or("unknown error")),
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => "could not reach AWS Secrets Manager".to_string(),
        other => format!("{other}"),
    }
}

impl AwsSecret {
    pub async fn new(secret_id: &str) -> Result<AwsSecret, SourceError> {
        Ok(AwsSecret { client: client().await.map_err(SourceError::Config)?, secret_id: secret_id.to_string() })
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    pub async fn fetch(&self) -> Result<Key, SourceError> {
        let out = self.client.get_secret_value().secret_id(&self.secret_id).send().await.map_err(|e| match &e {
            SdkError::ServiceError(s) if s.err().is_resource_not_found_exception() => {
                SourceError::Missing(format!("secret {} not found", self.secret_id))
            }
            _ => SourceError::Unreachable(describe_error(&e)),
        })?;
        let text = out.secret_string().ok_or_else(|| SourceError::Missing("secret has no SecretString".into()))?;
        parse_hex_key(text)
    }

    /// Puts a new version of the secret, creating the secret if it does not exist yet.
    pub async fn store(&self, key: &Key) -> Result<(), SourceError> {
        let text = hex_key(key);
        let put = self.client.put_secret_value().secret_id(&self.secret_id).secret_string(text.as_str()).send().await;
        match put {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(s)) if s.err().is_resource_not_found_exception() => {
                self.client
                    .create_secret()
                    .name(&self.secret_id)
                    .secret_string(text.as_str())
                    .send()
                    .await
                    .map_err(|e| SourceError::Unreachable(describe_error(&e)))?;
                Ok(())
            }
            Err(e) => Err(SourceError::Unreachable(describe_error(&e))),
        }
    }
}
