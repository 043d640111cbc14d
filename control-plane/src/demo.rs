//! `control-plane demo`: a ready-to-try tenant for the local run. Idempotent: an existing demo
//! account gets a fresh password and API key, the demo app is reused (and un-paused), and the
//! demo licenses are topped up to a fixed set, so a re-run never piles up keys yet always prints
//! a key that validates, even after someone banned, deleted or re-limited the previous ones.

use keyward_shared::keygen::Mask;
use keyward_shared::model::{App, License};
use keyward_shared::store::licenses::{GenerateSpec, ListQuery, StatusFilter};
use keyward_shared::store::{accounts, api_keys, apps, licenses};
use keyward_shared::write::{Actor, WriteTx};
use keyward_shared::{db, secrets, StoreError};

const USERNAME: &str = "demo";
const APP_NAME: &str = "Demo App";
const MASK: &str = "DEMO-XXXX-XXXX-XXXX";

/// One kind of demo license: how many to keep, how to make one, and which existing licenses
/// still count as one (matched on the note we wrote plus the properties the demo promises).
struct Kind {
    note: &'static str,
    count: usize,
    /// The limits of a new one (count, mask and note are filled in).
    spec: fn() -> GenerateSpec,
    fits: fn(&License) -> bool,
}

/// The first kind is the open key of the printed `curl`: no HWID or IP limit and no expiry, so it
/// validates from any machine on every run.
const KINDS: [Kind; 3] = [
    Kind {
        note: "demo: any machine, never expires",
        count: 1,
        spec: || GenerateSpec {
            hwid_limit: Some(0),
            ip_limit: Some(0),
            ..Default::default()
        },
        fits: |l| {
            l.hwid_limit == 0
                && l.ip_limit == 0
                && l.expires_at.is_none()
                && l.duration_secs.is_none()
        },
    },
    Kind {
        note: "demo: one machine, never expires",
        count: 2,
        spec: || GenerateSpec {
            hwid_limit: Some(1),
            ..Default::default()
        },
        fits: |_| true,
    },
    Kind {
        note: "demo: 30 days from first use, two machines",
        count: 2,
        spec: || GenerateSpec {
            duration_days: Some(30),
            expiry_on_first_use: true,
            hwid_limit: Some(2),
            ..Default::default()
        },
        fits: |_| true,
    },
];

pub struct Demo {
    /// The account's public id: the `ownerid` KeyAuth clients send.
    pub owner_id: String,
    pub password: String,
    pub api_key: String,
    pub app: App,
    /// Every demo license, the open one (the `curl`'s) first.
    pub licenses: Vec<License>,
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
        origin: Default::default(),
        account_id: account.id,
        label: "demo".into(),
    };
    let mut w = WriteTx::begin(&mut c, actor).await?;
    let (_, api_key) = api_keys::create(&mut w, "demo", &["*".to_string()]).await?;
    let app = match apps::get_by_name(w.tx(), account.id, APP_NAME).await {
        Ok(app) if app.paused => {
            let unpause = apps::AppPatch {
                paused: Some(false),
                ..Default::default()
            };
            apps::update(&mut w, app.id, &unpause).await?
        }
        Ok(app) => app,
        Err(StoreError::NotFound(_)) => {
            let new = apps::AppPatch {
                name: Some(APP_NAME.into()),
                ..Default::default()
            };
            apps::create(&mut w, &new).await?
        }
        Err(e) => return Err(e.into()),
    };

    // Licenses that would still validate: active (not banned, not expired) and made by the demo.
    let mask = Mask::parse(MASK, None)?;
    let existing = licenses::list(
        w.tx(),
        account.id,
        &ListQuery {
            app_id: Some(app.id),
            search: Some("demo:".into()),
            status: Some(StatusFilter::Active),
            limit: Some(500),
            ..Default::default()
        },
    )
    .await?
    .items;
    let mut out = Vec::new();
    for kind in &KINDS {
        // Oldest first, so the printed keys stay the same from one run to the next.
        let mut have: Vec<License> = existing
            .iter()
            .rev()
            .filter(|l| {
                mask.matches(&l.key) && l.note.as_deref() == Some(kind.note) && (kind.fits)(l)
            })
            .take(kind.count)
            .cloned()
            .collect();
        if have.len() < kind.count {
            let spec = GenerateSpec {
                count: Some((kind.count - have.len()) as i64),
                mask: Some(MASK.into()),
                note: Some(kind.note.into()),
                ..(kind.spec)()
            };
            have.extend(licenses::generate(&mut w, app.id, &spec).await?);
        }
        have.sort_by_key(|l| (l.created_at, l.id));
        out.extend(have);
    }
    w.commit().await?;
    Ok(Demo {
        owner_id: account.public_id.clone(),
        password,
        api_key,
        app,
        licenses: out,
    })
}

impl Demo {
    /// The key of the printed `curl`: no HWID/IP limit, no expiry.
    pub fn curl_key(&self) -> &str {
        self.licenses.first().map_or("", |l| l.key.as_str())
    }

    pub fn validate_curl(&self, validator_url: &str) -> String {
        format!(
            r#"curl -s -X POST {validator_url}/v1/validate -H 'content-type: application/json' -d '{{"app":"{}","key":"{}","hwid":"demo-machine"}}'"#,
            self.app.id,
            self.curl_key()
        )
    }

    /// The human-readable block, then the machine-readable curl as the last line.
    pub fn render(&self, control_plane_url: &str, validator_url: &str) -> String {
        let curl = self.validate_curl(validator_url);
        let mut out = String::new();
        out.push_str("Keyward demo tenant\n");
        out.push_str(&format!("  control-plane   {control_plane_url}\n"));
        out.push_str(&format!(
            "  admin UI        {control_plane_url}/ui/  (sign in with the username and password below)\n"
        ));
        out.push_str(&format!("  validator       {validator_url}\n"));
        out.push_str(&format!("  username        {USERNAME}\n"));
        out.push_str(&format!("  password        {}\n", self.password));
        out.push_str(&format!(
            "  API key         {}   (scope *, use as a Bearer token)\n",
            self.api_key
        ));
        out.push_str(&format!(
            "  app             {} ({})\n",
            self.app.name, self.app.id
        ));
        out.push_str(&format!("  app secret      {}\n", self.app.secret));
        out.push_str(&format!(
            "  ownerid         {}   (KeyAuth SDKs: name \"{}\", this ownerid, the secret, URL {validator_url}/api/1.2/)\n",
            self.owner_id, self.app.name
        ));
        for l in &self.licenses {
            out.push_str(&format!(
                "  license key     {}   {}\n",
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
