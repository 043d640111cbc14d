//! `control-plane demo`: a ready-to-try tenant for the local run. Idempotent: an existing demo
//! account gets a fresh password and API key, the demo app is reused, and a fresh license is
//! issued for the printed `curl`, so that it validates on every run.

use keyward_shared::model::{App, License};
use keyward_shared::store::{accounts, api_keys, apps, licenses};
use keyward_shared::write::{Actor, WriteTx};
use keyward_shared::{db, secrets};

const USERNAME: &str = "demo";
const APP_NAME: &str = "Demo App";
const MASK: &str = "DEMO-XXXX-XXXX-XXXX";

pub struct Demo {
    pub password: String,
    pub api_key: String,
    pub app: App,
    pub samples: Vec<License>,
    pub curl_key: String,
}

pub async fn create(database_url: &str) -> anyhow::Result<Demo> {
    let password = secrets::random_token(16);
    let hash = crate::hash_password(&password).await?;
    let mut c = db::connect(&db::pg_config(database_url, "keyward-demo")?).await?;
    let account = match accounts::find_for_login(&c, USERNAME).await? {
        Some((account, _)) => {
            accounts::set_password(&c, account.id, &hash).await?;
            account
        }
        None => accounts::create(&c, USERNAME, None, &hash).await?,
    };
    let actor = Actor {
        account_id: account.id,
        label: "demo".into(),
    };
    let existing = apps::list(&c, account.id)
        .await?
        .into_iter()
        .find(|a| a.name == APP_NAME);
    let mut w = WriteTx::begin(&mut c, actor).await?;
    let (_, api_key) = api_keys::create(&mut w, "demo", &["*".to_string()]).await?;
    let (app, samples) = match existing {
        Some(app) => (app, Vec::new()),
        None => {
            let app = apps::create(
                &mut w,
                &apps::AppPatch {
                    name: Some(APP_NAME.into()),
                    ..Default::default()
                },
            )
            .await?;
            let mut samples = licenses::generate(
                &mut w,
                app.id,
                &licenses::GenerateSpec {
                    count: Some(3),
                    mask: Some(MASK.into()),
                    hwid_limit: Some(1),
                    note: Some("demo: one machine, never expires".into()),
                    ..Default::default()
                },
            )
            .await?;
            samples.extend(
                licenses::generate(
                    &mut w,
                    app.id,
                    &licenses::GenerateSpec {
                        count: Some(2),
                        mask: Some(MASK.into()),
                        duration_days: Some(30),
                        expiry_on_first_use: true,
                        hwid_limit: Some(2),
                        note: Some("demo: 30 days from first use, two machines".into()),
                        ..Default::default()
                    },
                )
                .await?,
            );
            (app, samples)
        }
    };
    let curl_license = licenses::generate(
        &mut w,
        app.id,
        &licenses::GenerateSpec {
            mask: Some(MASK.into()),
            hwid_limit: Some(1),
            note: Some("demo: the key of the printed curl".into()),
            ..Default::default()
        },
    )
    .await?
    .remove(0);
    w.commit().await?;
    Ok(Demo {
        password,
        api_key,
        app,
        samples,
        curl_key: curl_license.key,
    })
}

impl Demo {
    pub fn validate_curl(&self, validator_url: &str) -> String {
        format!(
            r#"curl -s -X POST {validator_url}/v1/validate -H 'content-type: application/json' -d '{{"app":"{}","key":"{}","hwid":"demo-machine"}}'"#,
            self.app.id, self.curl_key
        )
    }

    /// The human-readable block, then the machine-readable curl as the last line.
    pub fn render(&self, control_plane_url: &str, validator_url: &str) -> String {
        let curl = self.validate_curl(validator_url);
        let mut out = String::new();
        out.push_str("Keyward demo tenant\n");
        out.push_str(&format!("  control-plane   {control_plane_url}\n"));
        out.push_str(&format!("  validator       {validator_url}\n"));
        out.push_str(&format!(
            "  admin login     {USERNAME} / {}\n",
            self.password
        ));
        out.push_str(&format!(
            "  API key         {}   (scope *, use as a Bearer token)\n",
            self.api_key
        ));
        out.push_str(&format!(
            "  app             {} ({})\n",
            self.app.name, self.app.id
        ));
        out.push_str(&format!("  app secret      {}\n", self.app.secret));
        out.push_str(&format!("  license key     {}\n", self.curl_key));
        for l in &self.samples {
            out.push_str(&format!(
                "  sample license  {}   {}\n",
                l.key,
                l.note.as_deref().unwrap_or("")
            ));
        }
        out.push_str("\nValidate the demo key:\n  ");
        out.push_str(&curl);
        out.push_str("\n\nLog in (JWT):\n  ");
        out.push_str(&format!(
            r#"curl -s -X POST {control_plane_url}/v1/auth/login -H 'content-type: application/json' -d '{{"username":"{USERNAME}","password":"{}"}}'"#,
            self.password
        ));
        out.push_str("\nList licenses with the API key:\n  ");
        out.push_str(&format!(
            "curl -s {control_plane_url}/v1/licenses -H 'authorization: Bearer {}'",
            self.api_key
        ));
        out.push('\n');
        out.push_str(&format!("KEYWARD_DEMO_CURL={curl}\n"));
        out
    }
}
