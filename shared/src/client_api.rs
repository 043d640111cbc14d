//! Facts of the KeyAuth client API shared by both services: the per-app customisable messages
//! (KeyAuth's column names and default texts) and the limits of app client settings.

use std::collections::BTreeMap;

/// Every customisable message: KeyAuth's name for it and its default text. `{reason}` in
/// `keybanned` and `userbanned` is replaced by the ban reason.
pub const MESSAGES: &[(&str, &str)] = &[
    ("appdisabled", "This application is disabled"),
    (
        "usernametaken",
        "Username already taken, choose a different one",
    ),
    ("keynotfound", "Invalid license key"),
    ("keyused", "License key has already been used"),
    (
        "nosublevel",
        "There is no subscription created for your key level. Contact application developer.",
    ),
    ("usernamenotfound", "Invalid username"),
    ("passmismatch", "Password does not match."),
    ("hwidmismatch", "HWID doesn't match. Ask for a HWID reset"),
    ("noactivesubs", "No active subscription(s) found"),
    (
        "hwidblacked",
        "You've been blacklisted from our application",
    ),
    (
        "pausedsub",
        "Your subscription is paused and can't be used right now",
    ),
    ("vpnblocked", "VPNs are blocked on this application"),
    ("keybanned", "Your license is banned"),
    ("userbanned", "The user is banned"),
    ("sessionunauthed", "Session is not validated"),
    (
        "hashcheckfail",
        "This program hash does not match, make sure you're using latest version",
    ),
    ("loggedInMsg", "Logged in!"),
    (
        "pausedApp",
        "Application is currently paused, please wait for the developer to say otherwise.",
    ),
    ("unTooShort", "Username too short, try longer one."),
    (
        "pwLeaked",
        "This password has been leaked in a data breach (not from us), please use a different one.",
    ),
    ("chatHitDelay", "Chat slower, you've hit the delay limit"),
    ("tokeninvalid", "Token Invalid"),
];

pub const MAX_MESSAGE_LEN: usize = 500;
pub const MAX_PROGRAM_HASHES: usize = 50;
pub const MAX_PROGRAM_HASH_LEN: usize = 128;

/// The default text of a message name, if it is one.
pub fn default_message(name: &str) -> Option<&'static str> {
    MESSAGES.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
}

/// Checks a set of custom messages: known names, non-empty texts of bounded length.
pub fn check_messages(messages: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, text) in messages {
        if default_message(name).is_none() {
            let known: Vec<&str> = MESSAGES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown message name '{name}'; known names: {}",
                known.join(", ")
            ));
        }
        if text.trim().is_empty() || text.chars().count() > MAX_MESSAGE_LEN {
            return Err(format!(
                "message '{name}' must be 1 to {MAX_MESSAGE_LEN} characters"
            ));
        }
    }
    Ok(())
}

/// Checks the accepted program hashes of the hash check.
pub fn check_program_hashes(hashes: &[String]) -> Result<(), String> {
    if hashes.len() > MAX_PROGRAM_HASHES {
        return Err(format!(
            "at most {MAX_PROGRAM_HASHES} program hashes may be accepted"
        ));
    }
    if hashes
        .iter()
        .any(|h| h.trim().is_empty() || h.len() > MAX_PROGRAM_HASH_LEN)
    {
        return Err(format!(
            "program hashes must be 1 to {MAX_PROGRAM_HASH_LEN} characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_empty_messages_are_refused() {
        let mut m = BTreeMap::new();
        m.insert("keynotfound".to_string(), "No such key".to_string());
        assert!(check_messages(&m).is_ok());
        m.insert("nosuchmessage".to_string(), "x".to_string());
        assert!(check_messages(&m).unwrap_err().contains("nosuchmessage"));
        m.remove("nosuchmessage");
        m.insert("passmismatch".to_string(), "  ".to_string());
        assert!(check_messages(&m).is_err());
    }

    #[test]
    fn defaults_are_keyauths() {
        assert_eq!(default_message("keynotfound"), Some("Invalid license key"));
        assert_eq!(default_message("loggedInMsg"), Some("Logged in!"));
        assert_eq!(default_message("nope"), None);
    }
}
