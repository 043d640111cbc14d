//! Panda's clients put the service key in URLs (`?apiKey=…`). A URI that goes into a log line
//! goes through [`uri`] first, so the key never reaches one.

use axum::http::Uri;

/// Query parameters whose values are secrets (compared without case).
const SECRET_PARAMS: [&str; 2] = ["apikey", "sellerkey"];

/// The path and query with every secret parameter's value replaced by `REDACTED`; other pairs
/// are kept byte for byte.
pub fn uri(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            let decoded: String = form_urlencoded::parse(name.as_bytes())
                .map(|(k, _)| k.into_owned())
                .collect();
            if SECRET_PARAMS
                .iter()
                .any(|s| decoded.eq_ignore_ascii_case(s))
            {
                format!("{name}=REDACTED")
            } else {
                pair.to_string()
            }
        })
        .collect();
    format!("{}?{}", uri.path(), pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        uri(&s.parse::<Uri>().unwrap())
    }

    #[test]
    fn the_api_key_never_survives() {
        assert_eq!(
            r("/api/key/fetch?apiKey=pkSECRET&fetch=abc"),
            "/api/key/fetch?apiKey=REDACTED&fetch=abc"
        );
        // Any case, percent-encoded names, repeated, without a value.
        assert_eq!(
            r("/api/x?APIKEY=pkA&%61piKey=pkB&apiKey&n=1"),
            "/api/x?APIKEY=REDACTED&%61piKey=REDACTED&apiKey=REDACTED&n=1"
        );
        assert_eq!(r("/api/execution-count"), "/api/execution-count");
        assert!(!r("/api/seller/?sellerkey=ka_SECRET&type=add").contains("ka_SECRET"));
    }
}
