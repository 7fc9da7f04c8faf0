//! `rmq-bench`: the load generator (`rmq-bench` binary) and the helpers of the codec and
//! storage micro-benchmarks.
//!
//! Map of the load generator:
//! - [`cli`]: every parameter, validated once.
//! - [`run`]: the coordinator (setup, start, stop rules, merging) on the main thread.
//! - [`worker`]: one pinned compio runtime per harness thread, running [`producer`] loops
//!   (sync / async / oneway sends built by [`message`]) and [`consumer`] pull loops;
//!   [`lean`] is the async send path (templates, bulk writes and reads).
//! - [`route`]: topic route → write and read queues, with the TBW102 fallback.
//! - [`rate`] (token bucket), [`sync`] (window and event for one runtime).
//! - [`stats`] and [`aggregate`]: counters and HDR histograms per interval, merged into
//!   per-second samples and whole-run totals; nothing is kept per message.
//! - [`report`], [`svg`], [`progress`], [`sysinfo`], [`usage`]: what a run leaves behind;
//!   [`procwatch`]: the broker process's RSS and CPU per sample (`--broker-pid`).
//! - [`timer`]: the due times of a timer-message load (`--timer-delay-ms`).
//! - [`echo`]: the in-process echo server that measures the harness's own cost.
//!
//! Must never keep per-message state (a billion-message run needs O(1) memory), nor share
//! `Rc` state across harness threads.

pub mod aggregate;
pub mod cli;
pub mod consumer;
pub mod echo;
pub mod lean;
pub mod message;
pub mod procwatch;
pub mod producer;
pub mod progress;
pub mod rate;
pub mod report;
pub mod route;
pub mod run;
pub mod stats;
pub mod svg;
pub mod sync;
pub mod sysinfo;
pub mod timer;
pub mod usage;
pub mod worker;
