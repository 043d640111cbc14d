//! `/api/v2/keys…`: list with filters and pages, create one or a batch, bulk delete, and one
//! key (by integer id or value) read, updated, deleted, its HWIDs reset.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyward_shared::model::License;
use keyward_shared::store::apps;
use keyward_shared::store::key_system::{
    self, Expiry, HwidReset, KeyFilter, KeyRef, KeyStatus, TraitsPatch,
};
use keyward_shared::store::licenses::{self, GenerateSpec};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use serde_json::json;
use uuid::Uuid;

use super::body::{parse_time, Body, Field};
use super::repr::Names;
use super::{answer, JkAuth, JkBody, JkError, JkPath, JkQuery, JkResult};
use crate::webhooks::emit;
use crate::AppState;

/// Junkie's batch size.
const MAX_AMOUNT: i64 = 100;

pub async fn list(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    q: JkQuery,
) -> JkResult<Response> {
    let int = |names: &[&str], default: i64| -> JkResult<i64> {
        q.get(names).map_or(Ok(default), |v| {
            v.parse::<i64>()
                .map_err(|_| JkError::bad_request(format!("{} must be an integer", names[0])))
        })
    };
    // A bot asks for 500 a page: clamped, not refused.
    let page = int(&["page"], 1)?.max(1);
    let limit = int(&["limit"], 50)?.clamp(1, 100);
    let service = q
        .get(&["service_id", "serviceId"])
        .map(|v| v.parse::<i64>())
        .transpose()
        .map_err(|_| JkError::bad_request("service_id must be an integer"))?;
    let provider_id = q
        .get(&["provider_id", "providerId"])
        .map(|v| v.parse::<i64>())
        .transpose()
        .map_err(|_| JkError::bad_request("provider_id must be an integer"))?;
    let status = q
        .get(&["status"])
        .map(|s| {
            KeyStatus::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                JkError::bad_request(format!(
                    "status must be one of {}",
                    KeyStatus::NAMES.join(", ")
                ))
            })
        })
        .transpose()?;
    let time = |name: &str| -> JkResult<_> {
        q.get(&[name])
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    JkError::bad_request(format!("{name} must be an ISO-8601 date-time"))
                })
            })
            .transpose()
    };
    let mut filter = KeyFilter {
        provider_id,
        discord_id: q.get(&["discord_id", "discordId"]).map(str::to_string),
        key: q.get(&["key"]).map(str::to_string),
        hwid: q.get(&["hwid"]).map(str::to_string),
        status,
        expires_before: time("expires_before")?,
        expires_after: time("expires_after")?,
        page,
        limit,
        ..KeyFilter::default()
    };
    let client = state.client().await?;
    let account = auth.account_id();
    let (items, total) = match service {
        Some(n) => match apps::id_by_num(&**client, account, n).await {
            Ok(app) => {
                filter.app_id = Some(app);
                key_system::list(&**client, account, &filter).await?
            }
            // A filter on a service the account does not have matches no key.
            Err(StoreError::NotFound(_)) => (Vec::new(), 0),
            Err(e) => return Err(e.into()),
        },
        None => key_system::list(&**client, account, &filter).await?,
    };
    let names = Names::load(&**client, account).await?;
    Ok(answer(
        StatusCode::OK,
        json!({
            "keys": names.keys(&items),
            "pagination": {"page": page, "limit": limit, "total": total,
                           "pages": (total + limit - 1) / limit},
        }),
    ))
}

/// What `POST /keys` and `POST /keys/batch` send, as a core generation.
struct Creation {
    service: Option<i64>,
    spec: GenerateSpec,
}

fn creation(b: &Body<'_>, batch: bool) -> JkResult<Creation> {
    let provider = b.int("provider_id")?.value();
    let amount = if batch {
        b.int("amount")?.value()
    } else {
        Some(1)
    };
    // Name every missing field at once: a camelCase body ({serviceId, providerId, count}) is
    // told which snake_case fields it lacks.
    let missing: Vec<&str> = [
        ("provider_id", provider.is_none()),
        ("amount", amount.is_none()),
    ]
    .into_iter()
    .filter_map(|(n, m)| m.then_some(n))
    .collect();
    if !missing.is_empty() {
        return Err(JkError::bad_request(format!(
            "{} required (bodies are snake_case)",
            match missing.as_slice() {
                [one] => format!("{one} is"),
                _ => format!("{} are", missing.join(" and ")),
            }
        )));
    }
    let provider = provider.unwrap_or_default();
    if provider < 1 {
        return Err(JkError::bad_request("provider_id must be 1 or more"));
    }
    let amount = amount.unwrap_or(1);
    if !(1..=MAX_AMOUNT).contains(&amount) {
        return Err(JkError::bad_request("amount must be between 1 and 100"));
    }
    let (duration_secs, no_expiry) = validity(b.int("validity_minutes")?)?;
    let hwids = match b.strings("hwids")? {
        Field::Set(h) => Some(h),
        _ => b
            .string("hwid")?
            .value()
            .filter(|h| !h.is_empty())
            .map(|h| vec![h]),
    };
    let hwid_limit = match b.int("hwid_limit")? {
        Field::Set(n) => i32::try_from(n)
            .map_err(|_| JkError::bad_request("hwid_limit must be between 0 and 10000"))?,
        // Junkie's null: unlimited.
        _ => 0,
    };
    Ok(Creation {
        service: b.int("service_id")?.value(),
        spec: GenerateSpec {
            count: Some(amount),
            note: b.string("key_name")?.value(),
            duration_secs,
            no_expiry,
            expiry_on_first_use: b.bool("expiry_on_first_use")?.unwrap_or(false),
            hwid_limit: Some(hwid_limit),
            premium: b.bool("is_premium")?.unwrap_or(false),
            hwid_check: Some(!b.bool("no_hwid")?.unwrap_or(false)),
            one_time_use: Some(b.bool("one_time_use")?.unwrap_or(false)),
            discord_id: discord_id(b)?.value(),
            provider_id: Some(provider),
            hwids,
            ..GenerateSpec::default()
        },
    })
}

/// `validity_minutes` as a core validity: absent takes the provider's default, null or 0 is
/// forever.
fn validity(f: Field<i64>) -> JkResult<(Option<i64>, bool)> {
    match f {
        Field::Absent => Ok((None, false)),
        Field::Null | Field::Set(0) => Ok((None, true)),
        // The core refuses what is out of range (more than 999999 days included).
        Field::Set(m) if m > 0 => Ok((Some(m.saturating_mul(60)), false)),
        Field::Set(_) => Err(JkError::bad_request(
            "validity_minutes must be 0 or more (null or 0: forever)",
        )),
    }
}

/// A Discord user id, sent as a string or a number; an empty string is none.
fn discord_id(b: &Body<'_>) -> JkResult<Field<String>> {
    Ok(match b.string("discord_id") {
        Ok(Field::Set(s)) if s.is_empty() => Field::Null,
        Ok(f) => f,
        Err(e) => match b.int("discord_id") {
            Ok(Field::Set(n)) => Field::Set(n.to_string()),
            _ => return Err(e),
        },
    })
}

/// The app keys are created in: the named service, else the account's only one.
async fn service_for(w: &WriteTx<'_>, service: Option<i64>) -> JkResult<Uuid> {
    let account = w.account_id();
    if let Some(n) = service {
        return Ok(apps::id_by_num(w.tx(), account, n).await?);
    }
    match apps::list(w.tx(), account).await?.as_slice() {
        [only] => Ok(only.id),
        [] => Err(JkError::bad_request(
            "service_id is required: the account has no service yet (POST /api/v2/services)",
        )),
        several => Err(JkError::bad_request(format!(
            "service_id is required: the account has {} services",
            several.len()
        ))),
    }
}

async fn generate(
    state: &AppState,
    auth: crate::auth::Auth,
    c: Creation,
) -> JkResult<(Vec<License>, Names)> {
    let account = auth.account_id();
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let app = service_for(&w, c.service).await?;
    let mut made = licenses::generate(&mut w, app, &c.spec).await?;
    let ids: Vec<Uuid> = made.iter().map(|l| l.id).collect();
    emit::licenses(&mut w, "license.created", &ids).await?;
    w.commit().await?;
    made.sort_by_key(|l| l.traits.num_id);
    Ok((made, Names::load(&**client, account).await?))
}

pub async fn create(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    JkBody(b): JkBody,
) -> JkResult<Response> {
    let c = creation(&Body(&b), false)?;
    let (made, names) = generate(&state, auth, c).await?;
    let key = made
        .first()
        .map(|l| names.key(l))
        .ok_or_else(|| JkError::from(crate::error::ApiError::internal("no key was made")))?;
    Ok(answer(StatusCode::CREATED, json!({ "key": key })))
}

pub async fn batch(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    JkBody(b): JkBody,
) -> JkResult<Response> {
    let c = creation(&Body(&b), true)?;
    let (made, names) = generate(&state, auth, c).await?;
    Ok(answer(
        StatusCode::CREATED,
        json!({ "keys": names.keys(&made) }),
    ))
}

pub async fn bulk_delete(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    JkBody(b): JkBody,
) -> JkResult<Response> {
    let b = Body(&b);
    let ids = b.ints("ids")?;
    let keys = b.strings("keys")?;
    let key_values = b.strings("key_values")?;
    if ids.is_absent() && keys.is_absent() && key_values.is_absent() {
        return Err(JkError::bad_request(
            "give ids (integers), keys or key_values (strings) of the keys to delete",
        ));
    }
    let mut values = keys.value().unwrap_or_default();
    values.extend(key_values.value().unwrap_or_default());
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let deleted =
        key_system::delete_many(&mut w, &ids.value().unwrap_or_default(), &values).await?;
    w.commit().await?;
    Ok(answer(
        StatusCode::OK,
        json!({"deleted": deleted, "message": "Keys deleted"}),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    JkPath(key): JkPath<String>,
) -> JkResult<Response> {
    let client = state.client().await?;
    let account = auth.account_id();
    let l = key_system::find(&**client, account, None, KeyRef::parse(&key)).await?;
    let names = Names::load(&**client, account).await?;
    Ok(answer(StatusCode::OK, json!({ "key": names.key(&l) })))
}

/// A PUT body: the traits to write, the validity fields (resolved against the key as it is)
/// and the HWIDs that replace the bound ones.
struct Update {
    traits: TraitsPatch,
    touched: bool,
    validity_minutes: Field<i64>,
    expiry_on_first_use: Option<bool>,
    expires_at: Field<chrono::DateTime<chrono::Utc>>,
    hwids: Option<Vec<String>>,
}

fn update_of(b: &Body<'_>) -> JkResult<Update> {
    let hwid_limit = match b.int("hwid_limit")? {
        Field::Absent => None,
        Field::Null => Some(Some(0)),
        Field::Set(n) => Some(Some(i32::try_from(n).map_err(|_| {
            JkError::bad_request("hwid_limit must be between 0 and 10000")
        })?)),
    };
    let traits = TraitsPatch {
        note: b
            .string("key_name")?
            .patch()
            .map(|n| n.filter(|n| !n.is_empty())),
        premium: b.bool("is_premium")?,
        hwid_check: b.bool("no_hwid")?.map(|n| !n),
        one_time_use: b.bool("one_time_use")?,
        discord_id: discord_id(b)?.patch(),
        hwid_limit,
        invalidated: b.bool("is_invalidated")?,
        ..TraitsPatch::default()
    };
    let touched = traits.note.is_some()
        || traits.premium.is_some()
        || traits.hwid_check.is_some()
        || traits.one_time_use.is_some()
        || traits.discord_id.is_some()
        || traits.hwid_limit.is_some()
        || traits.invalidated.is_some();
    Ok(Update {
        traits,
        touched,
        validity_minutes: b.int("validity_minutes")?,
        expiry_on_first_use: b.bool("expiry_on_first_use")?,
        expires_at: b.time("expires_at")?,
        // `[]` (or null) clears them.
        hwids: b.strings("hwids")?.patch().map(Option::unwrap_or_default),
    })
}

/// The new expiry, if the PUT changes it: a fixed `expires_at`, or a validity (the one sent,
/// else the key's) counted from creation or from the first use.
fn expiry_of(u: &Update, key: &License) -> JkResult<Option<Expiry>> {
    if !u.expires_at.is_absent() {
        if !u.validity_minutes.is_absent() || u.expiry_on_first_use == Some(true) {
            return Err(JkError::bad_request(
                "give expires_at, or validity_minutes with expiry_on_first_use, not both",
            ));
        }
        return Ok(Some(Expiry {
            expires_at: u.expires_at.clone().value(),
            ..Expiry::default()
        }));
    }
    if u.validity_minutes.is_absent() && u.expiry_on_first_use.is_none() {
        return Ok(None);
    }
    let secs = match validity(u.validity_minutes.clone())? {
        (Some(s), _) => Some(s),
        (None, true) => None,
        (None, false) => key_system::validity_secs(key),
    };
    let from_first_use = u
        .expiry_on_first_use
        .unwrap_or_else(|| key_system::expires_on_first_use(key));
    Ok(Some(Expiry::validity(key, secs, from_first_use)?))
}

pub async fn update(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    JkPath(key): JkPath<String>,
    JkBody(b): JkBody,
) -> JkResult<Response> {
    let mut u = update_of(&Body(&b))?;
    let account = auth.account_id();
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let l = key_system::find(w.tx(), account, None, KeyRef::parse(&key)).await?;
    u.traits.expiry = expiry_of(&u, &l)?;
    if u.touched || u.traits.expiry.is_some() {
        key_system::update_traits(&mut w, l.id, &u.traits).await?;
    }
    if let Some(hwids) = &u.hwids {
        key_system::replace_hwids(&mut w, l.id, hwids, "manual").await?;
    }
    emit::license(&mut w, "license.updated", l.id).await?;
    w.commit().await?;
    let l = licenses::get(&**client, account, l.id).await?;
    let names = Names::load(&**client, account).await?;
    Ok(answer(StatusCode::OK, json!({ "key": names.key(&l) })))
}

pub async fn delete(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    JkPath(key): JkPath<String>,
) -> JkResult<Response> {
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let l = key_system::find(w.tx(), w.account_id(), None, KeyRef::parse(&key)).await?;
    // Rendered before it goes, in the same transaction.
    emit::license(&mut w, "license.deleted", l.id).await?;
    licenses::delete(&mut w, l.id).await?;
    w.commit().await?;
    Ok(answer(StatusCode::OK, json!({"message": "Key deleted"})))
}

/// `force` from the query or the body: `true` (or `1`) skips the app's reset cooldown.
fn forced(q: &JkQuery, b: &Body<'_>) -> bool {
    let yes = |s: &str| s.eq_ignore_ascii_case("true") || s == "1";
    q.get(&["force"]).is_some_and(yes)
        || match b.0.get("force") {
            Some(serde_json::Value::Bool(v)) => *v,
            Some(serde_json::Value::String(s)) => yes(s),
            _ => false,
        }
}

pub async fn reset_hwid(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    JkPath(key): JkPath<String>,
    q: JkQuery,
    JkBody(b): JkBody,
) -> JkResult<Response> {
    let force = forced(&q, &Body(&b));
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let l = key_system::find(w.tx(), w.account_id(), None, KeyRef::parse(&key)).await?;
    match key_system::reset_hwids(&mut w, l.id, !force).await? {
        HwidReset::Done => {
            emit::license(&mut w, "license.updated", l.id).await?;
            w.commit().await?;
            Ok(answer(StatusCode::OK, json!({"message": "HWIDs reset"})))
        }
        // Nothing was written; the transaction rolls back as it drops.
        HwidReset::TooSoon { retry_after_secs } => Err(JkError::too_soon(
            retry_after_secs,
            format!(
                "this key's HWIDs were reset recently; retry in {retry_after_secs} s (or send force=true)"
            ),
        )),
    }
}
