use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use imark_core::config::Config;
use reqwest::Method;
use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection};
use serde_json::Value;
use tokio::sync::oneshot;
use truemark_sandbox::Sandbox;
use uuid::Uuid;

/// The Postgres server where each test creates its own database.
const ADMIN_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A running iMark API on a fresh database, stopped and dropped with the value.
#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub config: Config,
    /// A connection to the test's own database, for arranging and inspecting state.
    pub db: DatabaseConnection,
    pub http: reqwest::Client,
    platform_key: String,
    database_name: String,
    admin_url: String,
    shutdown: Option<oneshot::Sender<()>>,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Response {
    /// The body as JSON; `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The `code` of a problem answer.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl TestApp {
    /// Starts the API with the default test configuration.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the API after `adjust` has changed the test configuration's variables.
    pub async fn spawn_with(adjust: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        truemark::tls::install_crypto_provider();
        let admin_url =
            std::env::var("IMARK_TEST_DATABASE_URL").unwrap_or_else(|_| ADMIN_DATABASE_URL.into());
        let redis_url = std::env::var("IMARK_TEST_REDIS_URL").unwrap_or_else(|_| REDIS_URL.into());
        let database_name = format!("imark_test_{}", Uuid::new_v4().simple());
        create_database(&admin_url, &database_name).await;

        let platform_key = format!("platform-{}", Uuid::new_v4().simple());
        let mut vars = HashMap::from([
            (
                "IMARK_DATABASE_URL".to_owned(),
                database_url(&admin_url, &database_name),
            ),
            ("IMARK_REDIS_URL".to_owned(), redis_url),
            ("IMARK_REDIS_PREFIX".to_owned(), database_name.clone()),
            ("IMARK_LISTEN_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            ("IMARK_PLATFORM_KEY".to_owned(), platform_key.clone()),
            (
                "IMARK_JWT_KEYS".to_owned(),
                format!("test1:{}", Uuid::new_v4().simple()),
            ),
            (
                "IMARK_MASTER_KEYS".to_owned(),
                format!(
                    "m1:{}",
                    BASE64.encode(Uuid::new_v4().as_u128().to_le_bytes().repeat(2))
                ),
            ),
            (
                "IMARK_API_KEY_PEPPER".to_owned(),
                Uuid::new_v4().simple().to_string(),
            ),
            // The ЧЗ emulator listens on 127.0.0.1 over plain http.
            (
                "IMARK_TRUEMARK_ALLOW_LOCAL_URLS".to_owned(),
                "true".to_owned(),
            ),
        ]);
        adjust(&mut vars);
        let environment = config::Environment::with_prefix("IMARK")
            .try_parsing(true)
            .source(Some(vars));
        let config = Config::load(None, environment).expect("test configuration is valid");

        let server = imark_api::Server::build(&config)
            .await
            .expect("the server builds against the test database");
        let listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));

        let db = imark_core::db::connect(&config.database_url).await.unwrap();
        Self {
            address,
            config,
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            platform_key,
            database_name,
            admin_url,
            shutdown: Some(shutdown),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn platform_key(&self) -> &str {
        &self.platform_key
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        read(request.send().await.expect("the server answers")).await
    }

    /// Sends `request` as built by the caller, for headers and bodies the helpers don't cover.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Response {
        read(request.send().await.expect("the server answers")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::PUT, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// Exchanges an API key for a token through `GET /token`, asserting success.
    pub async fn token(&self, api_key: &str) -> String {
        let response = self
            .send(
                self.http
                    .get(self.url("/token"))
                    .header("X-API-Key", api_key),
            )
            .await;
        assert_eq!(
            response.status, 200,
            "token exchange failed: {}",
            response.text
        );
        response.json()["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn platform_token(&self) -> String {
        self.token(&self.platform_key).await
    }

    /// Creates a tenant as the platform; returns its id and first HQ key.
    pub async fn create_tenant(&self, name: &str) -> (Uuid, String) {
        let platform = self.platform_token().await;
        let response = self
            .post("/tenants", &platform, &serde_json::json!({"name": name}))
            .await;
        assert_eq!(response.status, 201, "{}", response.text);
        let body = response.json();
        (
            body["tenant"]["id"].as_str().unwrap().parse().unwrap(),
            body["hq_key"]["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a store as an HQ admin; returns its id.
    pub async fn create_store(&self, hq_token: &str, code: &str) -> Uuid {
        let body = serde_json::json!({"code": code, "name": format!("Store {code}")});
        let response = self.post("/stores", hq_token, &body).await;
        assert_eq!(response.status, 201, "{}", response.text);
        response.json()["id"].as_str().unwrap().parse().unwrap()
    }

    /// Issues a key as an HQ admin; returns the issued key's id and secret.
    pub async fn issue_key(&self, hq_token: &str, body: &Value) -> (Uuid, String) {
        let response = self.post("/keys", hq_token, body).await;
        assert_eq!(response.status, 201, "{}", response.text);
        let body = response.json();
        (
            body["id"].as_str().unwrap().parse().unwrap(),
            body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Issues a store key named `name` for `store_id` as an HQ admin and exchanges it; returns
    /// the key's id and its token.
    pub async fn issue_store_token(
        &self,
        hq_token: &str,
        store_id: Uuid,
        name: &str,
    ) -> (Uuid, String) {
        let body = serde_json::json!({"role": "store", "name": name, "store_id": store_id});
        let (id, api_key) = self.issue_key(hq_token, &body).await;
        (id, self.token(&api_key).await)
    }

    /// Points the HQ admin's tenant at `sandbox` for `region` with the emulator's default ЧЗ
    /// key, through `PUT /truemark`, asserting success.
    pub async fn point_at_sandbox(&self, hq_token: &str, sandbox: &Sandbox, region: &str) {
        let settings = serde_json::json!({
            "api_key": truemark_sandbox::DEFAULT_API_KEY,
            "base_url": sandbox.discovery_url().as_str(),
            "region": region,
        });
        let response = self.put("/truemark", hq_token, &settings).await;
        assert_eq!(
            response.status, 200,
            "ЧЗ settings were refused: {}",
            response.text
        );
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let admin_url = self.admin_url.clone();
        let name = self.database_name.clone();
        // The test's runtime is shutting down; drop the database from a runtime of our own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(admin_url.as_str()).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = admin.execute_unprepared(&sql).await;
                }
            });
        })
        .join();
    }
}

async fn create_database(admin_url: &str, name: &str) {
    let admin = Database::connect(admin_url)
        .await
        .expect("Postgres is reachable at IMARK_TEST_DATABASE_URL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
}

fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("IMARK_TEST_DATABASE_URL is a URL");
    url.set_path(name);
    url.to_string()
}

async fn read(response: reqwest::Response) -> Response {
    Response {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap_or_default(),
    }
}
