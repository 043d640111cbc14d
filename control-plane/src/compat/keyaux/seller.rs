//! The seller API: `GET /api/seller/?type=…` with a seller key (`X-API-Key` or `sellerkey`),
//! every operation with the parameters and defaults KeyAux documents.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::request::Parts;
use keyward_shared::model::App;
use keyward_shared::store::licenses::{self, Bulk};
use keyward_shared::store::{api_keys, apps, users, variables};
use keyward_shared::write::{Actor, WriteTx};
use serde_json::{json, Value};

use super::dashboard::keyauth_spec;
use super::{hash, repr, KaError, KaQuery, KaResult};
use crate::AppState;

type Answer = KaResult<axum::Json<Value>>;

struct Params(HashMap<String, String>);

impl Params {
    fn opt(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn req(&self, name: &str) -> KaResult<&str> {
        self.opt(name)
            .ok_or_else(|| KaError::bad_request(format!("Missing parameter: {name}")))
    }

    fn int(&self, name: &str) -> KaResult<Option<i64>> {
        self.opt(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    KaError::bad_request(format!("Parameter {name} must be an integer"))
                })
            })
            .transpose()
    }

    fn int32(&self, name: &str) -> KaResult<Option<i32>> {
        self.int(name)?
            .map(|v| {
                i32::try_from(v)
                    .map_err(|_| KaError::bad_request(format!("Parameter {name} is out of range")))
            })
            .transpose()
    }
}

fn done(message: &str) -> Answer {
    Ok(axum::Json(json!({"success": true, "message": message})))
}

/// Runs `$body` inside a `WriteTx` of the seller and commits it.
macro_rules! write_tx {
    ($state:expr, $actor:expr, |$w:ident| $body:expr) => {{
        let mut client = $state.client().await?;
        let mut $w = WriteTx::begin(&mut client, $actor.clone()).await?;
        let out = $body;
        $w.commit().await?;
        out
    }};
}

pub async fn handle(
    State(state): State<AppState>,
    parts: Parts,
    KaQuery(query): KaQuery<HashMap<String, String>>,
) -> Answer {
    let p = Params(query);
    let presented = parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .or_else(|| p.opt("sellerkey"))
        .ok_or_else(|| KaError::unauthorized("Missing seller key"))?;
    let (account_id, key) = {
        let c = state.client().await?;
        api_keys::authenticate_seller(&**c, presented)
            .await?
            .ok_or_else(|| KaError::unauthorized("Invalid seller key"))?
    };
    let actor = Actor {
        origin: crate::auth::origin(&parts),
        account_id,
        label: format!("seller_key:{}", key.prefix),
    };
    let kind = p.req("type")?.to_string();
    let app = {
        let c = state.client().await?;
        apps::get_by_name(&**c, account_id, p.req("appname")?).await?
    };
    match kind.as_str() {
        "add" => add(&state, &actor, &app, &p).await,
        "verify" => verify(&state, &actor, &app, &p).await,
        "del" | "ban" | "unban" => license_op(&state, &actor, &app, &p, &kind).await,
        "fetchallkeys" => fetch_all_keys(&state, &actor, &app).await,
        "delalllicenses" => delete_licenses(&state, &actor, &app, Bulk::All).await,
        "delunused" => delete_licenses(&state, &actor, &app, Bulk::Unused).await,
        "delused" => delete_licenses(&state, &actor, &app, Bulk::Used).await,
        "adduser" => add_user(&state, &actor, &app, &p).await,
        "deleteuser" | "banuser" | "unbanuser" | "resetuser" | "extend" | "subtract" => {
            user_op(&state, &actor, &app, &p, &kind).await
        }
        "userdata" => user_data(&state, &actor, &app, &p).await,
        "setvar" => set_var(&state, &actor, &app, &p).await,
        "getvar" => get_var(&state, &actor, &app, &p).await,
        "fetchallusers" => fetch_all_users(&state, &actor, &app).await,
        "delexpusers" => {
            let n = write_tx!(state, actor, |w| users::delete_many(&mut w, app.id, true)
                .await?);
            Ok(axum::Json(
                json!({"success": true, "message": format!("Deleted {n} expired users"), "deleted": n}),
            ))
        }
        "resetapp" => {
            write_tx!(state, actor, |w| apps::reset_data(&mut w, app.id).await?);
            done("Application reset")
        }
        other => Err(KaError::bad_request(format!("Unknown type: {other}"))),
    }
}

async fn add(state: &AppState, actor: &Actor, app: &App, p: &Params) -> Answer {
    let spec = keyauth_spec(
        p.int("amount")?.unwrap_or(1),
        p.opt("mask").map(str::to_string),
        p.int("expiry")?.unwrap_or(30),
        p.int32("level")?,
        None,
        p.opt("note").map(str::to_string),
    );
    let made = write_tx!(state, actor, |w| licenses::generate(&mut w, app.id, &spec)
        .await?);
    let keys: Vec<&str> = made.iter().map(|l| l.key.as_str()).collect();
    Ok(axum::Json(
        json!({"success": true, "message": "License(s) created", "key": keys.first(), "keys": keys}),
    ))
}

async fn verify(state: &AppState, actor: &Actor, app: &App, p: &Params) -> Answer {
    let c = state.client().await?;
    let l = licenses::get_by_key(&**c, actor.account_id, app.id, p.req("key")?).await?;
    Ok(axum::Json(
        json!({"success": true, "message": "License exists", "license": repr::license(&l)}),
    ))
}

async fn license_op(state: &AppState, actor: &Actor, app: &App, p: &Params, op: &str) -> Answer {
    let key = p.req("key")?;
    let reason = p.opt("reason");
    write_tx!(state, actor, |w| {
        let l = licenses::get_by_key(w.tx(), actor.account_id, app.id, key).await?;
        match op {
            "del" => licenses::delete(&mut w, l.id).await?,
            "ban" => licenses::ban(&mut w, l.id, reason).await?,
            _ => licenses::unban(&mut w, l.id).await?,
        }
    });
    done(match op {
        "del" => "Deleted license",
        "ban" => "Banned license",
        _ => "Unbanned license",
    })
}

async fn fetch_all_keys(state: &AppState, actor: &Actor, app: &App) -> Answer {
    let c = state.client().await?;
    let page = keyward_shared::store::Offset::new(Some(1), Some(100_000), 100_000, 100_000);
    let (items, _) = licenses::list_paged(&**c, actor.account_id, app.id, None, None, page).await?;
    let keys: Vec<Value> = items
        .iter()
        .map(|l| {
            json!({
                "key": l.key,
                "note": l.note,
                "status": repr::license_status(l),
                "level": l.level.to_string(),
                "expires": l.duration_secs.map(|s| (s / 86_400).to_string()),
                "usedby": l.used_by,
                "usedon": l.used_at,
                "gendate": l.created_at,
                "banned": l.ban_reason,
            })
        })
        .collect();
    Ok(axum::Json(
        json!({"success": true, "message": "Fetched keys", "keys": keys}),
    ))
}

async fn delete_licenses(state: &AppState, actor: &Actor, app: &App, which: Bulk) -> Answer {
    let n = write_tx!(state, actor, |w| licenses::delete_many(
        &mut w, app.id, which
    )
    .await?);
    Ok(axum::Json(
        json!({"success": true, "message": format!("Deleted {n} licenses"), "deleted": n}),
    ))
}

async fn add_user(state: &AppState, actor: &Actor, app: &App, p: &Params) -> Answer {
    let username = p.req("user")?.to_string();
    let password = p.opt("pass").unwrap_or("default").to_string();
    if password.len() > 1024 {
        return Err(KaError::bad_request("Password is too long"));
    }
    let password_hash = hash(password).await?;
    let sub = p.opt("sub");
    let days = p.int("expiry")?;
    write_tx!(state, actor, |w| {
        users::create(
            &mut w,
            app.id,
            &users::NewUser {
                username: &username,
                password_hash: &password_hash,
                email: None,
                hwid: None,
                ip: None,
                subscription: sub,
                level: None,
                days,
                key: None,
            },
        )
        .await?
    });
    done("User created")
}

async fn user_op(state: &AppState, actor: &Actor, app: &App, p: &Params, op: &str) -> Answer {
    let username = p.req("user")?;
    let sub = p.opt("sub");
    let days = p.int("expiry")?.unwrap_or(30);
    let seconds = if op == "subtract" {
        Some(
            p.int("seconds")?
                .ok_or_else(|| KaError::bad_request("Missing parameter: seconds"))?,
        )
    } else {
        None
    };
    let reason = p.opt("reason");
    write_tx!(state, actor, |w| {
        let u = users::get_by_name(w.tx(), actor.account_id, app.id, username).await?;
        match op {
            "deleteuser" => users::delete(&mut w, app.id, u.id).await?,
            "banuser" => users::ban(&mut w, app.id, u.id, reason).await?,
            "unbanuser" => users::unban(&mut w, app.id, u.id).await?,
            "resetuser" => users::reset_hwid(&mut w, app.id, u.id).await?,
            "extend" => users::extend(&mut w, app.id, u.id, days, sub).await?,
            _ => users::subtract(&mut w, app.id, u.id, seconds.unwrap_or_default(), sub).await?,
        }
    });
    done(match op {
        "deleteuser" => "Deleted user",
        "banuser" => "Banned user",
        "unbanuser" => "Unbanned user",
        "resetuser" => "Reset user HWID",
        "extend" => "Extended user",
        _ => "Subtracted time from user",
    })
}

async fn user_data(state: &AppState, actor: &Actor, app: &App, p: &Params) -> Answer {
    let c = state.client().await?;
    let u = users::get_by_name(&**c, actor.account_id, app.id, p.req("user")?).await?;
    let vars = variables::list_user(&**c, actor.account_id, app.id, Some(u.id)).await?;
    let mut body = repr::end_user(&u);
    body["variables"] = json!(vars.iter().map(repr::variable).collect::<Vec<_>>());
    body["success"] = json!(true);
    body["message"] = json!("Fetched user data");
    body["createdate"] = json!(u.created_at);
    body["lastlogin"] = json!(u.last_login_at);
    Ok(axum::Json(body))
}

async fn set_var(state: &AppState, actor: &Actor, app: &App, p: &Params) -> Answer {
    let username = p.req("user")?;
    let var = p.req("var")?;
    let data = p.0.get("data").map(String::as_str).unwrap_or("");
    write_tx!(state, actor, |w| {
        let u = users::get_by_name(w.tx(), actor.account_id, app.id, username).await?;
        variables::set_user(&mut w, app.id, u.id, var, data).await?
    });
    done("Successfully set variable")
}

async fn get_var(state: &AppState, actor: &Actor, app: &App, p: &Params) -> Answer {
    let c = state.client().await?;
    let u = users::get_by_name(&**c, actor.account_id, app.id, p.req("user")?).await?;
    let v = variables::get_user(&**c, u.id, p.req("var")?)
        .await?
        .ok_or_else(|| KaError::not_found("Variable not found"))?;
    Ok(axum::Json(
        json!({"success": true, "message": "Successfully retrieved variable", "response": v.value}),
    ))
}

async fn fetch_all_users(state: &AppState, actor: &Actor, app: &App) -> Answer {
    let c = state.client().await?;
    let page = keyward_shared::store::Offset::new(Some(1), Some(100_000), 100_000, 100_000);
    let (items, _) = users::list(&**c, actor.account_id, app.id, None, page).await?;
    Ok(axum::Json(
        json!({"success": true, "message": "Fetched users",
        "users": items.iter().map(repr::end_user).collect::<Vec<_>>()}),
    ))
}
