//! Data calls: `var` (global variables, cached), `getvar`/`setvar` (the user's variables),
//! `log`, and `webhook` (the vendor's URL called server-side through the guarded client).

use keyward_shared::outbound::OutboundRequest;
use keyward_shared::store::sessions::Session;
use keyward_shared::store::{client_logs, variables, webhooks};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;

use super::reply::Reply;
use super::session_ops::{user_or_refusal, validated_user};
use super::{Answer, Ctx, Why};

const MAX_VAR_DATA: usize = 500;
const MAX_LOG: usize = 275;

pub async fn var(ctx: &Ctx<'_>, s: &Session) -> Answer {
    let app = ctx.app().id;
    let reads = &ctx.state.caches.reads;
    let vars = ctx
        .state
        .caches
        .client
        .vars
        .get_or_load(&app, || {
            reads.read(|c| async move { variables::client_vars(&**c, app).await.map(Some) })
        })
        .await?;
    let found = ctx
        .p
        .get("varid")
        .and_then(|id| vars.as_ref().and_then(|v| v.get(id)));
    let Some(var) = found else {
        return Ok(Reply::fail(Why::VariableNotFound, "Variable not found."));
    };
    if var.authed {
        let _user = user_or_refusal!(ctx, s);
    }
    // KeyAuth puts the value in `message`.
    Ok(Reply::ok(var.value.clone()))
}

pub async fn getvar(ctx: &Ctx<'_>, s: &Session) -> Answer {
    let user = user_or_refusal!(ctx, s);
    let Some(name) = ctx.p.get("var") else {
        return Ok(Reply::fail(
            Why::VariableNotFound,
            "Variable not found for user",
        ));
    };
    let c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    match variables::get_user(&**c, user.id, name).await? {
        Some(v) => Ok(Reply::ok("Successfully retrieved variable").field("response", v.value)),
        None => Ok(Reply::fail(
            Why::VariableNotFound,
            "Variable not found for user",
        )),
    }
}

/// Unlike KeyAuth, whose missing-name/data answers say `success: true`, a refused `setvar`
/// answers failure.
pub async fn setvar(ctx: &Ctx<'_>, s: &Session) -> Answer {
    let user = user_or_refusal!(ctx, s);
    let Some(name) = ctx.p.get("var") else {
        return Ok(Reply::fail(Why::BadRequest, "No variable name provided"));
    };
    let Some(data) = ctx.p.get("data") else {
        return Ok(Reply::fail(Why::BadRequest, "No variable data provided"));
    };
    if data.chars().count() > MAX_VAR_DATA {
        return Ok(Reply::fail(
            Why::BadRequest,
            "Variable data must be 500 characters or less",
        ));
    }
    let mut c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    let mut w = WriteTx::begin(&mut c, ctx.actor()).await?;
    match variables::set_user(&mut w, ctx.app().id, user.id, name, data).await {
        Ok(_) => {}
        Err(StoreError::Invalid(_) | StoreError::NotFound(_)) => {
            return Ok(Reply::fail(Why::BadRequest, "Failed to set variable"))
        }
        Err(e) => return Err(e.into()),
    }
    w.commit().await?;
    Ok(Reply::ok("Successfully set variable"))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `log`: stored before answering (KeyAuth answers first and writes after). The answer is empty,
/// as SDKs expect and do not verify.
pub async fn log(ctx: &Ctx<'_>, s: &Session) -> Answer {
    if let Some(message) = ctx.p.get("message") {
        let pcuser = ctx.p.get("pcuser").map(|u| truncate(u, 100));
        let data = match pcuser {
            Some(u) => format!("{} (pc user: {u})", truncate(message, MAX_LOG)),
            None => truncate(message, MAX_LOG).to_string(),
        };
        let app = ctx.app();
        let c = keyward_shared::db::checkout(&ctx.state.pool).await?;
        client_logs::append(
            &**c,
            app.account_id,
            app.id,
            "log",
            s.credential.as_deref().or(pcuser),
            Some(&ctx.ip_string()),
            Some(&data),
        )
        .await?;
    }
    Ok(Reply::empty())
}

pub async fn webhook(ctx: &Ctx<'_>, s: &Session) -> Answer {
    let not_found = || Ok(Reply::fail(Why::WebhookNotFound, "Webhook Not Found."));
    let Some(webid) = ctx.p.get("webid").filter(|w| w.len() <= 100) else {
        return not_found();
    };
    let c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    let Some(hook) = webhooks::find_for_client(&**c, ctx.app().id, webid).await? else {
        return not_found();
    };
    drop(c);
    if hook.authed {
        let _user = user_or_refusal!(ctx, s);
    }
    let Some(outbound) = &ctx.state.client.outbound else {
        return Ok(Reply::fail(
            Why::WebhookFailed,
            "Webhooks are not available on this server",
        ));
    };
    let url = format!("{}{}", hook.url, ctx.p.get("params").unwrap_or(""));
    let request = OutboundRequest {
        url: &url,
        body: ctx.p.get("body").or(hook.body.as_deref()),
        content_type: ctx.p.get("conttype"),
        user_agent: hook.user_agent.as_deref(),
        authorization: hook.auth_header.as_deref(),
        headers: &[],
    };
    match outbound.call(&request).await {
        Ok(resp) => Ok(Reply::ok("Webhook request successful").field("response", resp.body)),
        Err(e) => {
            tracing::info!(webhook = %hook.id, error = %e, "webhook call failed");
            Ok(Reply::fail(
                Why::WebhookFailed,
                format!("Webhook request failed: {e}"),
            ))
        }
    }
}
