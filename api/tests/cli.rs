//! The operator's commands of the `imark-api` binary, run for real against a fresh database;
//! what they make is then used over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use imark_core::config::Config;
use imark_core::credentials;
use imark_core::crypto::MasterKeys;
use imark_tests::TestApp;
use sea_orm::{ConnectionTrait as _, DatabaseBackend, Statement};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use truemark_sandbox::{DEFAULT_API_KEY, Fixture, Sandbox, SandboxConfig};
use uuid::Uuid;

/// What a run of the binary printed.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        serde_json::from_str(&self.stdout).expect("the output is JSON")
    }
}

/// Runs `imark-api` with exactly the variables `vars`.
async fn imark(vars: &HashMap<String, String>, args: &[&str]) -> Run {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_imark-api"));
    command.env_clear().envs(vars).args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("imark-api runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running API on a fresh database, and the variables that configure it.
async fn app() -> (TestApp, HashMap<String, String>) {
    let mut vars = HashMap::new();
    let app = TestApp::spawn_with(|v| vars.clone_from(v)).await;
    (app, vars)
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let row = app
        .db
        .query_one_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

fn load(vars: &HashMap<String, String>) -> Result<Config, String> {
    let environment = config::Environment::with_prefix("IMARK")
        .try_parsing(true)
        .source(Some(vars.clone()));
    Config::load(None, environment).map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_tenant_created_on_the_command_line_gets_an_hq_key_that_works_over_http() {
    let (app, vars) = app().await;

    let run = imark(
        &vars,
        &[
            "tenant",
            "create",
            "--name",
            "ООО «Ромашка»",
            "--inn",
            "7701234567",
            "--json",
        ],
    )
    .await;
    let created = run.json();
    let hq_key = created["hq_key"]["api_key"].as_str().unwrap();
    let hq = app.token(hq_key).await;
    let me = app.get("/me", &hq).await.json();
    let store_id = app.create_store(&hq, "msk-001").await;

    assert!(hq_key.starts_with("imk_hq_"), "{hq_key}");
    assert_eq!(created["tenant"]["name"], "ООО «Ромашка»");
    assert_eq!(created["tenant"]["inn"], "7701234567");
    assert_eq!(me["role"], "hq_admin");
    assert_eq!(me["tenant_id"], created["tenant"]["id"]);
    assert!(!store_id.is_nil());
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[tokio::test]
async fn tenant_create_says_the_key_is_shown_once_and_makes_the_first_store() {
    let (app, vars) = app().await;

    let run = imark(
        &vars,
        &[
            "tenant",
            "create",
            "--name",
            "Сеть «Табак»",
            "--inn",
            "770123456789",
            "--store-code",
            "spb-001",
            "--store-name",
            "Невский, 1",
        ],
    )
    .await;
    let key = run
        .stdout
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("imk_hq_"))
        .expect("the key is printed on a line of its own");
    let hq = app.token(key).await;
    let stores = app.get("/stores", &hq).await.json();

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("shown only now"), "{}", run.stdout);
    assert_eq!(stores["items"][0]["code"], "spb-001");
    assert_eq!(stores["items"][0]["name"], "Невский, 1");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_records WHERE actor = 'platform' \
             AND action IN ('tenant.created', 'store.created')"
        )
        .await,
        2,
        "the command line leaves the same audit records as the API"
    );
}

#[tokio::test]
async fn a_second_tenant_with_the_same_inn_is_refused_and_changes_nothing() {
    let (app, vars) = app().await;
    let args = [
        "tenant",
        "create",
        "--name",
        "Ромашка",
        "--inn",
        "7701234567",
    ];
    assert_eq!(imark(&vars, &args).await.code, 0);

    let again = imark(&vars, &args).await;

    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("already has ИНН 7701234567"),
        "{}",
        again.stderr
    );
    assert!(again.stdout.is_empty(), "{}", again.stdout);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM tenants").await, 1);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM api_keys").await, 1);
}

#[tokio::test]
async fn a_bad_inn_or_a_bad_first_store_leaves_no_tenant_behind() {
    let (app, vars) = app().await;

    let bad_inn = imark(
        &vars,
        &["tenant", "create", "--name", "Ромашка", "--inn", "77012"],
    )
    .await;
    let bad_store = imark(
        &vars,
        &[
            "tenant",
            "create",
            "--name",
            "Ромашка",
            "--inn",
            "7701234567",
            "--store-code",
            "msk-001",
            "--store-name",
            "  ",
        ],
    )
    .await;

    assert_eq!(bad_inn.code, 1);
    assert!(
        bad_inn.stderr.contains("inn: must be 10 or 12 digits"),
        "{}",
        bad_inn.stderr
    );
    assert_eq!(bad_store.code, 1);
    assert!(
        bad_store.stderr.contains("name: must not be empty"),
        "{}",
        bad_store.stderr
    );
    assert_eq!(count(&app, "SELECT count(*) AS n FROM tenants").await, 0);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM api_keys").await, 0);
}

#[tokio::test]
async fn a_missing_setting_stops_every_command_naming_its_variable() {
    for args in [
        &[
            "tenant",
            "create",
            "--name",
            "Ромашка",
            "--inn",
            "7701234567",
        ][..],
        &["keys", "rotate-master"][..],
        &["demo"][..],
    ] {
        let run = imark(&HashMap::new(), args).await;

        assert_eq!(run.code, 2, "{args:?}");
        assert!(
            run.stderr.contains("IMARK_DATABASE_URL is not set"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
    }
}

#[tokio::test]
async fn new_keys_are_entries_the_configuration_accepts() {
    let (_app, mut vars) = app().await;

    let master = imark(&vars, &["keys", "new-master-key", "--json"])
        .await
        .json();
    let signing = imark(&vars, &["keys", "new-signing-key", "--id", "k2", "--json"])
        .await
        .json();
    let text = imark(&HashMap::new(), &["keys", "new-master-key"]).await;
    let old_master = vars["IMARK_MASTER_KEYS"].clone();
    let old_jwt = vars["IMARK_JWT_KEYS"].clone();
    vars.insert(
        "IMARK_MASTER_KEYS".into(),
        format!("{},{old_master}", master["entry"].as_str().unwrap()),
    );
    vars.insert(
        "IMARK_JWT_KEYS".into(),
        format!("{},{old_jwt}", signing["entry"].as_str().unwrap()),
    );
    let config = load(&vars).unwrap();

    assert_eq!(master["variable"], "IMARK_MASTER_KEYS");
    assert_eq!(signing["variable"], "IMARK_JWT_KEYS");
    assert_eq!(config.master_keys[0].id, master["id"].as_str().unwrap());
    assert_eq!(config.master_keys[0].secret.expose_secret().len(), 32);
    assert_eq!(config.jwt_keys[0].id, "k2");
    assert_eq!(config.jwt_keys.len(), 2);
    assert_eq!(
        text.code, 0,
        "new keys need no configuration: {}",
        text.stderr
    );
    assert!(text.stdout.contains("rotate-master"), "{}", text.stdout);
}

/// A tenant with its own ЧЗ key, a store with an override and one without, and a second tenant.
async fn credentials_of_two_tenants(app: &TestApp) -> Vec<(Uuid, Uuid, &'static str)> {
    let mut expected = Vec::new();
    for (tenant, keys) in [
        ("Первая", ["tenant-one-key-0001", "store-override-key-0002"]),
        ("Вторая", ["tenant-two-key-0003", ""]),
    ] {
        let (tenant_id, hq_key) = app.create_tenant(tenant).await;
        let hq = app.token(&hq_key).await;
        let plain = app.create_store(&hq, "plain").await;
        let put = app
            .put("/truemark", &hq, &json!({"api_key": keys[0]}))
            .await;
        assert_eq!(put.status, 200, "{}", put.text);
        expected.push((tenant_id, plain, keys[0]));
        if !keys[1].is_empty() {
            let own = app.create_store(&hq, "own").await;
            let body = json!({"api_key": keys[1], "store_id": own});
            assert_eq!(app.put("/truemark", &hq, &body).await.status, 200);
            expected.push((tenant_id, own, keys[1]));
        }
    }
    expected
}

#[tokio::test]
async fn after_rotate_master_every_chz_key_opens_with_the_new_master_key_alone() {
    let (app, mut vars) = app().await;
    let expected = credentials_of_two_tenants(&app).await;
    let old = vars["IMARK_MASTER_KEYS"].clone();
    let new = imark(&vars, &["keys", "new-master-key", "--id", "m2", "--json"])
        .await
        .json()["entry"]
        .as_str()
        .unwrap()
        .to_owned();

    vars.insert("IMARK_MASTER_KEYS".into(), format!("{new},{old}"));
    let first = imark(
        &vars,
        &["keys", "rotate-master", "--batch-size", "2", "--json"],
    )
    .await;
    vars.insert("IMARK_MASTER_KEYS".into(), new.clone());
    let again = imark(&vars, &["keys", "rotate-master", "--json"]).await;
    let new_only = MasterKeys::new(load(&vars).unwrap().master_keys);

    let first = first.json();
    assert_eq!(first["resealed"], 3);
    assert_eq!(first["batches"], 2);
    assert_eq!(first["master_key_id"], "m2");
    assert_eq!(again.json()["resealed"], 0);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM truemark_credentials WHERE master_key_id <> 'm2'"
        )
        .await,
        0
    );
    for (tenant_id, store_id, key) in expected {
        let opened = credentials::effective(&app.db, &new_only, tenant_id, store_id)
            .await
            .unwrap()
            .expect("the store has ЧЗ settings");
        assert_eq!(opened.api_key.expose_secret(), key);
    }
}

#[tokio::test]
async fn rotate_master_without_the_old_key_fails_naming_it_and_changes_nothing() {
    let (app, mut vars) = app().await;
    credentials_of_two_tenants(&app).await;
    let new = imark(&vars, &["keys", "new-master-key", "--id", "m2", "--json"])
        .await
        .json()["entry"]
        .as_str()
        .unwrap()
        .to_owned();
    vars.insert("IMARK_MASTER_KEYS".into(), new);

    let run = imark(&vars, &["keys", "rotate-master"]).await;

    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("`m1` (3)"), "{}", run.stderr);
    assert!(
        run.stderr.contains("nothing was re-sealed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM truemark_credentials WHERE master_key_id = 'm1'"
        )
        .await,
        3
    );
}

fn state_file() -> PathBuf {
    std::env::temp_dir().join(format!("imark-demo-{}.local.toml", Uuid::new_v4().simple()))
}

async fn demo(
    vars: &HashMap<String, String>,
    sandbox: &Sandbox,
    app: &TestApp,
    state: &Path,
) -> Value {
    let url = sandbox.discovery_url().to_string();
    demo_with(vars, &url, app, state).await.json()
}

/// Runs `imark-api demo` against the ЧЗ URL `url`.
async fn demo_with(vars: &HashMap<String, String>, url: &str, app: &TestApp, state: &Path) -> Run {
    let state = state.to_string_lossy().into_owned();
    imark(
        vars,
        &[
            "demo",
            "--json",
            "--sandbox-url",
            url,
            "--truemark-key",
            DEFAULT_API_KEY,
            "--region",
            "test",
            "--api-url",
            &app.address,
            "--state-file",
            &state,
        ],
    )
    .await
}

/// The status `/token` answers for `key`.
async fn token_status(app: &TestApp, key: &Value) -> u16 {
    let key = key.as_str().unwrap();
    app.send(app.http.get(app.url("/token")).header("X-API-Key", key))
        .await
        .status
}

/// Runs a printed curl line with `API` and `STORE` set, when curl is installed.
async fn run_curl(line: &str, api: &str, token: &str) -> Option<Value> {
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", line])
        .env("API", api)
        .env("STORE", token);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

#[tokio::test]
async fn the_demo_is_idempotent_and_its_requests_get_the_promised_verdicts() {
    let sandbox = Sandbox::start(SandboxConfig {
        fixture: Fixture::acceptance().unwrap(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let (app, vars) = app().await;
    let state = state_file();

    let first = demo(&vars, &sandbox, &app, &state).await;
    let second = demo(&vars, &sandbox, &app, &state).await;
    let curl_installed = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok();
    let token = second["store_token"].as_str().unwrap();
    let mut verdicts = Vec::new();
    for request in second["requests"].as_array().unwrap() {
        if curl_installed {
            let answer = run_curl(request["curl"].as_str().unwrap(), &app.address, token)
                .await
                .expect("the printed curl line gets a JSON answer");
            assert_eq!(answer["verdict"], request["expected_verdict"], "{answer}");
        }
        let response = app
            .post(request["path"].as_str().unwrap(), token, &request["body"])
            .await;
        assert_eq!(response.status, 200, "{}", response.text);
        verdicts.push((
            response.json()["verdict"].clone(),
            request["expected_verdict"].clone(),
        ));
    }
    let hq = app.token(second["hq_key"].as_str().unwrap()).await;
    let truemark = app.get("/truemark", &hq).await.json();
    #[cfg(unix)]
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).unwrap().permissions());
    std::fs::remove_file(&state).unwrap();
    let without_state = demo(&vars, &sandbox, &app, &state).await;
    std::fs::remove_file(&state).unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(state.file_name().unwrap().to_str().unwrap()))
        .collect();

    assert_eq!(
        first["created"],
        json!(["tenant", "hq_key", "store", "truemark_key", "store_key"])
    );
    assert_eq!(second["created"], json!([]));
    for field in ["tenant_id", "store_id", "hq_key", "store_key"] {
        assert_eq!(first[field], second[field], "{field}");
    }
    assert_eq!(
        second["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["expected_verdict"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["allow", "block", "allow"]
    );
    for (got, promised) in verdicts {
        assert_eq!(got, promised);
    }
    assert_eq!(
        truemark["tenant"]["base_url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/'),
        sandbox.discovery_url().as_str().trim_end_matches('/')
    );
    assert_eq!(count(&app, "SELECT count(*) AS n FROM tenants").await, 1);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM stores").await, 1);
    assert_eq!(without_state["tenant_id"], first["tenant_id"]);
    assert_eq!(without_state["store_id"], first["store_id"]);
    assert_eq!(without_state["created"], json!(["hq_key", "store_key"]));
    // The keys it replaced are revoked: the demo tenant keeps one live HQ key and one store key.
    assert_ne!(without_state["hq_key"], first["hq_key"]);
    assert_eq!(token_status(&app, &first["hq_key"]).await, 401);
    assert_eq!(token_status(&app, &first["store_key"]).await, 401);
    assert_eq!(token_status(&app, &without_state["hq_key"]).await, 200);
    assert_eq!(token_status(&app, &without_state["store_key"]).await, 200);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL"
        )
        .await,
        2
    );
    assert!(leftovers.is_empty(), "{leftovers:?}");
    #[cfg(unix)]
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn the_demo_checks_its_inputs_before_it_makes_anything() {
    let sandbox = Sandbox::start(SandboxConfig {
        fixture: Fixture::acceptance().unwrap(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let (app, vars) = app().await;
    let url = sandbox.discovery_url().to_string();
    let state = state_file();
    let unwritable = std::env::temp_dir()
        .join(format!("imark-no-such-dir-{}", Uuid::new_v4().simple()))
        .join("imark-demo.local.toml");
    let state_is_a_directory = std::env::temp_dir().join(format!(
        "imark-demo-dir-{}.local.toml",
        Uuid::new_v4().simple()
    ));
    std::fs::create_dir(&state_is_a_directory).unwrap();

    let bad_url = demo_with(&vars, "notaurl", &app, &state).await;
    let no_directory = demo_with(&vars, &url, &app, &unwritable).await;
    let a_directory = demo_with(&vars, &url, &app, &state_is_a_directory).await;
    let made = count(&app, "SELECT count(*) AS n FROM tenants").await
        + count(&app, "SELECT count(*) AS n FROM api_keys").await
        + count(&app, "SELECT count(*) AS n FROM stores").await;
    let good = demo_with(&vars, &url, &app, &state).await.json();
    // With the demo there, a bad URL still changes nothing and issues no key.
    let keys_before = count(&app, "SELECT count(*) AS n FROM api_keys").await;
    std::fs::remove_file(&state).unwrap();
    let bad_again = demo_with(&vars, "ftp://example.com", &app, &state).await;
    let keys_after = count(&app, "SELECT count(*) AS n FROM api_keys").await;
    std::fs::remove_dir(&state_is_a_directory).unwrap();

    for (run, what) in [
        (&bad_url, "truemark_url"),
        (&no_directory, "state_file"),
        (&a_directory, "state_file"),
        (&bad_again, "truemark_url"),
    ] {
        assert_ne!(run.code, 0, "{}", run.stdout);
        assert!(run.stderr.contains(what), "{what}: {}", run.stderr);
    }
    assert_eq!(made, 0, "nothing is made when an input is refused");
    assert_eq!(good["created"][0], "tenant");
    assert_eq!(keys_after, keys_before);
    assert!(!state.exists());
}
