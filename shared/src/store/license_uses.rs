//! CyberLicense validation's one conditional write: a new IP/HWID appended within the limits and a consumption credit spent, all or nothing, under the license row's lock.
