//! The facades: each seed system's admin API in a folder of its own, translating its wire format
//! to the same `keyward_shared::store` calls as the native routes. They hold no rule.

pub mod cyberlicense;
pub mod junkie;
pub mod keyaux;
pub mod keygen;
pub mod panda;
