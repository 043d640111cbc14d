//! `setup`: a reproducible load-test tenant. The app is found or created through the
//! control-plane's REST API; its licenses are generated there (500 per call) or, for millions,
//! inserted by PostgreSQL itself (`--database-url`). Writes the keys to a file (one per line) and
//! prints a JSON description the other subcommands and scripts can use. [`key_systems`] seeds
//! the Panda and Junkie rows' tenant the same way, [`cyberlicense`] the CyberLicense rows'.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::{json, Value};

pub struct Setup<'a> {
    pub control_plane: &'a str,
    /// An API key (`kw_…`) or, with `password`, an admin username.
    pub api_key: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub app_name: &'a str,
    pub licenses: u64,
    pub keys_file: &'a Path,
    pub database_url: Option<&'a str>,
    /// HWID lock of the app (off: any machine validates).
    pub hwid_lock: bool,
    /// Bulk path: mark the licenses used already (validating them is then a pure read).
    pub activated: bool,
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} {path}: {status} {body}");
        }
        Ok(body)
    }
}

pub async fn run(s: &Setup<'_>) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let base = s.control_plane.trim_end_matches('/').to_string();
    let token = match (s.api_key, s.username, s.password) {
        (Some(k), _, _) => k.to_string(),
        (None, Some(u), Some(p)) => {
            let r = http
                .post(format!("{base}/v1/auth/login"))
                .json(&json!({"username": u, "password": p}))
                .send()
                .await
                .context("logging in to the control-plane")?;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            match body["token"].as_str() {
                Some(t) if status.is_success() => t.to_string(),
                _ => bail!("login failed: {status} {body}"),
            }
        }
        _ => bail!("give --api-key, or --username and --password"),
    };
    let api = Api { http, base, token };
    let account = api.call(reqwest::Method::GET, "/v1/account", None).await?;
    let apps = api.call(reqwest::Method::GET, "/v1/apps", None).await?;
    let existing = apps["items"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == s.app_name).cloned());
    let app = match existing {
        Some(app) => app,
        None => {
            api.call(
                reqwest::Method::POST,
                "/v1/apps",
                Some(json!({"name": s.app_name, "hwid_lock": s.hwid_lock})),
            )
            .await?
        }
    };
    let app_id = app["id"].as_str().context("app id")?.to_string();
    let account_id = account["id"].as_str().context("account id")?.to_string();
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(s.keys_file)
            .with_context(|| format!("creating {}", s.keys_file.display()))?,
    );
    match s.database_url {
        Some(url) => {
            let prefix = format!("LT{}", &app_id[..8].to_ascii_uppercase());
            seed_in_database(url, &account_id, &app_id, &prefix, s.licenses, s.activated).await?;
            for i in 1..=s.licenses {
                writeln!(out, "{prefix}-{i:010}")?;
            }
        }
        None => {
            let mut left = s.licenses;
            while left > 0 {
                let n = left.min(500);
                let made = api
                    .call(
                        reqwest::Method::POST,
                        &format!("/v1/apps/{app_id}/licenses"),
                        Some(json!({"count": n, "hwid_limit": 0, "ip_limit": 0, "note": "load test"})),
                    )
                    .await?;
                for l in made["licenses"].as_array().into_iter().flatten() {
                    if let Some(k) = l["key"].as_str() {
                        writeln!(out, "{k}")?;
                    }
                }
                left -= n;
            }
        }
    }
    out.flush()?;
    Ok(json!({
        "app_id": app_id,
        "app_name": app["name"],
        "owner": account["public_id"],
        "secret": app["secret"],
        "licenses": s.licenses,
        "keys_file": s.keys_file.display().to_string(),
    }))
}

/// One `INSERT … SELECT generate_series` per million, each committed with its invalidation.
async fn seed_in_database(
    url: &str,
    account_id: &str,
    app_id: &str,
    prefix: &str,
    count: u64,
    activated: bool,
) -> anyhow::Result<()> {
    let cfg = keyward_shared::db::pg_config(url, "keyward-loadtest-setup")?;
    let mut client = keyward_shared::db::connect(&cfg).await?;
    let actor = keyward_shared::write::Actor {
        origin: Default::default(),
        account_id: account_id.parse()?,
        label: "loadtest-setup".into(),
    };
    let app: uuid::Uuid = app_id.parse()?;
    let mut first: u64 = 1;
    while first <= count {
        let n = (count - first + 1).min(1_000_000);
        let mut w = keyward_shared::write::WriteTx::begin(&mut client, actor.clone()).await?;
        keyward_shared::store::licenses::seed_sequential(
            &mut w,
            app,
            prefix,
            (first as i64, n as i64),
            activated,
        )
        .await?;
        w.commit().await?;
        first += n;
    }
    // Leave PostgreSQL quiet for the measurements: statistics now rather than whenever
    // autovacuum gets to a table that grew by millions of rows (until then it guesses, and picks
    // bitmap scans for unique lookups), that autovacuum pass done now too, and the bulk load's
    // WAL checkpointed now rather than spread over the first minutes of the run, on the cores
    // the measurements share.
    // One statement per call: several in one query string run as one transaction, which VACUUM
    // refuses.
    for statement in [
        "VACUUM (ANALYZE) licenses",
        "VACUUM (ANALYZE) license_usage",
        "ANALYZE machines",
        "ANALYZE license_ips",
    ] {
        client.batch_execute(statement).await?;
    }
    if let Err(e) = client.batch_execute("CHECKPOINT").await {
        // Needs superuser or pg_checkpoint; the seed is complete without it.
        eprintln!("note: no CHECKPOINT after seeding ({e}); the first minutes may be noisier");
    }
    Ok(())
}

/// What the Panda and Junkie rows send: one app that is both a Panda service (`service_id`)
/// and a Junkie service (its name, under the account's integer id), a Panda service key, and
/// one key for each, bound to one HWID by their first validation.
pub struct KeySystems {
    /// Panda's `service`.
    pub service_id: String,
    /// Junkie's `service` (the app's name).
    pub service_name: String,
    /// Junkie's `identifier`: the account's integer id.
    pub identifier: String,
    /// Panda's `apiKey`.
    pub service_key: String,
    pub panda_key: String,
    pub junkie_key: String,
}

/// Finds or creates the app `app_name` (HWID lock on), gives it `service_id`, a service key and
/// two native licenses of one HWID each, and reads the account's integer id.
pub async fn key_systems(
    control_plane: &str,
    token: &str,
    app_name: &str,
    service_id: &str,
) -> anyhow::Result<KeySystems> {
    let api = Api {
        http: reqwest::Client::new(),
        base: control_plane.trim_end_matches('/').to_string(),
        token: token.to_string(),
    };
    let account = api.call(reqwest::Method::GET, "/v1/account", None).await?;
    let identifier = account["num_id"]
        .as_i64()
        .with_context(|| format!("GET /v1/account has no num_id: {account}"))?
        .to_string();
    let apps = api.call(reqwest::Method::GET, "/v1/apps", None).await?;
    let existing = apps["items"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == app_name).cloned());
    let app = match existing {
        Some(app) => app,
        None => {
            api.call(
                reqwest::Method::POST,
                "/v1/apps",
                Some(json!({"name": app_name, "hwid_lock": true})),
            )
            .await?
        }
    };
    let app_id = app["id"].as_str().context("app id")?;
    api.call(
        reqwest::Method::PATCH,
        &format!("/v1/apps/{app_id}"),
        Some(json!({"service_id": service_id, "hwid_lock": true})),
    )
    .await?;
    let service_key = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/apps/{app_id}/service-keys"),
            Some(json!({"name": "bench"})),
        )
        .await?;
    let made = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/apps/{app_id}/licenses"),
            Some(json!({"count": 2, "hwid_limit": 1, "ip_limit": 0, "note": "load test"})),
        )
        .await?;
    let keys: Vec<&str> = made["licenses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["key"].as_str())
        .collect();
    let [panda_key, junkie_key] = keys[..] else {
        bail!(
            "POST /v1/apps/{app_id}/licenses made {} keys, not 2",
            keys.len()
        );
    };
    Ok(KeySystems {
        service_id: service_id.to_string(),
        service_name: app_name.to_string(),
        identifier,
        service_key: service_key["key"]
            .as_str()
            .context("service key plaintext")?
            .to_string(),
        panda_key: panda_key.to_string(),
        junkie_key: junkie_key.to_string(),
    })
}

/// What the CyberLicense rows send: a `fixed` license and a `consumption` one of
/// [`CONSUMPTION_CREDITS`] credits, each of one IP and one HWID (bound by its first validation).
pub struct CyberLicense {
    pub fixed_key: String,
    pub consumption_key: String,
    /// The consumption license's id, to read its credits spent (`GET /v1/licenses/{id}`).
    pub consumption_id: String,
}

/// Credits of the consumption license: the most the core gives a license (`max_uses` ≤ 10^6),
/// several times what a full run spends.
pub const CONSUMPTION_CREDITS: i64 = 1_000_000;

/// Finds or creates the app `app_name` and gives it the two licenses of [`CyberLicense`].
pub async fn cyberlicense(
    control_plane: &str,
    token: &str,
    app_name: &str,
) -> anyhow::Result<CyberLicense> {
    let api = Api {
        http: reqwest::Client::new(),
        base: control_plane.trim_end_matches('/').to_string(),
        token: token.to_string(),
    };
    let apps = api.call(reqwest::Method::GET, "/v1/apps", None).await?;
    let existing = apps["items"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == app_name).cloned());
    let app = match existing {
        Some(app) => app,
        None => {
            api.call(
                reqwest::Method::POST,
                "/v1/apps",
                Some(json!({"name": app_name})),
            )
            .await?
        }
    };
    let app_id = app["id"].as_str().context("app id")?;
    let mut made = Vec::new();
    for spec in [
        json!({"license_type": "fixed", "hwid_limit": 1, "ip_limit": 1, "note": "load test"}),
        json!({"license_type": "consumption", "max_uses": CONSUMPTION_CREDITS,
               "hwid_limit": 1, "ip_limit": 1, "note": "load test"}),
    ] {
        let path = format!("/v1/apps/{app_id}/licenses");
        let out = api.call(reqwest::Method::POST, &path, Some(spec)).await?;
        let license = out["licenses"]
            .get(0)
            .cloned()
            .with_context(|| format!("POST {path} made no license: {out}"))?;
        made.push(license);
    }
    let text = |l: &Value, field: &str| -> anyhow::Result<String> {
        Ok(l[field]
            .as_str()
            .with_context(|| format!("license without {field}: {l}"))?
            .to_string())
    };
    Ok(CyberLicense {
        fixed_key: text(&made[0], "key")?,
        consumption_key: text(&made[1], "key")?,
        consumption_id: text(&made[1], "id")?,
    })
}

/// A license's uses (a consumption license's credits spent), as the control-plane reads it.
pub async fn license_uses(control_plane: &str, token: &str, id: &str) -> anyhow::Result<i64> {
    let api = Api {
        http: reqwest::Client::new(),
        base: control_plane.trim_end_matches('/').to_string(),
        token: token.to_string(),
    };
    let license = api
        .call(reqwest::Method::GET, &format!("/v1/licenses/{id}"), None)
        .await?;
    license["uses"]
        .as_i64()
        .with_context(|| format!("GET /v1/licenses/{id} has no uses: {license}"))
}
