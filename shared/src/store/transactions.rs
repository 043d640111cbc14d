//! Purchases a vendor records (CyberLicense's transactions).
