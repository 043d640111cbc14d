//! The facades: each seed system's client API in a folder of its own, translating its wire
//! format to the core's calls and back. They hold no rule (those are in `keyward_shared`).

pub mod cyberlicense;
pub mod junkie;
pub mod keyauth;
pub mod keygen;
pub mod panda;
