//! The deployment files under `deploy/`, checked without Docker or a cluster: every file parses,
//! the environment each gives the binaries loads through iMark's own configuration once its
//! placeholders are filled in (and is refused as shipped), probes and healthchecks name real
//! routes and ports, migrations run before a pod starts, only the API is published beyond this
//! machine, the image holds the workspace's binaries, and the dashboard asks only for metrics the
//! code records.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use imark_core::config::{Config, ConfigError};
use serde::Deserialize as _;
use serde_norway::Value;

/// The binaries the image ships.
const IMAGE_BINARIES: [&str; 3] = ["imark-api", "imark-worker", "truemark-sandbox"];

/// What an operator fills in for the placeholders of `deploy/imark.env.example` and
/// `deploy/k8s/secret.yaml`: valid values, known only to these tests.
const FILLED_IN: [(&str, &str); 6] = [
    ("POSTGRES_PASSWORD", "deploy-test-postgres-password"),
    (
        "IMARK_DATABASE_URL",
        "postgres://imark:deploy-test-password@imark-postgres-primary:5432/imark?sslmode=require",
    ),
    (
        "IMARK_PLATFORM_KEY",
        "imk_pl_deploy-test-platform-key-0123456789abcdef",
    ),
    (
        "IMARK_JWT_KEYS",
        "jwt-test:deploy-test-signing-secret-0123456789abcdef",
    ),
    (
        "IMARK_MASTER_KEYS",
        "master-test:ZGVwbG95LXRlc3QtZml4dHVyZS1tYXN0ZXIta2V5ISE=",
    ),
    (
        "IMARK_API_KEY_PEPPER",
        "deploy-test-api-key-pepper-0123456789abcdef",
    ),
];

/// The secrets the configuration loader itself validates: a placeholder left in any of them
/// must stop the process.
const VALIDATED_SECRETS: [&str; 4] = [
    "IMARK_PLATFORM_KEY",
    "IMARK_JWT_KEYS",
    "IMARK_MASTER_KEYS",
    "IMARK_API_KEY_PEPPER",
];

/// `vars` with every placeholder replaced by its [`FILLED_IN`] value; a secret without one fails
/// the test, so that a new secret gets a fixture.
fn filled_in(mut vars: HashMap<String, String>) -> HashMap<String, String> {
    for (key, value) in &mut vars {
        if let Some((_, filled)) = FILLED_IN.iter().find(|(name, _)| name == key) {
            (*filled).clone_into(value);
        } else {
            assert!(!placeholder(value), "{key} has no FILLED_IN value");
        }
    }
    vars
}

/// Whether `value` is an example's placeholder: empty, or marked `CHANGE-ME`.
fn placeholder(value: &str) -> bool {
    value.is_empty() || value.contains("CHANGE-ME")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every YAML document of the file at `path`.
fn yaml_documents(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|e| panic!("{path} parses: {e}"))
        })
        .filter(|document| !document.is_null())
        .collect()
}

fn yaml(path: &str) -> Value {
    let mut documents = yaml_documents(path);
    assert_eq!(documents.len(), 1, "{path} holds one document");
    documents.remove(0)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| items.iter().map(text).collect())
        .unwrap_or_default()
}

fn map(value: &Value) -> HashMap<String, String> {
    value
        .as_mapping()
        .map(|m| m.iter().map(|(k, v)| (text(k), text(v))).collect())
        .unwrap_or_default()
}

/// `KEY=VALUE` lines; comments and blank lines skipped.
fn env_file(path: &str) -> HashMap<String, String> {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, value) = l.split_once('=').expect("KEY=VALUE");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?message}` with `vars`. An unset name
/// without a default is an error, and so is an empty one under `:?` (compose refuses both).
fn interpolate(value: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${…}") + start;
        let inner = &rest[start + 2..end];
        let (name, default, required) = match (inner.split_once(":-"), inner.split_once(":?")) {
            (Some((name, default)), _) => (name, Some(default), false),
            (None, Some((name, _))) => (name, None, true),
            (None, None) => (inner, None, false),
        };
        match (vars.get(name), default) {
            (Some(value), _) if required && value.is_empty() => {
                return Err(format!("`{name}` is empty"));
            }
            (Some(value), _) => out.push_str(value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(format!("`{name}` is used in {value} but never set")),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn load(vars: HashMap<String, String>) -> Result<Config, ConfigError> {
    let environment = config::Environment::with_prefix("IMARK")
        .try_parsing(true)
        .source(Some(vars));
    Config::load(None, environment)
}

/// The `[[bin]]` names of every workspace member.
fn workspace_binaries() -> BTreeSet<String> {
    let manifest = read("Cargo.toml");
    let members = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .expect("the workspace lists its members")
        .0;
    let mut binaries = BTreeSet::new();
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        if member.is_empty() {
            continue;
        }
        let mut in_bin = false;
        for line in read(&format!("{member}/Cargo.toml")).lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
                binaries.insert(name.trim_matches('"').to_owned());
            }
        }
    }
    binaries
}

/// Every path of the published API.
fn api_paths() -> BTreeSet<String> {
    yaml("openapi.yaml")["paths"]
        .as_mapping()
        .expect("openapi.yaml has paths")
        .keys()
        .map(text)
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("{addr}: {e}"))
        .port()
}

/// The path and port of an `http://host:port/path` in a healthcheck command.
fn url_in(command: &[String]) -> (String, u16) {
    let url = command
        .iter()
        .find(|arg| arg.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {command:?}"));
    let url = url::Url::parse(url).unwrap();
    (url.path().to_owned(), url.port().expect("an explicit port"))
}

// ---------------------------------------------------------------------------------- the image

#[test]
fn the_image_ships_exactly_the_three_binaries_of_the_workspace_as_a_user() {
    let dockerfile = read("deploy/Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let stages: Vec<&str> = instructions
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();

    assert!(
        stages.len() >= 2,
        "a build stage and a runtime stage: {stages:?}"
    );
    assert!(stages[0].starts_with("rust:"), "{}", stages[0]);
    let runtime = stages.last().unwrap();
    assert!(
        runtime.contains("-slim") || runtime.starts_with("gcr.io/distroless/"),
        "{runtime}"
    );
    let copied: BTreeSet<String> = instructions
        .iter()
        .filter(|l| l.starts_with("COPY --from="))
        .flat_map(|l| l.split_whitespace().skip(2))
        .filter(|arg| arg.starts_with("/out/"))
        .map(|arg| arg.trim_start_matches("/out/").to_owned())
        .collect();
    let expected: BTreeSet<String> = IMAGE_BINARIES.iter().map(|b| (*b).to_owned()).collect();
    assert_eq!(copied, expected);
    let workspace = workspace_binaries();
    for binary in IMAGE_BINARIES {
        assert!(
            workspace.contains(binary),
            "{binary} is not a workspace binary"
        );
    }
    let user = instructions
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the image names a user");
    assert!(
        !matches!(user.split(':').next(), Some("root" | "0")),
        "{user}"
    );

    let ignored = read(".dockerignore");
    for entry in ["target", ".git", "*.local.toml", "deploy/imark.env"] {
        assert!(ignored.lines().any(|l| l.trim() == entry), "{entry}");
    }
}

// -------------------------------------------------------------------------------- compose

fn compose_services() -> serde_norway::Mapping {
    yaml("deploy/docker-compose.yml")["services"]
        .as_mapping()
        .expect("compose has services")
        .clone()
}

/// What compose puts in a service's environment: its `env_file`s (from their `.example`, the
/// one in the repository, filled in) and its `environment`, interpolated with the filled-in
/// example's values.
fn compose_environment(service: &Value) -> HashMap<String, String> {
    let example = filled_in(env_file("deploy/imark.env.example"));
    let mut vars = HashMap::new();
    for file in strings(&service["env_file"]) {
        vars.extend(filled_in(env_file(&format!("deploy/{file}.example"))));
    }
    for (key, value) in map(&service["environment"]) {
        let value = interpolate(&value, &example).unwrap_or_else(|e| panic!("{key}: {e}"));
        vars.insert(key, value);
    }
    vars
}

/// The host address and port of each port a compose service publishes, short (`[ip:]host:
/// container`) or long (`host_ip`, `published`) syntax.
fn published_ports(service: &Value) -> Vec<(String, u16)> {
    let Some(ports) = service["ports"].as_sequence() else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|port| {
            if port.is_mapping() {
                let ip = port["host_ip"].as_str().unwrap_or("0.0.0.0").to_owned();
                return (ip, text(&port["published"]).parse().unwrap());
            }
            let spec = text(port);
            let parts: Vec<&str> = spec.split(':').collect();
            match parts[..] {
                [ip, host, _] => (ip.to_owned(), host.parse().unwrap()),
                [host, _] => ("0.0.0.0".to_owned(), host.parse().unwrap()),
                _ => panic!("publish the port with its host port: {spec}"),
            }
        })
        .collect()
}

#[test]
fn compose_services_depend_only_on_services_that_exist_in_states_they_reach() {
    let services = compose_services();
    let names: BTreeSet<String> = services.keys().map(text).collect();

    for needed in ["postgres", "redis", "migrate", "api", "worker", "sandbox"] {
        assert!(names.contains(needed), "{needed} is missing");
    }
    for (name, service) in &services {
        let Some(depends) = service["depends_on"].as_mapping() else {
            continue;
        };
        for (dependency, how) in depends {
            let dependency = text(dependency);
            let target = services
                .get(dependency.as_str())
                .unwrap_or_else(|| panic!("{name:?} depends on unknown {dependency}"));
            match text(&how["condition"]).as_str() {
                "service_healthy" => assert!(
                    !target["healthcheck"].is_null(),
                    "{dependency} has no healthcheck to wait for"
                ),
                "service_completed_successfully" => {
                    assert_eq!(text(&target["restart"]), "no", "{dependency} runs once");
                }
                "service_started" => {}
                other => panic!("unknown condition {other}"),
            }
        }
    }
    let api_waits_for = |service: &str| {
        services["api"]["depends_on"]
            .as_mapping()
            .unwrap()
            .contains_key(service)
    };
    assert!(api_waits_for("migrate") && api_waits_for("postgres") && api_waits_for("redis"));
}

#[test]
fn compose_gives_every_binary_a_configuration_that_loads() {
    let services = compose_services();
    let mut checked = Vec::new();

    for (name, service) in &services {
        let command = strings(&service["command"]);
        let Some(binary) = command.first() else {
            continue;
        };
        if !IMAGE_BINARIES.contains(&binary.as_str()) {
            continue;
        }
        if binary == "truemark-sandbox" {
            checked.push(binary.clone());
            continue;
        }
        let config = load(compose_environment(service)).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        if command[1..] != ["migrate"] {
            assert!(
                !config.migrate_on_start,
                "{name:?}: the migrate service migrates"
            );
        }
        checked.push(binary.clone());
    }

    assert_eq!(
        strings(&services["migrate"]["command"]),
        ["imark-api", "migrate"]
    );
    for binary in IMAGE_BINARIES {
        assert!(checked.iter().any(|b| b == binary), "{binary} is not run");
    }
}

#[test]
fn compose_healthchecks_ask_real_routes_on_the_configured_ports() {
    let services = compose_services();
    let api = &services["api"];
    let worker = &services["worker"];
    let api_env = compose_environment(api);
    let worker_env = compose_environment(worker);

    let (path, port) = url_in(&strings(&api["healthcheck"]["test"]));
    assert!(api_paths().contains(&path), "{path}");
    assert_eq!(port, port_of(&api_env["IMARK_LISTEN_ADDR"]));

    let (path, port) = url_in(&strings(&worker["healthcheck"]["test"]));
    assert_eq!(path, "/metrics");
    assert_eq!(port, port_of(&worker_env["IMARK_METRICS_ADDR"]));
}

#[test]
fn compose_publishes_only_the_api_beyond_this_machine() {
    let services = compose_services();
    let api_port = port_of(&compose_environment(&services["api"])["IMARK_LISTEN_ADDR"]);
    let mut public = Vec::new();

    for (name, service) in &services {
        for (ip, port) in published_ports(service) {
            if ip != "127.0.0.1" && ip != "::1" {
                public.push((text(name), port));
            }
        }
    }

    // Metrics, the emulator (a publicly known key) with its fault-injection control API, and
    // Prometheus have no authentication: loopback only.
    assert_eq!(public, [("api".to_owned(), api_port)]);
    let local: BTreeSet<u16> = services
        .values()
        .flat_map(published_ports)
        .filter(|(ip, _)| ip == "127.0.0.1")
        .map(|(_, port)| port)
        .collect();
    for port in [9090, 8480, 8490, 9099] {
        assert!(local.contains(&port), "{port} is published on 127.0.0.1");
    }
}

#[test]
fn compose_refuses_to_start_with_the_example_as_it_is() {
    let example = env_file("deploy/imark.env.example");
    let services = compose_services();

    let password = map(&services["postgres"]["environment"])["POSTGRES_PASSWORD"].clone();
    assert!(
        interpolate(&password, &example).is_err(),
        "compose must refuse an empty POSTGRES_PASSWORD"
    );
    for name in ["migrate", "api", "worker"] {
        let service = &services[name];
        // Even with a Postgres password filled in, the example's secrets stop the binaries.
        let mut vars = compose_environment(service);
        for file in strings(&service["env_file"]) {
            vars.extend(env_file(&format!("deploy/{file}.example")));
        }
        let error = load(vars).expect_err("the example's placeholders are refused");
        assert!(
            VALIDATED_SECRETS
                .iter()
                .any(|var| error.to_string().contains(var)),
            "{name}: {error}"
        );
    }
}

// ----------------------------------------------------------------------------- kubernetes

/// Every manifest under `deploy/k8s`, with its file name.
fn manifests() -> Vec<(String, Value)> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("deploy/k8s"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|file| {
            yaml_documents(&format!("deploy/k8s/{file}"))
                .into_iter()
                .map(move |doc| (file.clone(), doc))
        })
        .collect()
}

fn find(kind: &str, name: &str) -> Value {
    manifests()
        .into_iter()
        .map(|(_, doc)| doc)
        .find(|doc| text(&doc["kind"]) == kind && text(&doc["metadata"]["name"]) == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn of_kind(kind: &str) -> Vec<Value> {
    manifests()
        .into_iter()
        .map(|(_, doc)| doc)
        .filter(|doc| text(&doc["kind"]) == kind)
        .collect()
}

/// Every container and init container of every workload, with its workload's name.
fn containers() -> Vec<(String, Value)> {
    ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"]
        .into_iter()
        .flat_map(of_kind)
        .flat_map(|workload| {
            let name = text(&workload["metadata"]["name"]);
            let pod = &workload["spec"]["template"]["spec"];
            let main = pod["containers"]
                .as_sequence()
                .expect("a workload has containers");
            let init = pod["initContainers"].as_sequence().into_iter().flatten();
            main.iter()
                .chain(init)
                .map(|c| (name.clone(), c.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What the ConfigMaps and Secrets of the manifests give a container through `envFrom`, as
/// they are in the repository.
fn shipped_environment(container: &Value) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for source in container["envFrom"].as_sequence().expect("envFrom") {
        if let Some(name) = source["configMapRef"]["name"].as_str() {
            vars.extend(map(&find("ConfigMap", name)["data"]));
        }
        if let Some(name) = source["secretRef"]["name"].as_str() {
            vars.extend(map(&find("Secret", name)["stringData"]));
        }
    }
    vars
}

/// [`shipped_environment`] once the operator filled in the Secret.
fn kubernetes_environment(container: &Value) -> HashMap<String, String> {
    filled_in(shipped_environment(container))
}

/// The `containerPort` of the container's port named or numbered `port`.
fn container_port(container: &Value, port: &Value) -> u16 {
    if let Some(number) = port.as_u64() {
        return u16::try_from(number).unwrap();
    }
    let name = text(port);
    container["ports"]
        .as_sequence()
        .expect("the container declares its ports")
        .iter()
        .find(|p| text(&p["name"]) == name)
        .map(|p| u16::try_from(p["containerPort"].as_u64().unwrap()).unwrap())
        .unwrap_or_else(|| panic!("no port named {name}"))
}

#[test]
fn every_manifest_parses_names_itself_and_is_in_the_kustomization() {
    let manifests = manifests();
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();

    let mut files = BTreeSet::new();
    for (file, doc) in &manifests {
        assert!(doc["apiVersion"].is_string(), "{file}");
        assert!(doc["kind"].is_string(), "{file}");
        if file != "kustomization.yaml" {
            assert!(doc["metadata"]["name"].is_string(), "{file}");
            files.insert(file.clone());
        }
    }
    assert_eq!(listed, files, "the kustomization lists every manifest");
    for kind in [
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    ] {
        assert!(!of_kind(kind).is_empty(), "no {kind}");
    }
}

#[test]
fn every_kubernetes_container_gets_a_configuration_that_loads() {
    let binaries = workspace_binaries();

    for (workload, container) in containers() {
        let command = strings(&container["command"]);
        assert!(
            binaries.contains(&command[0]) && IMAGE_BINARIES.contains(&command[0].as_str()),
            "{workload}: {command:?}"
        );
        let config =
            load(kubernetes_environment(&container)).unwrap_or_else(|e| panic!("{workload}: {e}"));
        assert!(
            !config.migrate_on_start,
            "{workload}: the init container migrates"
        );
        let resources = &container["resources"];
        assert!(
            resources["requests"]["cpu"].is_string() && resources["requests"]["memory"].is_string(),
            "{workload}: requests"
        );
        assert!(
            resources["limits"]["memory"].is_string(),
            "{workload}: limits"
        );
    }
    for workload in ["Deployment", "Job"].into_iter().flat_map(of_kind) {
        let name = text(&workload["metadata"]["name"]);
        let security = &workload["spec"]["template"]["spec"]["securityContext"];
        assert_eq!(security["runAsNonRoot"].as_bool(), Some(true), "{name}");
        assert_eq!(
            text(&security["seccompProfile"]["type"]),
            "RuntimeDefault",
            "{name}"
        );
    }
}

#[test]
fn every_deployment_migrates_in_an_init_container_before_its_pods_start() {
    // A Job applied with the Deployments would race the rollout (new pods Ready on the old
    // schema), and a finished Job cannot be applied again: the pods migrate themselves.
    assert!(of_kind("Job").is_empty(), "no migrations Job");
    assert!(of_kind("CronJob").is_empty());

    for name in ["imark-api", "imark-worker"] {
        let deployment = find("Deployment", name);
        let pod = &deployment["spec"]["template"]["spec"];
        let init = pod["initContainers"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has no init containers"));
        let migrate: Vec<&Value> = init
            .iter()
            .filter(|c| strings(&c["command"]) == ["imark-api", "migrate"])
            .collect();
        assert_eq!(migrate.len(), 1, "{name}: one `imark-api migrate`");
        let migrate = migrate[0];
        let main = &pod["containers"][0];
        assert_eq!(
            text(&migrate["image"]),
            text(&main["image"]),
            "{name}: the migrations of the image that runs"
        );
        assert_eq!(
            migrate["envFrom"], main["envFrom"],
            "{name}: the same database"
        );
        let config = load(kubernetes_environment(main)).unwrap();
        assert!(
            !config.migrate_on_start,
            "{name}: the main container does not migrate again"
        );
        let security = &migrate["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
        assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    }
}

#[test]
fn the_shipped_secret_is_refused_until_every_placeholder_is_replaced() {
    let api = find("Deployment", "imark-api");
    let container = &api["spec"]["template"]["spec"]["containers"][0];
    let shipped = shipped_environment(container);
    let filled = kubernetes_environment(container);

    let as_shipped = load(shipped.clone());
    assert!(as_shipped.is_err(), "the placeholders must not load");
    assert!(load(filled.clone()).is_ok());
    // Each validated secret left as its placeholder stops the process on its own.
    for var in VALIDATED_SECRETS {
        let mut one_left = filled.clone();
        one_left.insert(var.to_owned(), shipped[var].clone());
        let error = load(one_left).expect_err(var).to_string();
        assert!(error.contains(var), "{var}: {error}");
    }
}

#[test]
fn probes_services_and_scrape_annotations_point_at_real_paths_and_ports() {
    let api = find("Deployment", "imark-api");
    let pod = &api["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let env = kubernetes_environment(container);
    let paths = api_paths();
    let listen = port_of(&env["IMARK_LISTEN_ADDR"]);
    let metrics = port_of(&env["IMARK_METRICS_ADDR"]);

    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(text(&get["path"]), path, "{probe}");
        assert!(paths.contains(path), "{path} is not an API route");
        assert_eq!(container_port(container, &get["port"]), listen, "{probe}");
    }

    for workload in [&api, &find("Deployment", "imark-worker")] {
        let annotations = map(&workload["spec"]["template"]["metadata"]["annotations"]);
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
        let port: u16 = annotations["prometheus.io/port"].parse().unwrap();
        let container = &workload["spec"]["template"]["spec"]["containers"][0];
        let env = kubernetes_environment(container);
        assert_eq!(port, port_of(&env["IMARK_METRICS_ADDR"]));
        assert_eq!(container_port(container, &Value::from("metrics")), metrics);
    }
    let worker = find("Deployment", "imark-worker");
    let worker_container = &worker["spec"]["template"]["spec"]["containers"][0];
    let liveness = &worker_container["livenessProbe"]["httpGet"];
    assert_eq!(text(&liveness["path"]), "/metrics");
    assert_eq!(container_port(worker_container, &liveness["port"]), metrics);

    let service = find("Service", "imark-api");
    let labels = map(&pod["metadata"]["labels"]);
    for (key, value) in map(&service["spec"]["selector"]) {
        assert_eq!(
            labels.get(&key),
            Some(&value),
            "the Service selects the API"
        );
    }
    let selector = map(&api["spec"]["selector"]["matchLabels"]);
    for (key, value) in &selector {
        assert_eq!(
            labels.get(key),
            Some(value),
            "the Deployment selects its pods"
        );
    }
    for port in service["spec"]["ports"].as_sequence().unwrap() {
        container_port(container, &port["targetPort"]);
    }
    let hpa = of_kind("HorizontalPodAutoscaler").remove(0);
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(text(&target["kind"]), "Deployment");
    assert_eq!(text(&target["name"]), "imark-api");
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
}

// ----------------------------------------------------------------------- metrics consumers

/// The metric names in a PromQL expression: `imark_…` words, histogram series mapped back to
/// their histogram.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("imark_") {
        let word: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[start + word.len()..];
        let histogram = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| word.strip_suffix(suffix))
            .filter(|base| base.ends_with("_seconds"));
        names.push(histogram.unwrap_or(&word).to_owned());
    }
    names
}

fn expressions(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, value) in fields {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => found.push(expr.clone()),
                    _ => expressions(value, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| expressions(v, found)),
        _ => {}
    }
}

#[test]
fn the_dashboard_charts_every_recorded_metric_and_nothing_else() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/imark.json")).expect("the dashboard parses");
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);

    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metrics_in(e)).collect();
    let recorded: BTreeSet<String> = imark_core::metrics::NAMES
        .iter()
        .map(|n| (*n).to_owned())
        .collect();

    assert!(!exprs.is_empty());
    let unknown: Vec<&String> = used.difference(&recorded).collect();
    assert!(unknown.is_empty(), "not recorded by the code: {unknown:?}");
    let missing: Vec<&String> = recorded.difference(&used).collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}

#[test]
fn prometheus_scrapes_the_compose_metrics_listeners() {
    let prometheus = yaml("deploy/prometheus.yml");
    let services = compose_services();
    let jobs = prometheus["scrape_configs"].as_sequence().unwrap();

    let mut targets = Vec::new();
    for job in jobs {
        for config in job["static_configs"].as_sequence().into_iter().flatten() {
            targets.extend(strings(&config["targets"]));
        }
    }

    assert!(!targets.is_empty());
    for target in targets {
        let (host, port) = target.split_once(':').unwrap();
        let service = services
            .get(host)
            .unwrap_or_else(|| panic!("{host} is no compose service"));
        let env = compose_environment(service);
        assert_eq!(
            port.parse::<u16>().unwrap(),
            port_of(&env["IMARK_METRICS_ADDR"]),
            "{target}"
        );
    }
    assert!(
        jobs.iter()
            .any(|job| !job["kubernetes_sd_configs"].is_null()),
        "the annotated pods are scraped too"
    );
}

#[test]
fn every_secret_in_the_examples_is_a_marked_placeholder_that_is_refused() {
    let example = env_file("deploy/imark.env.example");
    let secret = map(&find("Secret", "imark-secrets")["stringData"]);
    let filled: HashMap<String, String> = filled_in(example.clone())
        .into_iter()
        .chain(filled_in(secret.clone()))
        .collect();

    for (key, value) in example.iter().chain(&secret) {
        assert!(placeholder(value), "{key} must be a marked placeholder");
    }
    for var in VALIDATED_SECRETS {
        for (source, vars) in [("imark.env.example", &example), ("secret.yaml", &secret)] {
            let mut one_left = filled.clone();
            one_left.insert(var.to_owned(), vars[var].clone());
            one_left.insert("IMARK_REDIS_URL".into(), "redis://redis:6379".into());
            let error = load(one_left).expect_err(var).to_string();
            assert!(error.contains(var), "{source}, {var}: {error}");
        }
    }
}

#[tokio::test]
async fn redis_urls_may_use_tls() {
    // Managed Redis is often reachable only over TLS: `rediss://` must be understood ...
    let client = redis::Client::open("rediss://:secret@redis.example.com:6380/0")
        .expect("the redis crate is built with TLS");
    assert!(matches!(
        client.get_connection_info().addr(),
        redis::ConnectionAddr::TcpTls { .. }
    ));

    // ... and connecting starts a TLS handshake (here with a peer that hangs up), with the
    // process's crypto provider, rather than failing for want of TLS support.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let url = secrecy::SecretString::from(format!("rediss://127.0.0.1:{port}"));
    let error = imark_core::cache::Cache::connect(&url, "deploy-test".into())
        .await
        .expect_err("nobody speaks TLS there");
    peer.abort();
    assert_ne!(
        error.kind(),
        redis::ErrorKind::InvalidClientConfig,
        "{error}"
    );
    assert!(!error.to_string().contains("feature"), "{error}");
}
