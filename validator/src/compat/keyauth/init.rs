//! `init`: app checks (paused, version, program hash, encryption) and a new session, written to
//! PostgreSQL before the answer leaves, so the next call may land on any validator.

use keyward_shared::store::{apps, sessions};
use keyward_shared::write::WriteTx;
use serde_json::json;

use super::reply::{Reply, SignWith};
use super::{Answer, Api, Ctx, Why};

/// KeyAuth's own limit on the client's `enckey`.
const MAX_ENCKEY: usize = 35;
const STATS_HINT: &str = "N/A - Use fetchStats() function in latest example";

pub async fn init(ctx: &Ctx<'_>) -> Answer {
    Ok(checks_then_session(ctx)
        .await?
        .signed_with(SignWith::AppSecret))
}

async fn checks_then_session(ctx: &Ctx<'_>) -> Answer {
    let app = ctx.app();
    let enckey = match ctx.api {
        Api::V1_2 => ctx.p.get("enckey"),
        // 1.1 signs nothing and 1.3 signs with Ed25519: no HMAC key to agree on.
        Api::V1_1 | Api::V1_3 => None,
    };
    if enckey.is_some_and(|k| k.chars().count() > MAX_ENCKEY) {
        return Ok(Reply::fail(
            Why::Encryption,
            "The paramater \"enckey\" is too long. Must be 35 characters or less.",
        ));
    }
    if ctx.api == Api::V1_2 && enckey.is_none() && app.force_encryption {
        return Ok(Reply::fail(
            Why::Encryption,
            "No encryption key supplied, encryption is forced.",
        ));
    }
    if app.paused {
        return Ok(ctx.fail(Why::AppPaused, "pausedApp"));
    }
    if let Some(ver) = ctx.p.get("ver") {
        if ver != app.version {
            return Ok(Reply::fail(Why::InvalidVersion, "invalidver")
                .field("download", app.download_url.clone().unwrap_or_default())
                .unescaped_slashes());
        }
    }
    if app.hash_check {
        // Unlike KeyAuth (where a missing hash passes), an app that checks hashes needs one.
        let Some(hash) = ctx.p.get("hash") else {
            return Ok(ctx.fail(Why::HashCheck, "hashcheckfail"));
        };
        if app.program_hashes.is_empty() {
            learn_hash(ctx, hash).await?;
        } else if !app
            .program_hashes
            .iter()
            .any(|h| h.eq_ignore_ascii_case(hash))
        {
            return Ok(ctx.fail(Why::HashCheck, "hashcheckfail"));
        }
    }
    let c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    let session_key = enckey.map(|k| format!("{k}-{}", app.secret));
    let session = sessions::create(
        &**c,
        &sessions::NewSession {
            account_id: app.account_id,
            app_id: app.id,
            ip: Some(&ctx.ip_string()),
            enckey: session_key.as_deref(),
            lifetime_secs: app.session_secs,
        },
    )
    .await?;
    let panel = if ctx.state.cfg.customer_panel_url.is_empty() {
        String::new()
    } else {
        format!(
            "{}/{}/{}/",
            ctx.state.cfg.customer_panel_url.trim_end_matches('/'),
            ctx.p.get("ownerid").unwrap_or(""),
            app.name
        )
    };
    Ok(Reply::ok("Initialized")
        .field("sessionid", session.id)
        .field(
            "appinfo",
            json!({
                "numUsers": STATS_HINT,
                "numOnlineUsers": STATS_HINT,
                "numKeys": STATS_HINT,
                "version": app.version,
                "customerPanelLink": panel,
            }),
        )
        .field("newSession", true))
}

async fn learn_hash(ctx: &Ctx<'_>, hash: &str) -> Result<(), super::Fault> {
    if hash.len() > keyward_shared::client_api::MAX_PROGRAM_HASH_LEN {
        return Ok(());
    }
    let mut c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    let mut w = WriteTx::begin(&mut c, ctx.actor()).await?;
    apps::learn_program_hash(&mut w, ctx.app().id, hash).await?;
    w.commit().await?;
    Ok(())
}
