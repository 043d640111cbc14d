//! Reads of the statistics for the customer API.
