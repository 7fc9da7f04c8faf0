//! Connection layer on compio (in progress).
