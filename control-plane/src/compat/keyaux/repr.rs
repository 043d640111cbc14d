//! KeyAux's JSON representations of the core's types: booleans as 0/1 where the dashboard shows
//! them so, `license_key`, `type`, `ownerid`-style public ids.

use chrono::Utc;
use keyward_shared::model::{
    Account, App, AppUser, BlacklistEntry, ClientLog, License, LicenseStatus, Variable, Webhook,
};
use serde_json::{json, Value};

fn flag(b: bool) -> i32 {
    i32::from(b)
}

pub fn user(a: &Account, with_created: bool) -> Value {
    let mut v = json!({
        "id": a.public_id,
        "username": a.username,
        "email": a.email,
        "plan": a.plan,
        "role": a.role,
    });
    if with_created {
        v["created_at"] = json!(a.created_at);
    }
    v
}

pub fn app(a: &App) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "secret": a.secret,
        "version": a.version,
        "hwid_lock": flag(a.hwid_lock),
        "anti_vpn": flag(a.anti_vpn),
        "hash_check": flag(a.hash_check),
        "paused": flag(a.paused),
        "created_at": a.created_at,
    })
}

pub fn license_status(l: &License) -> &'static str {
    if l.status != LicenseStatus::Active {
        "banned"
    } else if l.used_at.is_some() || l.uses > 0 {
        "used"
    } else {
        "active"
    }
}

pub fn license(l: &License) -> Value {
    json!({
        "id": l.id,
        "license_key": l.key,
        "status": license_status(l),
        "level": l.level,
        "duration_days": l.duration_secs.map(|s| s / 86_400),
        "max_uses": l.max_uses,
        "uses": l.uses,
        "note": l.note,
        "used_by": l.used_by,
        "banned": flag(l.status != LicenseStatus::Active),
        "ban_reason": l.ban_reason,
        "hwids": l.hwids.iter().map(|h| &h.hwid).collect::<Vec<_>>(),
        "created_at": l.created_at,
        "used_at": l.used_at,
        "expires_at": l.expires_at,
    })
}

pub fn end_user(u: &AppUser) -> Value {
    let now = Utc::now();
    let subs: Vec<Value> = u
        .subscriptions
        .iter()
        .map(|s| {
            json!({
                "subscription": s.name,
                "key": s.key.clone().unwrap_or_default(),
                "expiry": s.expires_at,
                "timeleft": (s.expires_at - now).num_days().max(0),
                "level": s.level.to_string(),
            })
        })
        .collect();
    json!({
        "id": u.id,
        "username": u.username,
        "email": u.email,
        "hwid": u.hwid,
        "ip": u.ip,
        "banned": flag(u.banned),
        "ban_reason": u.ban_reason,
        "level": u.subscriptions.iter().map(|s| s.level).max().unwrap_or(0),
        "expires_at": u.expires_at(),
        "subscriptions": subs,
        "created_at": u.created_at,
        "last_login": u.last_login_at,
    })
}

pub fn variable(v: &Variable) -> Value {
    let mut out = json!({
        "id": v.id,
        "key": v.key,
        "value": v.value,
        "created_at": v.created_at,
        "updated_at": v.updated_at,
    });
    if let Some(u) = v.user_id {
        out["user_id"] = json!(u);
    }
    out
}

pub fn webhook(w: &Webhook) -> Value {
    json!({
        "id": w.id,
        "name": w.name,
        "url": w.url,
        "user_agent": w.user_agent,
        "body": w.body,
        "has_auth_header": flag(w.has_auth_header),
        "created_at": w.created_at,
    })
}

pub fn blacklist(e: &BlacklistEntry) -> Value {
    json!({
        "id": e.id,
        "type": e.kind.as_str(),
        "value": e.value,
        "note": e.note,
        "created_at": e.created_at,
    })
}

pub fn log(l: &ClientLog) -> Value {
    json!({
        "id": l.id,
        "action": l.action,
        "username": l.username,
        "ip": l.ip,
        "data": l.data,
        "created_at": l.created_at,
    })
}
