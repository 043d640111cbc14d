//! What the tests of real Keygen clients (keygen-sdk, keygen-rs) share: a license such a client
//! can use, and a way to run the client without blocking the validator under test.

use keyward_shared::model::License;
use keyward_shared::policy::{AuthenticationStrategy, PolicyPatch};
use keyward_shared::store::policies;
use keyward_shared::testing::Tenant;
use keyward_shared::write::WriteTx;

/// Runs `f` on the blocking pool (the validator under test serves from this runtime), passing
/// its panic on as is.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// A license a client can use: the app's default policy made explicit (license authentication,
/// node-locked with one machine, no heartbeat required), so a change of defaults cannot quietly
/// change what the client tests cover.
pub async fn client_license(c: &mut tokio_postgres::Client, t: &Tenant) -> License {
    let l = super::one_license(c, t, 1).await;
    let mut w = WriteTx::begin(c, t.actor.clone()).await.unwrap();
    policies::update(
        &mut w,
        l.policy_id,
        &PolicyPatch {
            authentication_strategy: Some(AuthenticationStrategy::License),
            floating: Some(false),
            max_machines: Some(Some(1)),
            require_heartbeat: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    l
}

/// A client program's report: one JSON object per step (`{step, ok, …}`), as keygen_sdk's
/// run.py and the keygen-rs program print them.
pub struct Steps {
    /// Which client, for messages.
    pub client: &'static str,
    pub scenario: String,
    pub success: bool,
    pub status: String,
    pub lines: Vec<serde_json::Value>,
    pub stderr: String,
}

impl Steps {
    /// Reads the program's output (and prints it, for the test log).
    pub fn from_output(client: &'static str, scenario: &str, out: &std::process::Output) -> Steps {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("{client} {scenario}:\n{stdout}");
        let lines = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{client} printed {l:?}: {e}"))
            })
            .collect();
        Steps {
            client,
            scenario: scenario.to_string(),
            success: out.status.success(),
            status: out.status.to_string(),
            lines,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.lines
            .iter()
            .map(|l| l["step"].as_str().unwrap_or("?"))
            .collect()
    }

    /// A step that succeeded.
    pub fn step(&self, name: &str) -> Option<&serde_json::Value> {
        self.lines
            .iter()
            .find(|l| l["step"] == name && l["ok"] == true)
    }

    /// The steps ran in exactly this order, then `done`; on a failure, where and why it stopped.
    pub fn assert_completed(&self, expected: &[&str]) {
        let passed: Vec<&str> = self
            .lines
            .iter()
            .filter(|l| l["ok"] == true)
            .map(|l| l["step"].as_str().unwrap_or("?"))
            .collect();
        if !self.success {
            let failed = self.lines.iter().find(|l| l["ok"] == false);
            panic!(
                "{} scenario `{}` stopped ({}) after {passed:?}\nfailed step: {}\nstderr:\n{}",
                self.client,
                self.scenario,
                self.status,
                failed.map_or_else(|| "(none reported)".to_string(), |v| v.to_string()),
                self.stderr
            );
        }
        let mut all = expected.to_vec();
        all.push("done");
        assert_eq!(
            self.names(),
            all,
            "scenario `{}`: {}",
            self.scenario,
            self.stderr
        );
    }
}
