//! Hostile input on every operation of the served OpenAPI document, generated from it: a route is
//! covered by being documented. For each operation: NUL, 70 kB, invalid UTF-8, control and
//! unicode text, wrong JSON types, out-of-range numbers and deep nesting in every path, query and
//! body field; missing, malformed and forged credentials; and a second tenant's credentials with
//! the first tenant's real ids. Nothing may answer 5xx or drop the connection, a NUL is a 400
//! naming its field, and the second tenant neither reads nor changes anything of the first's.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use common::*;
use reqwest::Method;
use serde_json::{json, Map, Value};

/// One tenant with one of every resource, and the strings that identify its data.
struct Tenant {
    jwt: String,
    api_key: String,
    seller_key: String,
    /// A customer's token (CyberLicense's customer API); the customer owns `license_key`.
    customer_token: String,
    account_id: String,
    /// Resource kind → a real id of this tenant.
    ids: BTreeMap<&'static str, String>,
    app_name: String,
    /// An app the hostile seller calls may empty (`delalllicenses`, `resetapp`).
    spare_app_name: String,
    license_key: String,
    username: String,
    /// Panda: the app's service key (`apiKey`), its public service id, a revoked service key.
    service_key: String,
    service_id: String,
    revoked_service_key: String,
    /// Ids, keys, names and secrets that must never appear in another tenant's answers.
    marks: Vec<String>,
}

fn field(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[*p],
        };
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("no string at {path:?} in {v}"))
        .to_string()
}

async fn tenant(cp: &Cp, name: &str) -> Tenant {
    let jwt = cp.admin(name).await;
    let j = jwt.as_str();
    let me = cp.ok(Method::GET, "/v1/account", j, None).await;
    let account_id = field(&me, &["id"]);
    let app_name = format!("{name}-tool-{}", uuid::Uuid::new_v4().simple());
    let app = cp.app(j, &app_name).await;
    let spare_app_name = format!("{name}-spare-{}", uuid::Uuid::new_v4().simple());
    let spare = cp.app(j, &spare_app_name).await;
    let app_secret = field(
        &cp.ok(Method::GET, &format!("/v1/apps/{app}"), j, None)
            .await,
        &["secret"],
    );
    let lic = cp
        .licenses(
            j,
            &app,
            json!({"count": 1, "duration_days": 5, "note": format!("{name}-note")}),
        )
        .await
        .remove(0);
    cp.licenses(j, &spare, json!({"count": 2, "duration_days": 5}))
        .await;
    let license_key = field(&lic, &["key"]);
    let bl = cp
        .ok(
            Method::POST,
            &format!("/v1/apps/{app}/blacklist"),
            j,
            Some(json!({"kind": "hwid", "value": format!("{name}-HWID")})),
        )
        .await;
    let key = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            j,
            Some(json!({"name": "k", "scopes": ["*"]})),
        )
        .await;
    let d = |p: &str| format!("/api/dashboard/{p}");
    let sub = cp
        .ok(
            Method::POST,
            &d(&format!("subscriptions/{app}")),
            j,
            Some(json!({"name": "Premium", "level": 1, "duration_days": 30})),
        )
        .await;
    let username = format!("{name}-player");
    let user = cp
        .ok(
            Method::POST,
            &d(&format!("users/{app}")),
            j,
            Some(json!({"username": username, "password": "pw123456", "subscription_name": "Premium"})),
        )
        .await;
    let user_id = field(&user, &["user", "id"]);
    cp.ok(
        Method::POST,
        &d(&format!("variables/{app}/global")),
        j,
        Some(json!({"key": "motd", "value": format!("{name}-motd")})),
    )
    .await;
    let gvar = cp
        .ok(Method::GET, &d(&format!("variables/{app}/global")), j, None)
        .await;
    cp.ok(
        Method::POST,
        &d(&format!("variables/{app}/user")),
        j,
        Some(json!({"user_id": user_id, "key": "rank", "value": format!("{name}-rank")})),
    )
    .await;
    let uvar = cp
        .ok(
            Method::GET,
            &d(&format!("variables/{app}/user?user_id={user_id}")),
            j,
            None,
        )
        .await;
    let hook = cp
        .ok(
            Method::POST,
            &d(&format!("webhooks/{app}")),
            j,
            Some(json!({"name": format!("{name}-hook"), "url": "https://example.com/hook"})),
        )
        .await;
    let entry = cp
        .ok(
            Method::POST,
            &d(&format!("blacklist/{app}")),
            j,
            Some(json!({"type": "ip", "value": "198.51.100.7"})),
        )
        .await;
    let seller = cp
        .ok(
            Method::POST,
            &d("seller-keys"),
            j,
            Some(json!({"name": "bot"})),
        )
        .await;
    let policy = cp
        .ok(
            Method::POST,
            &format!("/v1/apps/{app}/policies"),
            j,
            Some(json!({"name": format!("{name}-policy"), "floating": true, "max_machines": 4})),
        )
        .await;
    let machine = cp
        .ok(
            Method::POST,
            &format!("/v1/licenses/{}/machines", field(&lic, &["id"])),
            j,
            Some(json!({"fingerprint": format!("{name}-machine"), "hostname": format!("{name}-host")})),
        )
        .await;
    let entitlement = cp
        .ok(
            Method::POST,
            "/v1/entitlements",
            j,
            Some(json!({"name": format!("{name}-feature"), "code": format!("{name}-FEATURE")})),
        )
        .await;
    let entitlement_id = field(&entitlement, &["id"]);
    // A webhook endpoint and one event of it (a license made after it); then disabled, so the
    // event is given up without a network call.
    let endpoint = cp
        .ok(
            Method::POST,
            "/v1/webhook-endpoints",
            j,
            Some(json!({"url": "https://example.com/hook", "subscriptions": ["license.created"]})),
        )
        .await;
    let endpoint_id = field(&endpoint, &["id"]);
    cp.licenses(j, &spare, json!({"count": 1, "duration_days": 5}))
        .await;
    let events = cp
        .ok(
            Method::GET,
            &format!("/v1/webhook-events?endpoint_id={endpoint_id}"),
            j,
            None,
        )
        .await;
    let event_id = field(&events, &["items", "0", "id"]);
    cp.ok(
        Method::PATCH,
        &format!("/v1/webhook-endpoints/{endpoint_id}"),
        j,
        Some(json!({"enabled": false})),
    )
    .await;
    for holder in [
        format!("/v1/policies/{}", field(&policy, &["id"])),
        format!("/v1/licenses/{}", field(&lic, &["id"])),
    ] {
        cp.ok(
            Method::POST,
            &format!("{holder}/entitlements"),
            j,
            Some(json!({"entitlement_ids": [entitlement_id]})),
        )
        .await;
    }
    // Keygen's admin resources: a token (made with the admin's password) and a pooled key.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{PASSWORD}"));
    let token = cp
        .http
        .post(format!("{}/keygen/v1/tokens", cp.base))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await
        .expect("keygen token");
    let token = into_resp(token).await;
    assert_eq!(token.status, 201, "{}", token.body);
    let pooled = cp
        .ok(
            Method::POST,
            "/keygen/v1/keys",
            j,
            Some(json!({"data": {"type": "keys", "attributes": {"key": format!("{name}-POOLED-KEY")},
                "relationships": {"policy": {"data": {"type": "policies", "id": field(&policy, &["id"])}}}}})),
        )
        .await;
    let account_user = cp
        .ok(
            Method::POST,
            "/keygen/v1/users",
            j,
            Some(json!({"data": {"type": "users", "attributes": {"email": format!("{name}-customer@example.com"),
                "password": "customer password"}}})),
        )
        .await;
    let customer_id = field(&account_user, &["data", "id"]);
    let customer_token = cp
        .ok(
            Method::POST,
            &format!("/v1/customers/{customer_id}/tokens"),
            j,
            None,
        )
        .await;
    cp.ok(
        Method::PATCH,
        &format!("/v1/licenses/{}", field(&lic, &["id"])),
        j,
        Some(json!({"owner_id": customer_id})),
    )
    .await;
    let mut ids = BTreeMap::new();
    ids.insert("keygen_user", customer_id.clone());
    ids.insert("keygen_token", field(&token.body, &["data", "id"]));
    ids.insert("pooled_key", field(&pooled, &["data", "id"]));
    ids.insert("app", app.clone());
    ids.insert("entitlement", entitlement_id);
    ids.insert("machine", field(&machine, &["id"]));
    ids.insert("policy", field(&policy, &["id"]));
    ids.insert("license", field(&lic, &["id"]));
    ids.insert("blacklist", field(&bl, &["id"]));
    ids.insert("dashboard_blacklist", field(&entry, &["entry", "id"]));
    ids.insert("api_key", field(&key, &["id"]));
    ids.insert("subscription", field(&sub, &["subscription", "id"]));
    ids.insert("user", user_id);
    ids.insert("global_var", field(&gvar, &["variables", "0", "id"]));
    ids.insert("user_var", field(&uvar, &["variables", "0", "id"]));
    ids.insert("webhook", field(&hook, &["webhook", "id"]));
    ids.insert("seller_key", field(&seller, &["id"]));
    ids.insert("webhook_endpoint", endpoint_id);
    ids.insert("webhook_event", event_id);
    // A client-API session of the app, as a validator's `init` makes it.
    let session = keyward_shared::store::sessions::create(
        &cp.db.client().await,
        &keyward_shared::store::sessions::NewSession {
            account_id: account_id.parse().expect("account id"),
            app_id: app.parse().expect("app id"),
            ip: Some("198.51.100.9"),
            enckey: None,
            lifetime_secs: 3600,
        },
    )
    .await
    .expect("a session");
    ids.insert("session", session.id);
    let transaction = cp
        .ok(
            Method::POST,
            "/v1/transactions",
            j,
            Some(
                json!({"amount_minor": 1999, "currency": "USD", "license_id": field(&lic, &["id"]),
                "reference": format!("{name}-order")}),
            ),
        )
        .await;
    ids.insert("transaction", field(&transaction, &["id"]));
    let panda = panda_resources(cp, j, &app, name).await;
    ids.extend(panda.ids);
    let mut marks: Vec<String> = ids.values().cloned().collect();
    marks.extend(panda.marks);
    let junkie = junkie_resources(cp, &key, name).await;
    marks.extend(junkie.marks);
    ids.extend(junkie.ids);
    // An audit entry (an integer id: not a mark, it would match any number).
    let audit = cp.ok(Method::GET, "/v1/audit-log?limit=1", j, None).await;
    let audit_id = audit["items"][0]["id"].as_i64().expect("an audit entry");
    ids.insert("audit_entry", audit_id.to_string());
    marks.extend([
        field(&token.body, &["data", "attributes", "token"]),
        field(&customer_token, &["token"]),
        format!("{name}-customer@example.com"),
        format!("{name}-POOLED-KEY"),
        account_id.clone(),
        app_name.clone(),
        spare_app_name.clone(),
        app_secret,
        license_key.clone(),
        username.clone(),
        format!("{name}-note"),
        format!("{name}-HWID"),
        format!("{name}-motd"),
        format!("{name}-rank"),
        format!("{name}-hook"),
        format!("{name}-policy"),
        format!("{name}-machine"),
        format!("{name}-host"),
        format!("{name}-feature"),
        format!("{name}-FEATURE"),
        format!("{name}-order"),
    ]);
    Tenant {
        jwt,
        api_key: field(&key, &["key"]),
        seller_key: field(&seller, &["key"]),
        customer_token: field(&customer_token, &["token"]),
        service_key: panda.service_key,
        service_id: panda.service_id,
        revoked_service_key: panda.revoked_service_key,
        account_id,
        ids,
        app_name,
        spare_app_name,
        license_key,
        username,
        marks,
    }
}

/// Junkie REST v2 resources (`/api/v2`) of a tenant, made with its API key as a bot would:
/// their integer ids, and their names and key value as marks.
struct Junkie {
    ids: BTreeMap<&'static str, String>,
    marks: Vec<String>,
}

async fn junkie_resources(cp: &Cp, key: &Value, name: &str) -> Junkie {
    let scopes = key["scopes"].as_array().expect("scopes");
    assert!(
        scopes.iter().any(|s| s == "*" || s == "rest-api:*"),
        "the tenant's API key must allow rest-api:* to reach /api/v2: {key}"
    );
    let bearer = field(key, &["key"]);
    let b = bearer.as_str();
    let provider = cp
        .ok(
            Method::POST,
            "/api/v2/providers",
            b,
            Some(json!({"name": format!("{name}-provider"), "key_valid_minutes": 60})),
        )
        .await;
    let service = cp
        .ok(
            Method::POST,
            "/api/v2/services",
            b,
            Some(json!({"name": format!("{name}-junkie-service")})),
        )
        .await;
    let provider_id = provider["provider"]["id"].as_i64().expect("provider id");
    let service_id = service["service"]["id"].as_i64().expect("service id");
    let made = cp
        .ok(
            Method::POST,
            "/api/v2/keys",
            b,
            Some(json!({"provider_id": provider_id, "service_id": service_id,
                "key_name": format!("{name}-junkie-key"), "hwid": format!("{name}-junkie-hwid")})),
        )
        .await;
    let mut ids = BTreeMap::new();
    ids.insert(
        "junkie_key",
        made["key"]["id"].as_i64().expect("key id").to_string(),
    );
    ids.insert("junkie_service", service_id.to_string());
    ids.insert("provider", provider_id.to_string());
    Junkie {
        ids,
        marks: vec![
            field(&made, &["key", "key_value"]),
            format!("{name}-provider"),
            format!("{name}-junkie-service"),
            format!("{name}-junkie-key"),
            format!("{name}-junkie-hwid"),
        ],
    }
}

/// Panda's resources of a tenant's app: a service id, a service key (and a revoked one), a
/// keyless entry.
struct Panda {
    ids: BTreeMap<&'static str, String>,
    marks: Vec<String>,
    service_key: String,
    service_id: String,
    revoked_service_key: String,
}

async fn panda_resources(cp: &Cp, jwt: &str, app: &str, name: &str) -> Panda {
    let service_id = format!("{name}-svc-{}", uuid::Uuid::new_v4().simple());
    cp.ok(
        Method::PATCH,
        &format!("/v1/apps/{app}"),
        jwt,
        Some(json!({"service_id": service_id})),
    )
    .await;
    let keys = format!("/v1/apps/{app}/service-keys");
    let key = cp
        .ok(Method::POST, &keys, jwt, Some(json!({"name": "bot"})))
        .await;
    let revoked = cp
        .ok(Method::POST, &keys, jwt, Some(json!({"name": "old"})))
        .await;
    cp.ok(
        Method::DELETE,
        &format!("{keys}/{}", field(&revoked, &["id"])),
        jwt,
        None,
    )
    .await;
    let hwid = format!("{name}-keyless-hwid");
    cp.ok(
        Method::PUT,
        &format!("/v1/apps/{app}/keyless"),
        jwt,
        Some(json!({"hwid": hwid, "premium": true})),
    )
    .await;
    let mut ids = BTreeMap::new();
    ids.insert("service_key", field(&key, &["id"]));
    ids.insert("keyless_hwid", hwid.clone());
    Panda {
        ids,
        marks: vec![
            field(&key, &["key"]),
            field(&revoked, &["key"]),
            service_id.clone(),
            hwid,
        ],
        service_key: field(&key, &["key"]),
        service_id,
        revoked_service_key: field(&revoked, &["key"]),
    }
}

/// A documented operation.
struct Op {
    method: Method,
    template: String,
    path_params: Vec<String>,
    query_params: Vec<(String, Value)>,
    body: Option<Value>,
    security: Vec<String>,
}

impl Op {
    fn what(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    fn is_public(&self) -> bool {
        self.security.is_empty()
    }

    /// Panda's admin API: a service key as `apiKey`.
    fn is_panda(&self) -> bool {
        self.security.iter().any(|s| s.starts_with("pandaApiKey"))
    }

    /// A Panda operation that names one existing thing of the service (a key, a keyless
    /// entry), so that another tenant's service key must be refused.
    fn is_panda_lookup(&self) -> bool {
        let names = |n: &str| {
            self.query_params.iter().any(|(q, _)| q == n)
                || self
                    .body
                    .as_ref()
                    .is_some_and(|b| b["properties"].get(n).is_some())
        };
        self.is_panda()
            && (names("keyValue")
                || names("fetch")
                || (names("hwid") && self.template != "/api/keyless/add"))
    }

    /// CyberLicense's customer API: a customer's token.
    fn is_customer(&self) -> bool {
        self.security.iter().any(|s| s == "customerBearer")
    }

    fn is_seller(&self) -> bool {
        self.security.iter().any(|s| s.starts_with("sellerKey"))
    }
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(m) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if method == "parameters" {
                continue;
            }
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .into_iter()
                .chain(item["parameters"].as_array())
                .flatten()
                .collect();
            let named = |place: &str| -> Vec<&Value> {
                params
                    .iter()
                    .copied()
                    .filter(|p| p["in"] == place)
                    .collect()
            };
            ops.push(Op {
                method: m,
                template: template.clone(),
                path_params: named("path")
                    .iter()
                    .map(|p| p["name"].as_str().expect("name").to_string())
                    .collect(),
                query_params: named("query")
                    .iter()
                    .map(|p| {
                        (
                            p["name"].as_str().expect("name").to_string(),
                            p["schema"].clone(),
                        )
                    })
                    .collect(),
                body: op["requestBody"]["content"]["application/json"]["schema"]
                    .as_object()
                    .map(|s| Value::Object(s.clone())),
                security: op["security"]
                    .as_array()
                    .map(|alts| {
                        alts.iter()
                            .flat_map(|a| a.as_object().into_iter().flat_map(|o| o.keys().cloned()))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    ops
}

/// Which kind of resource a path parameter names.
fn resource_of(template: &str, param: &str) -> &'static str {
    match param {
        "appId" => return "app",
        "licenseId" => return "license",
        "userId" => return "user",
        "subId" => return "subscription",
        "webhookId" => return "webhook",
        "entryId" => return "dashboard_blacklist",
        "keyId" => return "seller_key",
        "serviceKeyId" => return "service_key",
        "hwid" => return "keyless_hwid",
        // Junkie's `/api/v2` (integer ids; "keys" there is not Keygen's pooled keys).
        "junkieKey" => return "junkie_key",
        "serviceNum" => return "junkie_service",
        "providerId" => return "provider",
        "varId" if template.contains("/global/") || template.starts_with("/v1/variables/") => {
            return "global_var"
        }
        "sessionId" => return "session",
        "varId" => return "user_var",
        _ => {}
    }
    let segs: Vec<&str> = template.split('/').collect();
    let at = segs
        .iter()
        .position(|s| *s == format!("{{{param}}}"))
        .unwrap_or_else(|| panic!("{param} is not in {template}"));
    match segs[at - 1] {
        "apps" => "app",
        "licenses" => "license",
        "blacklist" => "blacklist",
        "api-keys" => "api_key",
        "policies" => "policy",
        "machines" => "machine",
        "entitlements" => "entitlement",
        "webhook-endpoints" => "webhook_endpoint",
        "webhook-events" => "webhook_event",
        "transactions" => "transaction",
        // Customers are the account's users (Keygen's users).
        "customers" => "keygen_user",
        // CyberLicense's `/api/audit/{id}`.
        "audit" => "audit_entry",
        // Keygen's admin API (`/keygen/v1/…`).
        "products" => "app",
        "tokens" => "keygen_token",
        "keys" => "pooled_key",
        "users" => "keygen_user",
        other => panic!(
            "{template}: teach this test which resource the path parameter {param} (after '{other}') names"
        ),
    }
}

/// Points a Panda body at the tenant's key and keyless entry (not an addition's: another
/// service may add an entry for the same HWID, which is then its own).
fn aim_at(body: &mut Value, t: &Tenant) {
    if let Some(b) = body.as_object_mut() {
        if b.contains_key("keyValue") {
            b.insert("keyValue".into(), json!(t.license_key));
        }
        if b.contains_key("hwid") {
            b.insert("hwid".into(), json!(t.ids["keyless_hwid"]));
        }
    }
}

/// The tenant's real value for a query parameter that names one of its things.
fn query_value(t: &Tenant, name: &str, op: &Op) -> Option<String> {
    Some(match name {
        "fetch" if op.template.starts_with("/api/keyless/") => t.ids["keyless_hwid"].clone(),
        "fetch" | "keyValue" if op.is_panda() => t.license_key.clone(),
        "identifier" if op.is_panda() => t.service_id.clone(),
        "app_id" => t.ids["app"].clone(),
        "target_id" => t.ids["license"].clone(),
        "user_id" => t.ids["user"].clone(),
        "appname" if op.is_seller() => t.app_name.clone(),
        "key" => t.license_key.clone(),
        "user" => t.username.clone(),
        "var" => "motd".into(),
        _ => return None,
    })
}

/// A plausible value of a schema, so that a hostile neighbour is what gets rejected.
fn sample(name: &str, schema: &Value, t: &Tenant, n: usize) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    // A nullable field's type is `[type, "null"]`: sample the type.
    let ty = match &schema["type"] {
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        t => t.as_str(),
    };
    match ty.unwrap_or("string") {
        "integer" | "number" => {
            let v = match name {
                "session_secs" => 3600,
                "count" | "amount" => 1,
                "provider_id" => t.ids["provider"].parse().unwrap_or(1),
                "service_id" => t.ids["junkie_service"].parse().unwrap_or(1),
                _ => 1,
            };
            let v = schema["minimum"].as_i64().map_or(v, |m| v.max(m));
            let v = schema["maximum"].as_i64().map_or(v, |m| v.min(m));
            json!(v)
        }
        // Panda's edits need `daysKey` to come with `expiresByDaysKey=true`.
        "boolean" => json!(name == "expiresByDaysKey"),
        "array" => match name {
            "scopes" => json!(["*"]),
            "entitlement_ids" => json!([t.ids["entitlement"]]),
            // Junkie's bulk delete by integer id: none of the tenant's, so that the sweep
            // does not delete the keys later operations use.
            "ids" => json!([0]),
            _ => json!([sample(name, &schema["items"], t, n)]),
        },
        "object" => {
            // Alternatives to another field, or ids that must name something real: left out of
            // the plausible body (each is still made hostile on its own).
            const ALTERNATIVES: &[&str] = &[
                "signing_key_id",
                "duration_secs",
                "expires_at",
                "seconds",
                "expires_at_until_first_use",
            ];
            let mut o = Map::new();
            for (k, s) in schema["properties"].as_object().into_iter().flatten() {
                if ALTERNATIVES.contains(&k.as_str()) {
                    continue;
                }
                o.insert(k.clone(), sample(k, s, t, n));
            }
            Value::Object(o)
        }
        _ => json!(match (name, schema["format"].as_str()) {
            ("policy_id", _) => t.ids["policy"].clone(),
            ("discord_id", _) => "123456789012345678".into(),
            ("app_id", _) => t.ids["app"].clone(),
            ("api_version", _) => "1.8".into(),
            (_, Some("uuid")) => t.ids["user"].clone(),
            (_, Some("date-time")) => "2031-01-01T00:00:00Z".into(),
            (_, Some("date")) => "2031-01-01".into(),
            ("service_id", _) => format!("svc-{n}"),
            ("get_key_url", _) => "https://example.com/getkey".into(),
            ("url" | "download_url", _) => "https://example.com/hook".into(),
            ("email", _) => format!("u{n}@example.com"),
            ("password" | "current_password" | "new_password", _) => PASSWORD.to_string(),
            ("username", _) => format!("user{n}"),
            ("mask", _) => "TEST-XXXX-XXXX".into(),
            ("value", _) => format!("10.20.{}.{}", n / 250 % 250, n % 250),
            ("ip", _) => "198.51.100.20".into(),
            ("fingerprint", _) => format!("fp{n}"),
            ("code", _) => format!("code-{n}"),
            ("key", _) => format!("k{n}"),
            ("prefix", _) => "PX".into(),
            ("version", _) => "1.0".into(),
            ("subscription_name", _) => "Premium".into(),
            ("name", _) => format!("n{n}"),
            _ => "x".to_string(),
        }),
    }
}

/// Hostile text: (label, value, holds a NUL).
fn hostile_strings() -> Vec<(&'static str, String, bool)> {
    vec![
        ("NUL", "a\0b".into(), true),
        ("only NUL", "\0".into(), true),
        ("70 kB", "x".repeat(70_000), false),
        ("70 kB of 2-byte chars", "é".repeat(35_000), false),
        (
            "control characters",
            "\u{1}\u{8}\u{1b}[2J\r\n\t\u{7f}".into(),
            false,
        ),
        (
            "bidi and astral",
            "\u{202e}\u{1F600}\u{FEFF}\u{FFFF}".into(),
            false,
        ),
        ("SQL", "' OR '1'='1'; --".into(), false),
        ("path traversal", "../../../etc/passwd".into(), false),
        ("percent escapes", "%00%ff%".into(), false),
        ("huge number", "99999999999999999999999999".into(), false),
        ("negative", "-1".into(), false),
        ("empty", String::new(), false),
        ("whitespace", "   ".into(), false),
    ]
}

/// Hostile JSON values for a body field: (label, value, holds a NUL).
fn hostile_values() -> Vec<(String, Value, bool)> {
    let mut v: Vec<(String, Value, bool)> = hostile_strings()
        .into_iter()
        .map(|(l, s, nul)| (format!("string {l}"), Value::String(s), nul))
        .collect();
    let mut deep = json!("x");
    for _ in 0..100 {
        deep = json!({ "a": deep });
    }
    v.extend([
        ("i64::MAX".into(), json!(i64::MAX), false),
        ("i64::MIN".into(), json!(i64::MIN), false),
        ("u64::MAX".into(), json!(u64::MAX), false),
        ("1e308".into(), json!(1e308), false),
        ("fraction".into(), json!(1.5), false),
        ("-1".into(), json!(-1), false),
        ("0".into(), json!(0), false),
        ("true".into(), json!(true), false),
        ("null".into(), Value::Null, false),
        ("empty array".into(), json!([]), false),
        ("array of NUL".into(), json!(["\0"]), true),
        ("object".into(), json!({"k": "v"}), false),
        ("object with a NUL key".into(), json!({"a\0": 1}), true),
        ("100-deep object".into(), deep, false),
    ]);
    v
}

/// Percent-encodes everything but unreserved characters (so NUL travels as `%00`).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Path and query values as they go on the wire: every hostile string, plus raw bytes that are
/// not UTF-8 (already encoded). (label, encoded, holds a NUL)
fn hostile_url_values() -> Vec<(String, String, bool)> {
    let mut v: Vec<(String, String, bool)> = hostile_strings()
        .into_iter()
        .map(|(l, s, nul)| (l.to_string(), encode(&s), nul))
        .collect();
    v.push(("invalid UTF-8".into(), "%FF%FE%C3".into(), false));
    v.push(("overlong NUL".into(), "%C0%80".into(), false));
    v
}

#[derive(Clone, Copy)]
enum Cred<'a> {
    /// Panda's `apiKey` query parameter (unless the URL already carries one).
    PandaQuery(&'a str),
    None,
    Bearer(&'a str),
    SellerHeader(&'a str),
}

struct Sweep<'a> {
    cp: &'a Cp,
    sent: usize,
    failures: Vec<String>,
}

impl Sweep<'_> {
    async fn send(
        &mut self,
        method: &Method,
        url: &str,
        cred: Cred<'_>,
        body: Option<Vec<u8>>,
    ) -> Resp {
        self.sent += 1;
        let mut headers: Vec<(&str, String)> = Vec::new();
        let with_key;
        let mut url = url;
        match cred {
            Cred::None => {}
            Cred::Bearer(t) => headers.push(("authorization", format!("Bearer {t}"))),
            Cred::SellerHeader(k) => headers.push(("x-api-key", k.to_string())),
            Cred::PandaQuery(k) => {
                // A hostile `apiKey` of the sweep itself stays the only one.
                if !url.contains("?apiKey=") && !url.contains("&apiKey=") {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    with_key = format!("{url}{sep}apiKey={}", encode(k));
                    url = &with_key;
                }
            }
        }
        if body.is_some() {
            headers.push(("content-type", "application/json".into()));
        }
        // http's `Uri` (under reqwest) holds at most 64 kB; longer targets go over a raw socket.
        if url.len() > 60_000 {
            return raw_request(
                self.cp.running.addr(),
                method,
                url,
                &headers,
                body.unwrap_or_default(),
            )
            .await;
        }
        let mut req = self
            .cp
            .http
            .request(method.clone(), format!("{}{url}", self.cp.base));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        match req.send().await {
            Ok(resp) => into_resp(resp).await,
            Err(e) => panic!(
                "{method} {}: no answer (connection dropped?): {}",
                short(url),
                short(&e.to_string())
            ),
        }
    }
}

/// One request on its own connection, read to the end (for targets too long for `http::Uri`).
async fn raw_request(
    addr: std::net::SocketAddr,
    method: &Method,
    target: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Resp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(&body).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .expect("an answer within 30 s")
        .unwrap_or_else(|e| panic!("{method} {}: connection failed: {e}", short(target)));
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {}: no answer (connection dropped)", short(target)));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    Resp {
        status,
        body: if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body).unwrap_or(Value::String(body))
        },
        headers: reqwest::header::HeaderMap::new(),
    }
}

fn short(s: &str) -> String {
    if s.len() > 160 {
        format!("{}… ({} bytes)", &s[..s.floor_char_boundary(160)], s.len())
    } else {
        s.to_string()
    }
}

impl Sweep<'_> {
    fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    fn sane(&mut self, r: &Resp, what: &str) {
        self.checked_before_sql(r, what);
        if r.status >= 500 {
            self.fail(format!(
                "{what} → {} {}",
                r.status,
                short(&r.body.to_string())
            ));
        } else if r.status >= 400
            // hyper's own refusals of what it cannot parse come without a body.
            && !(matches!(r.status, 414 | 431) && r.body.is_null())
            && error_message(&r.body).is_none()
        {
            self.fail(format!(
                "{what}: an error without success:false and a message (or Keygen's errors[].detail): {}",
                short(&r.body.to_string())
            ));
        }
    }

    /// Flags answers of the database's last-resort refusal: the value reached SQL unchecked.
    fn checked_before_sql(&mut self, r: &Resp, what: &str) {
        if error_message(&r.body).is_some_and(|m| m.contains("a value was refused")) {
            self.fail(format!(
                "{what}: refused by PostgreSQL, not by a check that names the field: {}",
                short(&r.body.to_string())
            ));
        }
    }

    fn nul_named(&mut self, r: &Resp, name: &str, what: &str) {
        let m = error_message(&r.body).unwrap_or("");
        if r.status != 400 || !m.contains(name) {
            self.fail(format!(
                "{what}: a NUL must be a 400 naming '{name}', got {} {}",
                r.status,
                short(&r.body.to_string())
            ));
        }
    }

    fn refused(&mut self, r: &Resp, what: &str) {
        if !(200..300).contains(&r.status) {
            return;
        }
        self.fail(format!(
            "{what} succeeded: {} {}",
            r.status,
            short(&r.body.to_string())
        ));
    }
}

/// An error answer's message: `{success:false, message}` (native, KeyAux), Junkie's
/// `{message, error}`, Panda's `{message}`, or the `detail` of Keygen's `{errors:[…]}`.
fn error_message(body: &Value) -> Option<&str> {
    // Junkie's `{message, error}` (`/api/v2`) names its code in `error`.
    // Panda's is `{message}` alone. CyberLicense's is `{success: false, error}`.
    let panda = body.as_object().is_some_and(|o| o.len() == 1);
    let m = if body["success"] == false || body["error"].is_string() || panda {
        body["message"].as_str().or_else(|| {
            let o = body.as_object()?;
            (o.len() == 2 && body["success"] == false)
                .then(|| body["error"].as_str())
                .flatten()
        })
    } else {
        body["errors"][0]["detail"].as_str()
    };
    m.filter(|m| !m.is_empty())
}

/// The URL of an operation: path parameters from `path`, query parameters from `query`.
fn url(op: &Op, path: &BTreeMap<String, String>, query: &[(String, String)]) -> String {
    let mut u = op.template.clone();
    for (k, v) in path {
        u = u.replace(&format!("{{{k}}}"), v);
    }
    if !query.is_empty() {
        u.push('?');
        u.push_str(
            &query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }
    u
}

fn real_path(op: &Op, t: &Tenant) -> BTreeMap<String, String> {
    op.path_params
        .iter()
        .map(|p| (p.clone(), t.ids[resource_of(&op.template, p)].clone()))
        .collect()
}

/// The query an operation needs to get past its first checks (the seller's type and app).
fn base_query(op: &Op, t: &Tenant, seller_type: Option<&str>) -> Vec<(String, String)> {
    let mut q = Vec::new();
    if op.is_seller() {
        q.push(("type".into(), seller_type.unwrap_or("verify").to_string()));
        q.push(("appname".into(), encode(&t.spare_app_name)));
    }
    if op.is_panda() {
        // Plausible values of Panda's parameters (the service key comes with the credential).
        for (name, schema) in op.query_params.iter().filter(|(n, _)| n != "apiKey") {
            let v = match sample(name, schema, t, 0) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            q.push((name.clone(), encode(&v)));
        }
    }
    q
}

fn credential<'a>(op: &Op, t: &'a Tenant) -> Cred<'a> {
    if op.is_panda() {
        Cred::PandaQuery(&t.service_key)
    } else if op.is_seller() {
        Cred::SellerHeader(&t.seller_key)
    } else if op.is_public() {
        Cred::None
    } else if op.is_customer() {
        Cred::Bearer(&t.customer_token)
    } else {
        Cred::Bearer(&t.jwt)
    }
}

fn seller_types(op: &Op) -> Vec<String> {
    op.query_params
        .iter()
        .find(|(n, _)| n == "type")
        .and_then(|(_, s)| s["enum"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

async fn document(cp: &Cp) -> Value {
    cp.http
        .get(format!("{}/openapi.json", cp.base))
        .send()
        .await
        .expect("openapi.json")
        .json()
        .await
        .expect("the document is JSON")
}

/// What the tenant's data looks like through its own eyes, without fields that move by
/// themselves.
async fn snapshot(cp: &Cp, t: &Tenant) -> Value {
    let app = &t.ids["app"];
    let user = &t.ids["user"];
    let mut out = Map::new();
    for path in [
        "/v1/account".to_string(),
        "/v1/apps".into(),
        format!("/v1/apps/{app}"),
        format!("/v1/licenses?app_id={app}"),
        format!("/v1/licenses/{}/machines", t.ids["license"]),
        format!("/v1/apps/{app}/blacklist"),
        format!("/v1/apps/{app}/policies"),
        "/v1/policies".into(),
        "/v1/entitlements".into(),
        format!("/v1/licenses/{}/entitlements", t.ids["license"]),
        format!("/v1/policies/{}/entitlements", t.ids["policy"]),
        "/v1/api-keys".into(),
        format!("/api/dashboard/users/{app}"),
        format!("/api/dashboard/subscriptions/{app}"),
        format!("/api/dashboard/variables/{app}/global"),
        format!("/api/dashboard/variables/{app}/user?user_id={user}"),
        format!("/api/dashboard/webhooks/{app}"),
        format!("/api/dashboard/blacklist/{app}"),
        "/api/dashboard/seller-keys".into(),
        "/v1/webhook-endpoints".into(),
        format!("/v1/apps/{app}/service-keys"),
        format!("/v1/apps/{app}/keyless"),
        format!("/v1/apps/{app}/users"),
        format!("/v1/users/{user}"),
        format!("/v1/apps/{app}/subscriptions"),
        format!("/v1/apps/{app}/variables"),
        format!("/v1/apps/{app}/sessions"),
        "/v1/seller-keys".into(),
        "/v1/providers".into(),
        "/api/v2/keys?limit=100".into(),
        "/api/v2/services".into(),
        "/api/v2/providers".into(),
    ] {
        let mut v = cp.ok(Method::GET, &path, &t.jwt, None).await;
        strip_volatile(&mut v);
        out.insert(path, v);
    }
    Value::Object(out)
}

fn strip_volatile(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|k, _| !k.starts_with("last_") && k != "used_at" && k != "updated_at");
            o.values_mut().for_each(strip_volatile);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

/// HS256 over `header.payload`, for tokens forged with a known (or guessed) secret.
fn sign_jwt(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Credentials that must all be refused: (label, credential).
async fn forged_credentials(cp: &Cp, victim: &Tenant, other: &Tenant) -> Vec<(String, String)> {
    let now = chrono::Utc::now().timestamp();
    let claims =
        |sub: &str, exp: i64| json!({"sub": sub, "username": "alice", "iat": now - 10, "exp": exp});
    let secret: Vec<u8> = cp
        .db
        .client()
        .await
        .query_one("SELECT value FROM server_secrets WHERE name = 'jwt'", &[])
        .await
        .expect("jwt secret")
        .get(0);
    let real = &victim.jwt;
    let mut parts = real.split('.');
    let (h, _p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let swapped = b64url(claims(&other.account_id, now + 3600).to_string().as_bytes());
    vec![
        ("garbage".into(), "garbage".into()),
        ("empty JWT parts".into(), "..".into()),
        (
            "wrong secret".into(),
            sign_jwt(
                &claims(&victim.account_id, now + 3600),
                b"not the server's secret, 32 bytes",
            ),
        ),
        (
            "expired, real secret".into(),
            sign_jwt(&claims(&victim.account_id, now - 3600), &secret),
        ),
        (
            "alg none".into(),
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"none","typ":"JWT"}"#),
                b64url(
                    claims(&victim.account_id, now + 3600)
                        .to_string()
                        .as_bytes()
                )
            ),
        ),
        (
            "payload swapped under a real signature".into(),
            format!("{h}.{swapped}.{s}"),
        ),
        ("real JWT, signature cut".into(), format!("{h}.{_p}.")),
        ("70 kB".into(), "e".repeat(70_000)),
        ("unknown API key".into(), format!("kw_{}", "A".repeat(40))),
        ("API key prefix alone".into(), "kw_".into()),
        ("70 kB API key".into(), format!("kw_{}", "A".repeat(70_000))),
        ("seller key as bearer".into(), victim.seller_key.clone()),
    ]
}

#[tokio::test]
async fn every_documented_operation_survives_hostile_input() {
    let cp = Cp::start().await;
    let alice = tenant(&cp, "alice").await;
    let bob = tenant(&cp, "bob").await;
    let ops = operations(&document(&cp).await);
    assert!(ops.len() >= 75, "{} operations documented", ops.len());
    let mut sweep = Sweep {
        cp: &cp,
        sent: 0,
        failures: Vec::new(),
    };
    let mut n = 0usize;

    // 1. Credentials: missing, malformed and forged ones reach nothing.
    let forged = forged_credentials(&cp, &alice, &bob).await;
    for op in ops.iter().filter(|o| !o.is_public()) {
        let u = url(op, &real_path(op, &alice), &base_query(op, &alice, None));
        let body = op
            .body
            .as_ref()
            .map(|s| sample("", s, &alice, 0).to_string().into_bytes());
        let mut tries: Vec<(String, Cred)> = vec![("no credentials".into(), Cred::None)];
        for (label, c) in &forged {
            tries.push((format!("bearer {label}"), Cred::Bearer(c)));
            if op.is_seller() && *c != alice.seller_key {
                tries.push((format!("seller key {label}"), Cred::SellerHeader(c)));
            }
        }
        if op.is_seller() {
            tries.push((
                "an API key as seller key".into(),
                Cred::SellerHeader(&alice.api_key),
            ));
        }
        // Admin and customer credentials do not cross (Keygen's user tokens are meant for its
        // admin API: they reach their own licenses there).
        if op.is_customer() {
            tries.push(("her admin JWT".into(), Cred::Bearer(&alice.jwt)));
            tries.push(("her API key".into(), Cred::Bearer(&alice.api_key)));
        } else if !op.is_panda() && !op.is_seller() && !op.template.starts_with("/keygen/") {
            tries.push((
                "her customer token".into(),
                Cred::Bearer(&alice.customer_token),
            ));
        }
        if op.is_panda() {
            // (70 kB ones would exceed the URI limit: a 414 before any key is read.)
            for (label, c) in forged.iter().filter(|(_, c)| c.len() < 8_000) {
                tries.push((format!("apiKey {label}"), Cred::PandaQuery(c)));
            }
            for (label, c) in [
                ("a revoked service key", &alice.revoked_service_key),
                ("an API key", &alice.api_key),
                ("the seller key", &alice.seller_key),
                ("a JWT", &alice.jwt),
                ("the service id", &alice.service_id),
            ] {
                tries.push((format!("apiKey = {label}"), Cred::PandaQuery(c)));
            }
        }
        for (label, cred) in tries {
            let r = sweep.send(&op.method, &u, cred, body.clone()).await;
            let what = format!("{} with {label}", op.what());
            sweep.sane(&r, &what);
            if r.status != 401 && r.status != 403 {
                sweep.fail(format!(
                    "{what} was not refused: {} {}",
                    r.status,
                    short(&r.body.to_string())
                ));
            }
        }
    }

    // 2. Bob with Alice's real ids, keys and names reaches none of her data.
    let before = snapshot(&cp, &alice).await;
    for op in &ops {
        for cred in [
            Cred::Bearer(&bob.jwt),
            Cred::Bearer(&bob.api_key),
            Cred::Bearer(&bob.customer_token),
            Cred::SellerHeader(&bob.seller_key),
            Cred::PandaQuery(&bob.service_key),
        ] {
            let fits = match cred {
                Cred::SellerHeader(_) => op.is_seller(),
                Cred::PandaQuery(_) => op.is_panda(),
                _ => !op.is_seller() && !op.is_panda(),
            };
            if !fits || (op.is_public() && !matches!(cred, Cred::Bearer(t) if t == bob.jwt)) {
                continue;
            }
            let path = real_path(op, &alice);
            let types = if op.is_seller() {
                seller_types(op)
            } else {
                vec![String::new()]
            };
            for ty in &types {
                let mut query: Vec<(String, String)> = Vec::new();
                for (name, _) in &op.query_params {
                    match (name.as_str(), query_value(&alice, name, op)) {
                        ("type", _) => query.push(("type".into(), ty.clone())),
                        (_, Some(v)) => query.push((name.clone(), encode(&v))),
                        _ => {}
                    }
                }
                n += 1;
                let body = op.body.as_ref().map(|s| {
                    let mut b = sample("", s, &alice, n);
                    if op.is_panda_lookup() {
                        aim_at(&mut b, &alice);
                    }
                    b.to_string().into_bytes()
                });
                let u = url(op, &path, &query);
                let r = sweep.send(&op.method, &u, cred, body).await;
                let what = format!("{} as Bob {ty}", op.what());
                sweep.sane(&r, &what);
                if !path.is_empty() || op.is_seller() || op.is_panda_lookup() {
                    sweep.refused(&r, &format!("{what} with Alice's ids"));
                }
                if op.template == "/api/identifier-check" && r.body["exists"] != false {
                    sweep.fail(format!(
                        "{what}: Alice's service id exists for Bob: {}",
                        r.body
                    ));
                }
                // What the request itself carried may come back (Keygen's "The requested
                // license 'X' was not found" echoes it); only what the server adds reveals.
                // The audit log replays what Bob's own earlier requests carried (the names and
                // filters he sent): there, only its entries' own fields can reveal.
                let mut shown = r.body.clone();
                if matches!(op.template.as_str(), "/api/audit" | "/v1/audit-log") {
                    for list in ["auditLogs", "items"] {
                        let entries = shown.get_mut(list).and_then(Value::as_array_mut);
                        for e in entries.into_iter().flatten() {
                            if let Some(e) = e.as_object_mut() {
                                e.remove("changes");
                                e.remove("details");
                            }
                        }
                    }
                }
                let mut text = shown.to_string();
                for sent in path.values() {
                    text = text.replace(&format!("'{sent}'"), "'…'");
                }
                for mark in &alice.marks {
                    if text.contains(mark.as_str()) {
                        sweep.fail(format!("{what} revealed Alice's {mark}: {}", short(&text)));
                    }
                }
            }
            // Bob's seller key on his own app, aimed at Alice's key and user.
            if op.is_seller() {
                for ty in &types {
                    let q = format!(
                        "type={ty}&appname={}&key={}&user={}",
                        encode(&bob.app_name),
                        encode(&alice.license_key),
                        encode(&alice.username)
                    );
                    let r = sweep
                        .send(&op.method, &format!("{}?{q}", op.template), cred, None)
                        .await;
                    sweep.sane(&r, &format!("seller {ty} on Bob's app"));
                }
            }
        }
    }
    let after = snapshot(&cp, &alice).await;
    if before != after {
        sweep.fail(format!(
            "Bob's requests changed Alice's data:\nbefore {before}\nafter  {after}"
        ));
    }

    // 3. Hostile values in every field, with Alice's valid credentials and real ids.
    for op in &ops {
        let cred = credential(op, &alice);
        let path = real_path(op, &alice);
        let seller_types = if op.is_seller() {
            seller_types(op)
        } else {
            vec![]
        };
        let base_queries: Vec<Vec<(String, String)>> = if op.is_seller() {
            seller_types
                .iter()
                .map(|t| base_query(op, &alice, Some(t)))
                .collect()
        } else {
            vec![base_query(op, &alice, None)]
        };
        let body_of = |n: usize| {
            op.body
                .as_ref()
                .map(|s| sample("", s, &alice, n).to_string().into_bytes())
        };
        // Path parameters.
        for p in &op.path_params {
            for (label, value, nul) in hostile_url_values() {
                let mut bad = path.clone();
                bad.insert(p.clone(), value);
                n += 1;
                let r = sweep
                    .send(
                        &op.method,
                        &url(op, &bad, &base_queries[0]),
                        cred,
                        body_of(n),
                    )
                    .await;
                let what = format!("{} path {p} = {label}", op.what());
                sweep.sane(&r, &what);
                if nul {
                    sweep.nul_named(&r, p, &what);
                }
            }
        }
        // Query parameters (every seller type: each reads its own).
        for q in &base_queries {
            for (name, _) in &op.query_params {
                for (label, value, nul) in hostile_url_values() {
                    let mut query: Vec<(String, String)> =
                        q.iter().filter(|(k, _)| k != name).cloned().collect();
                    query.push((name.clone(), value));
                    n += 1;
                    let r = sweep
                        .send(&op.method, &url(op, &path, &query), cred, body_of(n))
                        .await;
                    let what = format!("{} {:?} query {name} = {label}", op.what(), q.first());
                    sweep.sane(&r, &what);
                    if nul {
                        sweep.nul_named(&r, name, &what);
                    }
                }
            }
        }
        // Body fields, one at a time, the others plausible; then whole hostile bodies.
        if let Some(schema) = &op.body {
            let props: Vec<String> = schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect();
            for prop in &props {
                for (label, value, nul) in hostile_values() {
                    n += 1;
                    let mut body = sample("", schema, &alice, n);
                    body[prop.as_str()] = value;
                    let r = sweep
                        .send(
                            &op.method,
                            &url(op, &path, &base_queries[0]),
                            cred,
                            Some(body.to_string().into_bytes()),
                        )
                        .await;
                    let what = format!("{} body {prop} = {label}", op.what());
                    sweep.sane(&r, &what);
                    if nul {
                        sweep.nul_named(&r, prop, &what);
                    }
                }
            }
            let mut nested = "[".repeat(100_000);
            nested.push_str(&"]".repeat(100_000));
            let wholes: Vec<(&str, Vec<u8>)> = vec![
                ("100 000-deep array", nested.into_bytes()),
                ("a string", b"\"\\u0000\"".to_vec()),
                ("null", b"null".to_vec()),
                ("a number", b"1e999999".to_vec()),
                (
                    "an unknown field with a NUL",
                    br#"{"\u0000":"\u0000"}"#.to_vec(),
                ),
                ("a lone surrogate", br#"{"name":"\ud800"}"#.to_vec()),
                ("a duplicate field", br#"{"name":"a","name":"b"}"#.to_vec()),
                ("900 kB of whitespace", vec![b' '; 900_000]),
            ];
            for (label, raw) in wholes {
                let r = sweep
                    .send(
                        &op.method,
                        &url(op, &path, &base_queries[0]),
                        cred,
                        Some(raw),
                    )
                    .await;
                sweep.sane(&r, &format!("{} body {label}", op.what()));
            }
        }
    }
    println!(
        "{} hostile requests over {} operations",
        sweep.sent,
        ops.len()
    );
    let failures = &sweep.failures;
    for f in failures {
        println!("MISBEHAVED {f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests misbehaved:\n{}",
        failures.len(),
        sweep.sent,
        failures
            .iter()
            .take(300)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
